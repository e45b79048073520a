import pytest
from conftest import tiny_params, write_params
from test_evaluate import params, pred_dir  # noqa: F401  (two-seed predictions and params)

from crossling import evaluate, report
from crossling.common import write_json
from crossling.config import load_config


def kept_last(cfg):
    return evaluate.budgets(cfg, {evaluate.run_name(m, s): cfg.train.epochs for m in evaluate.model_names(cfg)
                                  for s in cfg.train.seeds})


def write_metrics(tmp_path, cfg, out):
    metrics = tmp_path / "metrics"
    for name in ("joint", "transfer", "transfer_summary", "differences"):
        write_json(out[name], metrics / f"{name}.json")
    write_json(out.get("budgets") or kept_last(cfg), metrics / "budgets.json")
    counts = {k: 1 for k in ("raw_train", "raw_validation", "raw_test", "pool_empty_text", "test_empty_text",
                             "pool_unknown_label", "test_unknown_label", "pool_duplicate_rows",
                             "pool_conflicting_label_rows", "pool_test_overlap_rows",
                             "pool_other_language_test_overlap_rows", "pool_other_language_dev_overlap_rows",
                             "pool", "dev", "test")}
    write_json({lang: counts for lang in cfg.data.languages}, metrics / "data.json")
    tok = {"pool_tokens_per_unit": 1.5, "pool_unk_rate": 0.01, "test_truncated_share": 0.0, "test_mean_tokens": 12.0}
    write_json({lang: tok for lang in cfg.data.languages}, metrics / "tokenization.json")
    return metrics


def test_report_names_every_language_with_intervals(tmp_path, pred_dir):  # noqa: F811
    cfg = load_config(params(tmp_path))
    out = evaluate.evaluate(pred_dir, cfg)
    metrics = write_metrics(tmp_path, cfg, out)
    path = tmp_path / "reports" / "results.md"
    report.cli(["--params", str(params(tmp_path)), "--metrics", str(metrics), "--plots", str(tmp_path / "plots"),
                "--out", str(path)])
    text = path.read_text()
    for lang in cfg.data.languages:
        assert text.count(lang) >= 5
    joint = out["joint"]["joint_12"]["english"]
    assert f"{joint['macro_f1']:.3f} [{joint['macro_f1_ci_low']:.3f}, {joint['macro_f1_ci_high']:.3f}] ±" in text
    assert "sample standard deviation (ddof 1) over the 2 seeds" in text
    assert "](../plots/learning_curve.png)" in text and "](../plots/training_curves.png)" in text
    assert "](../plots/confusion_largest_joint.png)" in text
    assert "## Data" in text and "## Tokenization" in text and "### Transfer summary" in text
    # budgets next to the scores: tiny params, 2 languages, batch 8, 2 epochs
    assert "joint_12 (24 ex., 6 steps)" in text and "| 6 | 12 ex., 4 steps |" in text
    assert "monolingual, in-language (12 ex., 4 steps)" in text
    assert "| joint_12 | 24 | 6 | 2 / 2 | 6 / 6 |" in text  # kept epoch and steps to it, per seed
    assert "Training budgets below" not in text  # train.select: last


def test_report_gives_the_kept_epochs_with_select_best(tmp_path, pred_dir):  # noqa: F811
    p = tiny_params("unused", sizes=(6, 12))
    p["train"] |= {"seeds": [1, 2], "select": "best"}
    cfg = load_config(write_params(tmp_path / "best.yaml", p))
    out = evaluate.evaluate(pred_dir, cfg)
    out["budgets"] = evaluate.budgets(cfg, {evaluate.run_name(m, s): 2 for m in evaluate.model_names(cfg)
                                            for s in (1, 2)} | {"mono_french_seed2": 1})
    metrics = write_metrics(tmp_path, cfg, out)
    path = tmp_path / "results.md"
    report.cli(["--params", str(tmp_path / "best.yaml"), "--metrics", str(metrics), "--plots", "plots",
                "--out", str(path)])
    text = path.read_text()
    assert "the steps to those are in Training budgets below" in text
    assert "| mono_french | 12 | 4 | 2 / 1 | 4 / 2 |" in text


def test_report_marks_differences_that_exclude_zero(tmp_path, pred_dir):  # noqa: F811
    cfg = load_config(params(tmp_path))
    out = evaluate.evaluate(pred_dir, cfg)
    d = out["differences"]
    d["joint_12_minus_joint_6_on_english"], d["joint_12_minus_joint_6_on_english_ci_low"] = 0.2, 0.1
    d["joint_12_minus_joint_6_on_english_ci_high"] = 0.3
    d["joint_12_minus_joint_6_on_french"], d["joint_12_minus_joint_6_on_french_ci_low"] = 0.05, -0.01
    d["joint_12_minus_joint_6_on_french_ci_high"] = 0.1
    text = report.render(cfg, {**out, "budgets": kept_last(cfg), "data": {}, "tokenization": {lang: {"pool_tokens_per_unit": 1, "pool_unk_rate": 0,
                               "test_truncated_share": 0, "test_mean_tokens": 1} for lang in cfg.data.languages}},
                         {k: k for k in ("learning_curve", "transfer_matrix", "tokenization", "label_distribution",
                                         "training_curves", "confusion_largest_joint")})
    assert "| 12 − 6 | **+0.200 [+0.100, +0.300]** | +0.050 [-0.010, +0.100] |" in text
    assert "Zero-shot cell minus chance (paired)" in text and "(not paired)" in text
    # 12 examples per monolingual model = 6 per language x 2 languages: joint_6 is the equal-budget model
    assert "joint_6 trains on 6 x 2 = 12 examples, as many as each monolingual model" in text
    assert "joint_6 on it (same examples) minus in-language" in text


def test_report_says_when_no_joint_size_matches_the_monolingual_budget(tmp_path):
    cfg = load_config(write_params(tmp_path / "p.yaml", tiny_params("unused", sizes=(5, 12))))
    lines = report._transfer_summary(cfg, {}, {}, {}, evaluate.training_budget(cfg))
    assert "No size in sample.sizes gives a joint model the 12 training examples" in lines[1]
    assert "12 / 2 = 6.0 per language" in lines[1] and "24 examples (2 times as many)" in lines[1]


def test_metrics_of_other_params_are_refused_in_one_line(tmp_path, pred_dir, capsys):  # noqa: F811
    cfg = load_config(params(tmp_path))  # seeds 1 and 2
    out = evaluate.evaluate(pred_dir, cfg)
    out["budgets"] = kept_last(cfg)
    for costs in out["budgets"].values():
        del costs["kept_epoch_seed2"]  # as evaluate wrote them for seeds [1]
    metrics = write_metrics(tmp_path, cfg, out)
    path = tmp_path / "reports" / "results.md"
    with pytest.raises(SystemExit):
        report.cli(["--params", str(params(tmp_path)), "--metrics", str(metrics), "--plots", "plots",
                    "--out", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("lack 'kept_epoch_seed2', which params.yaml asks for: they are not evaluate's output "
                            "for these params; re-run evaluate (dvc repro)")
    assert not path.exists() and not path.parent.exists() or not any(path.parent.iterdir())
