from test_evaluate import params, pred_dir  # noqa: F401  (two-seed predictions and params)

from crossling import evaluate, report
from crossling.common import write_json
from crossling.config import load_config


def test_report_names_every_language_with_intervals(tmp_path, pred_dir):  # noqa: F811
    cfg = load_config(params(tmp_path))
    out = evaluate.evaluate(pred_dir, cfg)
    metrics = tmp_path / "metrics"
    for name in ("joint", "transfer", "transfer_summary"):
        write_json(out[name], metrics / f"{name}.json")
    counts = {k: 1 for k in ("raw_train", "raw_validation", "raw_test", "pool_empty_text", "test_empty_text",
                             "pool_unknown_label", "test_unknown_label", "pool_duplicate_rows",
                             "pool_conflicting_label_rows", "pool_test_overlap_rows",
                             "pool_other_language_test_overlap_rows", "pool", "test")}
    write_json({lang: counts for lang in cfg.data.languages}, metrics / "data.json")
    tok = {"pool_tokens_per_unit": 1.5, "pool_unk_rate": 0.01, "test_truncated_share": 0.0, "test_mean_tokens": 12.0}
    write_json({lang: tok for lang in cfg.data.languages}, metrics / "tokenization.json")
    path = tmp_path / "reports" / "results.md"
    report.cli(["--params", str(params(tmp_path)), "--metrics", str(metrics), "--plots", str(tmp_path / "plots"),
                "--out", str(path)])
    text = path.read_text()
    for lang in cfg.data.languages:
        assert text.count(lang) >= 5
    joint = out["joint"]["joint_12"]["english"]
    assert f"{joint['macro_f1']:.3f} [{joint['macro_f1_ci_low']:.3f}, {joint['macro_f1_ci_high']:.3f}] ±" in text
    assert "standard deviation over the 2 seeds" in text
    assert "](../plots/learning_curve.png)" in text
    assert "## Data" in text and "## Tokenization" in text and "### Transfer summary" in text
