import json

import pytest
import yaml
from conftest import tiny_params, write_params
from test_evaluate import (LABELS, SEEDS, SIZES, all_logs, collapse, fake_predictions, params,  # noqa: F401
                           pred_dir)  # two-seed predictions and params

from crossling import evaluate, report
from crossling.common import write_json
from crossling.config import load_config
from crossling.predict import prediction_schema

COUNT_KEYS = ("raw_train", "raw_validation", "raw_test", "pool_empty_text", "test_empty_text", "dev_empty_text",
              "pool_unknown_label", "test_unknown_label", "dev_unknown_label", "pool_duplicate_rows",
              "dev_duplicate_rows", "pool_conflicting_label_rows", "dev_conflicting_label_rows",
              "pool_test_overlap_rows", "dev_test_overlap_rows", "pool_other_language_test_overlap_rows",
              "dev_other_language_test_overlap_rows",
              "pool_dev_overlap_rows", "pool_other_language_dev_overlap_rows", "pool", "dev", "test")
SOURCES = {"english": ("sem_eval_2017", "Latin"), "french": ("amazon_reviews_multi", "Latin")}


def data_json(languages) -> dict:
    """metrics/data.json as combine writes it: counts, and per split the sources, scripts and mean length."""
    out = {}
    for lang in languages:
        source, script = SOURCES[lang]
        out[lang] = {k: 1 for k in COUNT_KEYS} | {f"dev_{name}": 5 for name in LABELS}
        out[lang] |= {"sources": {split: {source: 40} for split in ("pool", "dev", "test")},
                      "scripts": {split: {script: 1.0} for split in ("pool", "dev", "test")},
                      "mean_chars": {split: 42.5 for split in ("pool", "dev", "test")}}
    return out


def evaluated(tmp_path, pred_dir, params_path, kept=None):  # noqa: F811
    """evaluate's real outputs for these params, plus the data and tokenization metrics of earlier stages."""
    cfg = load_config(params_path)
    metrics = tmp_path / "metrics"
    write_json(data_json(cfg.data.languages), metrics / "data.json")
    tok = {"pool_tokens_per_unit": 1.5, "pool_unk_rate": 0.01, "test_truncated_share": 0.0, "test_mean_tokens": 12.0}
    write_json({lang: tok for lang in cfg.data.languages}, metrics / "tokenization.json")
    all_logs(tmp_path / "logs", cfg, kept=kept)
    write_json({"source": "local", "path": "/data/mirror", "files": 6, "content_md5": "x"}, tmp_path / "source.json")
    evaluate.cli(["--params", str(params_path), "--predictions", str(pred_dir), "--logs", str(tmp_path / "logs"),
                  "--data", str(metrics / "data.json"), "--source", str(tmp_path / "source.json"),
                  "--metrics", str(metrics), "--plots", str(tmp_path / "plots")])
    return metrics


def run_report(tmp_path, params_path, metrics):
    path = tmp_path / "reports" / "results.md"
    report.cli(["--params", str(params_path), "--metrics", str(metrics), "--plots", str(tmp_path / "plots"),
                "--out", str(path)])
    return path.read_text()


def test_report_names_every_language_with_intervals_sources_and_budgets(tmp_path, pred_dir):  # noqa: F811
    p = params(tmp_path, data={"source_domains": {"sem_eval_2017": "tweets", "amazon_reviews_multi": "product reviews"}})
    metrics = evaluated(tmp_path, pred_dir, p)
    text = run_report(tmp_path, p, metrics)
    for lang in ("english", "french"):
        assert text.count(lang) >= 5
    joint = json.loads((metrics / "joint.json").read_text())["joint_12"]["english"]
    assert f"{joint['macro_f1']:.3f} [{joint['macro_f1_ci_low']:.3f}, {joint['macro_f1_ci_high']:.3f}] ±" in text
    assert "two-level bootstrap" in text and "2 seeds resampled with replacement" in text
    assert "The ± after one is the sample standard deviation (n−1) of macro-F1 over the 2 seeds." in text
    assert "every seed trains on the same sample draw" in text
    assert "Holm's step-down correction" in text
    assert "No degenerate run" in text
    for figure in ("learning_curve", "training_curves", "confusion_largest_joint", "transfer_normalized"):
        assert f"](../plots/{figure}.png)" in text
    assert "## Data" in text and "## Tokenization" in text and "### Transfer summary" in text
    assert ", batch 8 x 1 process(es), " in text
    accumulated = write_params(tmp_path / "acc.yaml", {**yaml.safe_load(p.read_text()), "train": {
        **yaml.safe_load(p.read_text())["train"], "gradient_accumulation_steps": 3}})
    assert ", batch 8 x 3 accumulated x 1 process(es), " in run_report(tmp_path / "acc", accumulated, metrics)
    bh = write_params(tmp_path / "bh.yaml", {**yaml.safe_load(p.read_text()), "evaluate": {
        **yaml.safe_load(p.read_text())["evaluate"], "correction": "bh"}})
    bh_text = run_report(tmp_path / "bh", bh, metrics)
    assert "the Benjamini-Hochberg correction (false discovery rate)" in bh_text and "Holm" not in bh_text
    # budgets next to the scores: tiny params, 2 languages, batch 8, 2 epochs
    assert "joint_12 (24 ex., 6 steps)" in text and "| 6 | 12 ex., 4 steps |" in text
    assert "joint_equal, equal budget (12 ex., 4 steps)" in text
    assert "| joint_12 | 24 | 6 / 6 | 3 / 3 | 2 / 2 | 6 / 6 |" in text  # steps, per epoch, kept epoch and step
    # sources and domains: the transfer cells cross domains, and the report says so
    assert "| english | sem_eval_2017 (tweets) |" in text
    assert "**The languages come from different sources and domains** (product reviews, tweets)" in text
    assert "| french | 12 ex., 4 steps |" in text and "†" in text and "different test sets (domain, size, class prior)" in text
    assert "| french | product reviews | test | amazon_reviews_multi 40 | Latin 100% | 42.5 |" in text
    # params(): sample.leave_one_out [french]: trained on english tweets, tested on french product reviews
    loo_rows = [line for line in text.splitlines() if line.startswith("| leave one out (all others)")]
    assert "With two languages, leaving one out trains on the other alone: each cell of the leave-one-out row" in text
    assert len(loo_rows) == 1 and loo_rows[0].endswith("† |")
    headline_french = [line for line in text.splitlines() if line.startswith("| french | amazon_reviews_multi (")]
    assert len(headline_french) == 1 and "† |" in headline_french[0]  # its leave-one-out column
    assert "full fine-tuning, 2 epochs" in text and "weights saved as float32" in text
    # provenance: the data's identity, and the runs grouped by setup (the fixture's runs recorded none)
    assert "Data: local `/data/mirror`: 6 files, content md5 `x`." in text
    assert "| train | ? (?) | ? | ? | ? | ? | ? | 12 |" in text and "? = not recorded" in text
    prov = json.loads((metrics / "provenance.json").read_text())
    prov["data"] = {"source": "hub", "hub_id": "tyqiangz/multilingual-sentiments", "revision": "refs/convert/parquet",
                    "commit": "a" * 40}
    gpu = {"device": "cuda", "device_name": "NVIDIA H200", "precision": "bf16", "checkpoint": "xlm-roberta-base",
           "checkpoint_commit": "e73636d4f797dec63c3081bb6ed5c7b0bb3f2089",
           "versions": {"torch": "2.9.1", "transformers": "5.24.0", "crossling": "0.1.0"}}
    for run in ("joint_12_seed1", "joint_12_seed2"):
        # the predict stage read a model of an older crossling: no checkpoint recorded
        prov["runs"][run] = {"train": gpu, "predict": gpu | {"checkpoint": None, "checkpoint_commit": None}}
    write_json(prov, metrics / "provenance.json")
    text = run_report(tmp_path, p, metrics)
    assert "Data: hub `tyqiangz/multilingual-sentiments`, revision `refs/convert/parquet`, commit `aaaa" in text
    assert ("| train | cuda (NVIDIA H200) | bf16 | xlm-roberta-base @ e73636d4f797 | 2.9.1 | 5.24.0 | 0.1.0 | 2 |"
            in text)
    assert "| predict | cuda (NVIDIA H200) | bf16 | ? | 2.9.1 | 5.24.0 | 0.1.0 | 2 |" in text
    assert "| train | ? (?) | ? | ? | ? | ? | ? | 10 |" in text
    prov["data"] = {"source": "hub", "hub_id": "/data/export", "revision": None, "commit": None, "files": 18,
                    "content_md5": "b" * 32}
    write_json(prov, metrics / "provenance.json")
    text = run_report(tmp_path, p, metrics)
    assert f"Data: a local copy of the hub export, `/data/export`: 18 files, content md5 `{'b' * 32}`." in text
    prov["data"] = {"source": "local", "path": "/data/mirror"}  # no count or hash: an older download stage
    prov["runs"] = {run: {"train": gpu, "predict": gpu} for run in prov["runs"]}
    write_json(prov, metrics / "provenance.json")
    text = run_report(tmp_path, p, metrics)
    assert "Data: local `/data/mirror`: ? files, content md5 `?`." in text and "? = not recorded" in text
    prov["data"] |= {"files": 6, "content_md5": "x"}
    write_json(prov, metrics / "provenance.json")
    assert "? = not recorded" not in run_report(tmp_path, p, metrics)  # everything recorded: no footnote
    prov["data"] = {"source": "hub", "hub_id": "/data/export", "revision": "refs/convert/parquet", "commit": None}
    write_json(prov, metrics / "provenance.json")  # as an older crossling recorded a local copy of the export
    assert ("Data: a local copy of the hub export, `/data/export` (no commit or content hash recorded)."
            in run_report(tmp_path, p, metrics))


def test_report_flags_degenerate_runs_at_the_top_and_marks_nothing_of_them(tmp_path, pred_dir):  # noqa: F811
    for seed in (1, 2):
        collapse(pred_dir, f"mono_french_seed{seed}")
    p = params(tmp_path)
    text = run_report(tmp_path, p, evaluated(tmp_path, pred_dir, p))
    top = text.split("## Headline")[0]
    assert "**⚠ 2 degenerate run(s)**" in top and "`mono_french_seed1`: predictions collapsed (≥90% one class) on " \
                                                  "english, french" in top
    diffs = json.loads((tmp_path / "metrics" / "differences.json").read_text())
    d = diffs["joint_12_minus_mono_french_on_french"]
    shown = f"{d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
    assert f"{shown} ⚠" in text and f"**{shown}**" not in text


def test_report_bolds_findings_only(tmp_path, pred_dir):  # noqa: F811
    p = params(tmp_path)
    metrics = evaluated(tmp_path, pred_dir, p)
    diffs = json.loads((metrics / "differences.json").read_text())
    name = "joint_12_minus_joint_6_on_english"
    for finding in (1, 0):
        diffs[name] |= {"difference": 0.2, "ci_low": 0.1, "ci_high": 0.3, "finding": finding}
        write_json(diffs, metrics / "differences.json")
        text = run_report(tmp_path, p, metrics)
        assert ("| 12 − 6 | **+0.200 [+0.100, +0.300]** |" in text) is bool(finding)
        assert ("| 12 − 6 | +0.200 [+0.100, +0.300] |" in text) is not bool(finding)


def test_report_of_a_step_budget_and_the_validation_protocol(tmp_path, pred_dir):  # noqa: F811
    p = tiny_params("unused", sizes=(6, 12))
    p["train"] |= {"seeds": [1, 2], "max_steps": 7}
    p["data"]["dev_split"] = "validation"
    path = write_params(tmp_path / "steps.yaml", p)
    cfg = load_config(path)
    logs = tmp_path / "logs"
    for model in evaluate.model_names(cfg):  # every model 7 steps: epochs differ with the examples
        for seed in (1, 2):
            run = evaluate.run_name(model, seed)
            from test_evaluate import fake_logs
            per_epoch = -(-evaluate.training_examples(cfg)[model] // 8)
            fake_logs(logs, run, per_epoch, -(-7 // per_epoch), evaluate.training_languages(model, cfg.data.languages))
            summary = json.loads((logs / run / "metrics.json").read_text()) | {"optimizer_steps": 7}
            (logs / run / "metrics.json").write_text(json.dumps(summary))
            loss = logs / run / "plots" / "metrics" / "loss.tsv"
            loss.write_text("".join(line for line in loss.read_text().splitlines(keepends=True)
                                    if not line[0].isdigit() or int(line.split("\t")[1]) <= 7))
    metrics = tmp_path / "metrics"
    write_json(data_json(cfg.data.languages), metrics / "data.json")
    write_json({lang: {"pool_tokens_per_unit": 1, "pool_unk_rate": 0, "test_truncated_share": 0, "test_mean_tokens": 1}
                for lang in cfg.data.languages}, metrics / "tokenization.json")
    write_json({"source": "local", "path": "/data/mirror", "files": 6, "content_md5": "x"}, tmp_path / "source.json")
    evaluate.cli(["--params", str(path), "--predictions", str(pred_dir), "--logs", str(logs), "--data",
                  str(metrics / "data.json"), "--source", str(tmp_path / "source.json"), "--metrics", str(metrics),
                  "--plots", str(tmp_path / "plots")])
    budgets = json.loads((metrics / "budgets.json").read_text())
    assert {b[f"seed{s}"]["optimizer_steps"] for b in budgets.values() for s in (1, 2)} == {7}
    text = run_report(tmp_path, path, metrics)
    assert "7 optimizer steps for every model" in text and "the curve measures data alone" in text
    assert "the dataset's own validation split (data.dev_split: validation)" in text


def test_metrics_of_other_params_are_refused_in_one_line(tmp_path, pred_dir, capsys):  # noqa: F811
    p = params(tmp_path)  # seeds 1 and 2
    metrics = evaluated(tmp_path, pred_dir, p)
    budgets = json.loads((metrics / "budgets.json").read_text())
    for costs in budgets.values():
        del costs["seed2"]  # as evaluate wrote them for seeds [1]
    write_json(budgets, metrics / "budgets.json")
    path = tmp_path / "reports" / "results.md"
    with pytest.raises(SystemExit):
        report.cli(["--params", str(p), "--metrics", str(metrics), "--plots", "plots", "--out", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("lack 'seed2', which params.yaml asks for: they are not evaluate's output "
                            "for these params; re-run evaluate (dvc repro)")
    assert not path.exists()


def test_one_domain_and_one_epoch_read_as_such(tmp_path, pred_dir):  # noqa: F811
    p = params(tmp_path, data={"source_domains": {"sem_eval_2017": "tweets", "amazon_reviews_multi": "tweets"}},
               train={"epochs": 1})
    text = run_report(tmp_path, p, evaluated(tmp_path, pred_dir, p))
    assert "different datasets of one domain (tweets)" in text
    assert "†" not in text and "Raw cells compare different test sets (size, class prior)" in text  # one domain
    assert "full fine-tuning, 1 epoch," in text
    # one source name for two languages: SemEval-2017's English and Arabic subtasks are two datasets
    same = {lang: {"sources": {"test": {"sem_eval_2017": 40}}} for lang in ("english", "arabic")}
    assert report.domain_note(("english", "arabic"), same, {"english": "tweets", "arabic": "tweets"},
                              {"sem_eval_2017": "tweets"}).endswith(
        "its languages can still be separate datasets, so a transfer cell may also cross datasets (annotation "
        "guidelines, collection period).")


def test_a_source_without_a_domain_or_no_source_at_all_is_said_so():
    data = {"aa": {"sources": {"test": {"src_aa": 30}}}, "bb": {"sources": {"test": {"src_bb": 30, "news": 5}}}}
    note = report.domain_note(("aa", "bb"), data, {"aa": "src_aa", "bb": "src_bb + news articles"},
                              {"news": "news articles"})
    assert note.endswith("data.source_domains gives no domain for src_aa, src_bb: each source stands for a domain "
                         "of its own here; name its domain there to compare it with the others.")
    blank = {lang: {"sources": {"test": {"unknown": 30}}} for lang in ("aa", "bb")}
    assert report.domain_note(("aa", "bb"), blank, {"aa": "unknown", "bb": "unknown"}, {}) == (
        "The data names no source for its test texts (no `source` column, or a blank one), so the report cannot "
        "tell the languages' domains apart: a transfer cell may cross domains unmarked.")
    few_blank = {"aa": {"sources": {"test": {"news": 300, "unknown": 1}}},
                 "bb": {"sources": {"test": {"tweets": 300, "unknown": 2}}}}
    note = report.domain_note(("aa", "bb"), few_blank, {"aa": "news + unknown", "bb": "tweets + unknown"},
                              {"news": "news", "tweets": "tweets"})
    assert "different sources and domains" in note and note.endswith("of aa, bb (no `source` column, or a blank one): "
                                                                     "their domain is unknown, and a cell into them "
                                                                     "may cross domains.")
    partly = {"aa": {"sources": {"test": {"news": 30}}}, "bb": {"sources": {"test": {"news": 20, "unknown": 10}}}}
    note = report.domain_note(("aa", "bb"), partly, {"aa": "news articles", "bb": "news articles + unknown"},
                              {"news": "news articles"})
    assert "gives no domain" not in note and note.endswith(
        "The data names no source for (some of) the test texts of bb (no `source` column, or a blank one): their "
        "domain is unknown, and a cell into them may cross domains.")


def test_a_one_language_study_reports_no_transfer_and_compares_no_run_with_itself(tmp_path):
    preds = tmp_path / "predictions"
    preds.mkdir()
    # joint_12, joint_equal and mono_english train on the same texts with the same seeds: on CPU, one run thrice
    for draw, names in enumerate((["joint_6"], ["joint_12", "joint_equal", "mono_english"])):
        for seed in SEEDS:
            pred = fake_predictions(10 * draw + seed)
            for name in names:
                pred[pred["language"] == "english"].to_parquet(preds / f"{evaluate.run_name(name, seed)}.parquet",
                                                               schema=prediction_schema(LABELS))
    p = params(tmp_path, data={"languages": ["english"], "source_domains": {"sem_eval_2017": "tweets"}},
               sample={"leave_one_out": []})
    metrics = evaluated(tmp_path, preds, p)
    text = run_report(tmp_path, p, metrics)
    mono = json.loads((metrics / "transfer.json").read_text())["mono_english"]["english"]
    assert "| english | sem_eval_2017 (tweets) |" in text and f"{mono['macro_f1']:.3f} [" in text
    assert ("One language (data.languages): joint_12, joint_equal and the monolingual model train on the same 12 "
            "english texts with the same seeds and settings, so they repeat one training run") in text
    assert "The test split comes from sem_eval_2017 (tweets)." in text
    for absent in ("spread over the 1 languages", "Zero-shot transfer", "zero-shot mean into it", "Normalized transfer",
                   "Raw cells", "transfer_matrix.png", "Zero-shot cell minus chance", "Every language's",
                   "Joint minus the monolingual model"):
        assert absent not in text
    assert list(json.loads((metrics / "differences.json").read_text())) == ["joint_12_minus_joint_6_on_english"]
    assert "1 difference, 0 of them findings" in text and "12 − 6" in text
    headline = json.loads((metrics / "headline.json").read_text())
    assert "joint_equal_budget_minus_mono_mean" not in headline and "zero_shot_mean_macro_f1" not in headline
    assert headline["joint_largest_mean_macro_f1"] == headline["mono_in_language_mean_macro_f1"]


def test_the_interval_level_and_threshold_are_printed_as_used():
    from conftest import make_config

    for confidence, level, threshold in ((0.95, "95%", "0.05"), (0.975, "97.5%", "0.025"), (0.9, "90%", "0.1"),
                                         (0.95123456789, "95.12345679%", "0.04876543211")):
        note = report.variance_note(make_config({"evaluate": {"confidence": confidence}}))
        assert f"Intervals are {level} percentile intervals" in note and f"p-value is below {threshold} and" in note


def test_tokenization_table_names_each_languages_unit(tmp_path, pred_dir):  # noqa: F811
    """The unit follows the pool's scripts (the tokenization stage's rule), not the language's name."""
    p = params(tmp_path)
    metrics = evaluated(tmp_path, pred_dir, p)
    data = json.loads((metrics / "data.json").read_text())
    data["french"]["scripts"]["pool"] = {"Han": 0.7, "Kana": 0.2, "Latin": 0.1}
    write_json(data, metrics / "data.json")
    text = run_report(tmp_path, p, metrics)
    assert "| english | word | 1.5 |" in text and "| french | character | 1.5 |" in text
    assert "japanese and chinese" not in text


def test_the_opening_names_the_hub_dataset_not_just_hub(tmp_path, pred_dir):  # noqa: F811
    metrics = evaluated(tmp_path, pred_dir, params(tmp_path))
    assert ", data `unused`, " in run_report(tmp_path, params(tmp_path), metrics)
    (tmp_path / "hub").mkdir()
    hub = params(tmp_path / "hub", data={"source": "hub", "hub_id": "cardiffnlp/tweet_sentiment_multilingual"})
    assert ", data `cardiffnlp/tweet_sentiment_multilingual` (hub), " in run_report(tmp_path / "hub", hub, metrics)


def test_the_at_chance_reason_of_a_run_names_its_model_with_its_seeds_averaged():
    """One seed collapsed, the other perfect: the model's mean is at chance and both runs are flagged, but the
    perfect run's own test macro-F1 is not what the report says is at chance."""
    health = {"joint_equal_seed2": {"collapsed_test_languages": 0, "best_dev_macro_f1": 1.0,
                                    "single_class_dev_macro_f1": 0.333, "dev_at_single_class_level": 0,
                                    "in_language_at_chance": 1, "degenerate": 1}}
    note = report.degenerate_note(health, 0.9)
    assert "`joint_equal_seed2`: its model's in-language test macro-F1 (its seeds averaged) not above chance" in note
