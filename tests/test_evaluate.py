import json
import math
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, stage_error, tiny_params, write_params
from dvc.repo import Repo
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from crossling import evaluate, figures, stats
from crossling.common import EQUAL_BUDGET, DataError, joint_name, loo_name, mono_name, run_name
from crossling.config import load_config
from crossling.predict import prediction_schema

LANGS = ("english", "french")
LABELS = ("positive", "neutral", "negative")
SIZES = (6, 12)
SEEDS = (1, 2)
ONE_RUN = stats.resample_indices(1, 1000, 0)  # 1000 resamples of one seed: each draws run 0, as evaluate does


def fake_predictions(seed: int, n: int = 40, skill: float = 0.6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gold = np.random.default_rng(0).integers(0, 3, size=2 * n)  # the same test split for every run
    pred = np.where(rng.random(2 * n) < skill, gold, rng.integers(0, 3, size=2 * n))
    probs = rng.dirichlet(np.ones(3), size=2 * n).astype("float32")
    df = pd.DataFrame({"language": np.repeat(LANGS, n), "test_row": np.arange(2 * n), "label_id": gold,
                       "pred_id": pred})
    for i, name in enumerate(LABELS):
        df[f"prob_{name}"] = probs[:, i]
    return df


def params(tmp_path, **sections):
    p = tiny_params("unused", sizes=SIZES)
    p["train"]["seeds"] = list(SEEDS)
    p["sample"]["leave_one_out"] = ["french"]
    p["evaluate"] |= {"bootstrap_samples": 500, "seed": 3}
    for section, values in sections.items():
        p[section] |= values
    return write_params(tmp_path / "params.yaml", p)


def data_counts(per_class=5):
    """What metrics/data.json holds of the dev splits and sources, for evaluate."""
    return {lang: {f"dev_{name}": per_class for name in LABELS} | {"sources": {"test": {f"src_{lang}": 40}}}
            for lang in LANGS}


def run_cli(tmp_path, pred_dir, params_path=None, logs=None):
    params_path = params_path or params(tmp_path)
    logs = logs or tmp_path / "logs"
    if not logs.exists():
        all_logs(logs, load_config(params_path))
    (tmp_path / "data.json").write_text(json.dumps(data_counts()))
    (tmp_path / "source.json").write_text(json.dumps({"source": "local", "content_md5": "x"}))
    evaluate.cli(["--params", str(params_path), "--predictions", str(pred_dir), "--logs", str(logs),
                  "--data", str(tmp_path / "data.json"), "--source", str(tmp_path / "source.json"),
                  "--metrics", str(tmp_path / "metrics"),
                  "--plots", str(tmp_path / "plots")])
    return tmp_path / "metrics", tmp_path / "plots"


@pytest.fixture
def pred_dir(tmp_path):
    d = tmp_path / "predictions"
    d.mkdir()
    names = [f"joint_{s}" for s in SIZES] + ["joint_equal"] + [f"mono_{lang}" for lang in LANGS] + ["loo_french"]
    for i, name in enumerate(names):
        for seed in SEEDS:
            fake_predictions(10 * i + seed).to_parquet(d / f"{evaluate.run_name(name, seed)}.parquet",
                                                        schema=prediction_schema(LABELS))
    return d


def test_metrics_equal_sklearn():
    pred = fake_predictions(0)
    part = pred[pred["language"] == "french"]
    got = stats.scores(part["label_id"].to_numpy(), part["pred_id"].to_numpy(), LABELS)
    y, p = part["label_id"], part["pred_id"]
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-6)
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    assert got["macro_precision"] == pytest.approx(precision_score(y, p, average="macro"), abs=1e-6)
    assert got["macro_recall"] == pytest.approx(recall_score(y, p, average="macro"), abs=1e-6)
    per_class = f1_score(y, p, average=None, labels=[0, 1, 2])
    assert [got[f"f1_{n}"] for n in LABELS] == pytest.approx(list(per_class), abs=1e-6)
    # the real macro-F1: the mean of per-class F1, not F1 of macro precision and recall
    assert got["macro_f1"] == pytest.approx(np.mean(per_class), abs=1e-6)


def test_bootstrap_resamples_match_sklearn():
    rng = np.random.default_rng(5)
    gold, pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    idx = rng.integers(0, 50, size=(4, 50))
    fast = stats._resampled(gold, pred, idx, 3)
    for row in range(4):
        assert fast["macro_f1"][row] == pytest.approx(
            f1_score(gold[idx[row]], pred[idx[row]], average="macro", labels=[0, 1, 2], zero_division=0))


def test_interval_contains_the_estimate_and_narrows_with_more_texts():
    widths = []
    for n in (100, 1000, 10000):
        pred = fake_predictions(1, n=n)
        gold, guess = pred["label_id"].to_numpy(), pred["pred_id"].to_numpy()
        means = stats.resampled_means(gold, [guess], stats.resample_indices(len(gold), 1000, 0), 3, ONE_RUN)
        point = stats.scores(gold, guess, LABELS)
        for metric in ("accuracy", "macro_f1"):
            low, high = stats.interval(means[metric], 0.95)
            assert low <= point[metric] <= high
        widths.append(np.subtract(*stats.interval(means["macro_f1"], 0.95)[::-1]))
    assert widths[0] > widths[1] > widths[2]
    again = stats.resampled_means(gold, [guess], stats.resample_indices(len(gold), 1000, 0), 3, ONE_RUN)
    assert np.array_equal(again["macro_f1"], means["macro_f1"])  # seeded


def test_cli_outputs_match_a_recomputation(tmp_path, pred_dir):
    metrics, plots = run_cli(tmp_path, pred_dir)
    joint = json.loads((metrics / "joint.json").read_text())
    transfer = json.loads((metrics / "transfer.json").read_text())
    for name, table in [("joint_12", joint), ("mono_english", transfer)]:
        runs = [pd.read_parquet(pred_dir / f"{evaluate.run_name(name, s)}.parquet") for s in SEEDS]
        for lang in LANGS:
            f1 = [f1_score(r.loc[r["language"] == lang, "label_id"], r.loc[r["language"] == lang, "pred_id"],
                           average="macro") for r in runs]
            cell = table[name][lang]
            assert cell["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-5)
            assert cell["macro_f1_seed_std"] == pytest.approx(np.std(f1, ddof=1), abs=1e-5)  # sample std
            assert cell["macro_f1_ci_low"] <= cell["macro_f1"] <= cell["macro_f1_ci_high"]
            assert cell["seeds"] == 2
    detailed = json.loads((metrics / "detailed.json").read_text())
    run = pd.read_parquet(pred_dir / "joint_6_seed2.parquet")
    part = run[run["language"] == "french"]
    assert detailed["joint_6_seed2"]["french"]["f1_neutral"] == pytest.approx(
        f1_score(part["label_id"], part["pred_id"], average=None, labels=[0, 1, 2])[1], abs=1e-6)
    conf = json.loads((metrics / "confusion_matrices.json").read_text())
    assert conf["runs"]["joint_6_seed2"]["french"] == confusion_matrix(part["label_id"], part["pred_id"]).tolist()

    summary = json.loads((metrics / "headline.json").read_text())
    assert summary["joint_largest_mean_macro_f1"] == pytest.approx(
        np.mean([joint["joint_12"][lang]["macro_f1"] for lang in LANGS]), abs=1e-6)
    off = [transfer["mono_english"]["french"]["macro_f1"], transfer["mono_french"]["english"]["macro_f1"]]
    assert summary["zero_shot_mean_macro_f1"] == pytest.approx(np.mean(off), abs=1e-6)
    own = {lang: transfer[f"mono_{lang}"][lang]["macro_f1"] for lang in LANGS}
    assert summary["normalized_transfer_mean"] == pytest.approx(
        np.mean([transfer["mono_english"]["french"]["macro_f1"] - own["french"],
                 transfer["mono_french"]["english"]["macro_f1"] - own["english"]]), abs=2e-6)
    assert summary["normalized_transfer_into_french"] == pytest.approx(
        transfer["mono_english"]["french"]["macro_f1"] - own["french"], abs=2e-6)
    loo = json.loads((metrics / "leave_one_out.json").read_text())
    assert summary["leave_one_out_mean_macro_f1"] == loo["french"]["french"]["macro_f1"]
    tsum = json.loads((metrics / "transfer_summary.json").read_text())
    en = tsum["english"]
    assert en["in_language_macro_f1"] == own["english"]
    assert en["normalized_transfer_out_mean"] == pytest.approx(
        transfer["mono_english"]["french"]["macro_f1"] - own["french"], abs=2e-6)
    assert en["joint_macro_f1"] == joint["joint_12"]["english"]["macro_f1"]
    normalized = json.loads((metrics / "transfer_normalized.json").read_text())
    assert normalized["english"]["french"]["difference"] == pytest.approx(
        transfer["mono_english"]["french"]["macro_f1"] - own["french"], abs=2e-6)
    assert normalized["leave_one_out"]["french"]["difference"] == pytest.approx(
        loo["french"]["french"]["macro_f1"] - own["french"], abs=2e-6)
    rows = json.loads((plots / "transfer_normalized.json").read_text())
    assert {(r["train_language"], r["test_language"]) for r in rows} == {
        ("english", "french"), ("french", "english"), ("leave_one_out", "french")}
    assert all(r["test_order"] == LANGS.index(r["test_language"]) for r in rows)  # the plot's column order

    curve = json.loads((plots / "learning_curve.json").read_text())
    assert {(r["size"], r["language"]) for r in curve} == {(s, lang) for s in SIZES for lang in LANGS}
    assert all(r["macro_f1_ci_low"] <= r["macro_f1"] <= r["macro_f1_ci_high"] for r in curve)
    matrix = json.loads((plots / "transfer_matrix.json").read_text())
    cell = next(r for r in matrix if r["train_language"] == "french" and r["test_language"] == "english")
    assert cell["macro_f1"] == transfer["mono_french"]["english"]["macro_f1"]
    assert (cell["train_domain"], cell["test_domain"]) == ("src_french", "src_english")  # no domain given: the source
    for png in ("learning_curve.png", "transfer_matrix.png", "transfer_normalized.png"):
        assert (plots / png).read_bytes()[:4] == b"\x89PNG"

    # every metric file is flat enough for `dvc metrics diff`: dicts of numbers, no lists
    def leaves(x):
        return [v for val in x.values() for v in (leaves(val) if isinstance(val, dict) else [val])]
    assert all(isinstance(v, int | float) for f in (joint, transfer, summary, tsum, normalized) for v in leaves(f))


def test_missing_predictions_are_named(tmp_path, pred_dir):
    (pred_dir / "mono_french_seed2.parquet").unlink()
    with pytest.raises(DataError, match="predictions of mono_french_seed2 not found"):
        evaluate.evaluate(pred_dir, load_config(params(tmp_path)))


def test_dvc_yaml_names_runs_as_the_code_does():
    # dvc.yaml cannot call Python: its run names must spell the scheme of crossling.common.
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for kind, model, seed in (("joint", joint_name("${item.size}"), "${item.seed}"),
                              ("mono", mono_name("${item.lang}"), "${item.seed}"),
                              ("loo", loo_name("${item.lang}"), "${item.seed}"),
                              ("joint_equal", EQUAL_BUDGET, "${item}")):
        name = run_name(model, seed)
        train, predict = (stages[f"{step}_{kind}"] for step in ("train", "predict"))
        train, predict = train.get("do", train), predict.get("do", predict)  # foreach stages
        train_cmd, predict_cmd = (" ".join(stage["cmd"].split()) for stage in (train, predict))
        for arg in (f"--name {name}", f"--out models/{name}", f"--live logs/{name}"):
            assert arg in train_cmd, (kind, arg)
        assert f"models/{name}" in train["outs"]
        assert f"--model models/{name}" in predict_cmd and f"--out data/predictions/{name}.parquet" in predict_cmd


def test_one_seed_reports_no_spread_and_no_nan(tmp_path, pred_dir):
    p = tiny_params("unused", sizes=SIZES)
    p["train"]["seeds"] = [1]
    p["evaluate"]["bootstrap_samples"] = 200
    out = evaluate.evaluate(pred_dir, load_config(write_params(tmp_path / "one.yaml", p)))
    cell = out["joint"]["joint_12"]["english"]
    assert cell["seeds"] == 1 and "macro_f1_seed_std" not in cell
    diffs = {k: {f: v for f, v in d.items() if f != "models"} for k, d in out["differences"].items()}
    text = json.dumps({k: out[k] for k in ("joint", "transfer", "transfer_summary")} | {"d": diffs}, allow_nan=False)
    assert "NaN" not in text


def test_paired_differences_use_the_shared_resamples_of_texts_and_seeds(tmp_path, pred_dir):
    cfg = load_config(params(tmp_path))
    diffs = evaluate.evaluate(pred_dir, cfg)["differences"]
    lang, n_resamples = "french", cfg.evaluate.bootstrap_samples
    runs = {name: [pd.read_parquet(pred_dir / f"{evaluate.run_name(name, s)}.parquet") for s in SEEDS]
            for name in ("joint_12", "joint_6", "joint_equal", "mono_english", "mono_french", "loo_french")}
    gold = runs["joint_6"][0].loc[lambda d: d["language"] == lang, "label_id"].to_numpy()
    pred = {name: [r.loc[r["language"] == lang, "pred_id"].to_numpy() for r in rs] for name, rs in runs.items()}
    idx = stats.resample_indices(len(gold), n_resamples, [cfg.evaluate.seed, zlib.crc32(lang.encode())])
    seed_idx = stats.resample_indices(len(SEEDS), n_resamples, [cfg.evaluate.seed, zlib.crc32(b"seeds")])
    assert seed_idx.shape == (n_resamples, 2) and set(np.unique(seed_idx)) == {0, 1}

    def per_resample(name):  # resample b: texts idx[b], seeds seed_idx[b] drawn with replacement
        per_run = np.stack([stats._resampled(gold, p, idx, 3)["macro_f1"] for p in pred[name]])
        return np.array([per_run[seed_idx[b], b].mean() for b in range(n_resamples)])

    def point(name):
        return np.mean([f1_score(gold, p, average="macro") for p in pred[name]])

    for a, b, key in [("joint_12", "joint_6", "joint_12_minus_joint_6_on_french"),  # a learning-curve step
                      ("joint_12", "mono_french", "joint_12_minus_mono_french_on_french"),  # largest joint vs mono
                      ("joint_equal", "mono_french", "joint_equal_minus_mono_french_on_french"),  # equal budget
                      ("mono_english", "mono_french", "mono_english_minus_mono_french_on_french"),  # normalized
                      ("loo_french", "mono_french", "loo_french_minus_mono_french_on_french")]:  # leave one out
        delta = per_resample(a) - per_resample(b)
        d = diffs[key]
        assert d["difference"] == pytest.approx(point(a) - point(b), abs=2e-6)
        assert [d["ci_low"], d["ci_high"]] == pytest.approx(list(np.percentile(delta, [2.5, 97.5])), abs=1e-6)
        assert d["p"] == pytest.approx(math.erfc(abs(d["difference"]) / np.std(delta, ddof=1) / math.sqrt(2)), abs=1e-6)
        assert d["models"] == (a, b)
    chance = diffs["mono_english_minus_chance_on_french"]
    assert chance["difference"] == pytest.approx(point("mono_english") - stats.chance_macro_f1(gold, idx, 3)[0], abs=2e-6)
    # the unpaired in-language-minus-cell differences (different test sets) are gone
    assert not [k for k in diffs if "_on_english_minus_on_" in k]


def test_seed_resampling_widens_intervals_when_seeds_disagree():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 500)
    good = np.where(rng.random(500) < 0.9, gold, (gold + 1) % 3)
    bad = np.where(rng.random(500) < 0.4, gold, (gold + 1) % 3)
    idx = stats.resample_indices(500, 1000, 1)
    seeds = stats.resample_indices(2, 1000, 2)
    every_run_once = np.tile([0, 1], (1000, 1))  # test texts resampled, seeds not
    texts_only = stats.resampled_means(gold, [good, bad], idx, 3, every_run_once)["macro_f1"]
    both = stats.resampled_means(gold, [good, bad], idx, 3, seeds)["macro_f1"]
    width = [np.subtract(*stats.interval(v, 0.95)[::-1]) for v in (texts_only, both)]
    assert width[1] > 3 * width[0]  # two very different seeds: the seed level dominates
    agree = stats.resampled_means(gold, [good, good], idx, 3, seeds)["macro_f1"]
    one = stats.resampled_means(gold, [good], idx, 3, ONE_RUN)["macro_f1"]
    assert np.allclose(agree, one)  # identical seeds add nothing
    assert not stats.resample_indices(1, 10, 0).any()


def test_holm_and_benjamini_hochberg_adjustments():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running maximum
    assert stats.adjust(p, "holm") == {"d": 0.02, "a": 0.03, "c": 0.06, "b": 0.06}
    # BH: sorted p x m / rank = 0.02, 0.02, 0.04, 0.04, then running minimum from the top
    assert stats.adjust(p, "bh") == {"d": 0.02, "a": 0.02, "c": 0.04, "b": 0.04}
    assert stats.adjust({"x": 0.9, "y": 0.8}, "holm") == {"y": 1.0, "x": 1.0}
    # BH where m p / rank is out of order (0.04, 0.022, 1.2, 0.95): the running minimum from the top orders them
    assert stats.adjust({"a": 0.01, "b": 0.011, "c": 0.9, "d": 0.95}, "bh") == {"a": 0.022, "b": 0.022, "c": 0.95,
                                                                                  "d": 0.95}
    assert stats.adjust({"x": 0.9, "y": 0.8}, "bh") == {"y": 0.9, "x": 0.9}


def test_an_adjusted_p_value_at_the_threshold_is_no_finding():
    """1 - 0.95 is 0.050000000000000044 in floating point: a published p_adjusted of 0.05 must not pass it."""
    from conftest import make_config

    def finding(p: float, confidence: float) -> tuple[float, int]:  # Holm over two: the smaller p doubled
        diffs = {name: {"difference": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p": value, "models": ("a", "b"),
                        "on": "english"} for name, value in (("x", p), ("far", 0.6))}
        d = evaluate.mark_findings(diffs, set(), set(), make_config({"evaluate": {"confidence": confidence}}))["x"]
        return d["p_adjusted"], d["finding"]

    assert finding(0.025, 0.95) == (0.05, 0)
    assert finding(0.0250002, 0.95) == (0.05, 0)  # 0.0500004, published rounded: the reader sees 0.05
    assert finding(0.0249, 0.95) == (0.0498, 1)
    assert finding(0.0125, 0.975) == (0.025, 0) and finding(0.0124, 0.975) == (0.0248, 1)


def test_p_value_from_the_bootstrap_standard_error():
    rng = np.random.default_rng(0)
    resampled = rng.normal(0.1, 0.05, 5000)
    assert stats.p_value(0.1, resampled) == pytest.approx(math.erfc(2 / math.sqrt(2)), rel=0.05)  # z = 2: p = 0.0455
    assert stats.p_value(0.0, resampled) == 1.0
    assert stats.p_value(0.0, np.zeros(10)) == 1.0 and stats.p_value(0.2, np.full(10, 0.2)) == 0.0


def test_single_class_level_of_macro_f1():
    assert stats.single_class_macro_f1([5, 5, 5]) == pytest.approx(1 / 6)  # F1 of the predicted class 1/2, over 3
    assert stats.single_class_macro_f1([8, 1, 1]) == pytest.approx(2 * 8 / 18 / 3)


def test_pairing_narrows_the_interval_of_a_small_difference():
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 3, 600)
    a = np.where(rng.random(600) < 0.7, gold, rng.integers(0, 3, 600))
    b = a.copy()
    flip = rng.choice(600, 15, replace=False)
    b[flip] = (b[flip] + 1) % 3  # b = a with 15 of its predictions changed
    idx = stats.resample_indices(600, 1000, 0)
    fa, fb = (stats.resampled_means(gold, [p], idx, 3, ONE_RUN)["macro_f1"] for p in (a, b))
    paired = stats.interval(fa - fb, 0.95)
    other = stats.resampled_means(gold, [b], stats.resample_indices(600, 1000, 1), 3, ONE_RUN)["macro_f1"]
    unpaired = stats.interval(fa - other, 0.95)
    assert paired[1] - paired[0] < (unpaired[1] - unpaired[0]) / 3
    assert paired[0] > 0  # the paired interval sees a difference the unpaired one cannot
    assert unpaired[0] < 0 < unpaired[1]


def test_chance_is_the_mean_macro_f1_of_uniform_guessing():
    gold = np.repeat([0, 1, 2], [1800, 900, 300])
    rng = np.random.default_rng(0)
    simulated = np.mean([f1_score(gold, rng.integers(0, 3, len(gold)), average="macro") for _ in range(200)])
    point, per_resample = stats.chance_macro_f1(gold, stats.resample_indices(len(gold), 50, 0), 3)
    assert point == pytest.approx(simulated, abs=0.005)
    assert point < 1 / 3  # imbalanced classes lower it
    assert stats.chance_macro_f1(np.repeat([0, 1, 2], 5), np.zeros((1, 15), dtype=int), 3)[0] == pytest.approx(1 / 3)
    assert per_resample.shape == (50,) and abs(per_resample.mean() - point) < 0.01


def test_different_test_texts_in_two_runs_are_refused(tmp_path, pred_dir):
    run = pd.read_parquet(pred_dir / "joint_6_seed1.parquet")
    run.loc[run["language"] == "english", "label_id"] = (run.loc[run["language"] == "english", "label_id"] + 1) % 3
    run.to_parquet(pred_dir / "joint_6_seed1.parquet", schema=prediction_schema(LABELS))
    with pytest.raises(DataError, match="hold different english test texts"):
        evaluate.evaluate(pred_dir, load_config(params(tmp_path)))


def test_training_examples_of_every_model(tmp_path):
    p = tiny_params("unused", sizes=(6, 12, 24), languages=("english", "french", "arabic", "hindi"))
    p["sample"]["leave_one_out"] = ["hindi"]
    cfg = load_config(write_params(tmp_path / "b.yaml", p))
    examples = evaluate.training_examples(cfg)
    assert examples == {"joint_6": 24, "joint_12": 48, "joint_24": 96, "joint_equal": 24, "mono_english": 24,
                        "mono_french": 24, "mono_arabic": 24, "mono_hindi": 24, "loo_hindi": 72}
    assert list(examples) == evaluate.model_names(cfg)
    assert evaluate.training_languages("loo_hindi", cfg.data.languages) == ("english", "french", "arabic")


def write_tsv(path, column, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp\tstep\t" + column + "\n" + "".join(f"0\t{s}\t{v}\n" for s, v in rows))


def fake_logs(root, run, per_epoch, epochs, languages, kept=None, dev_f1=None):
    """A dvclive directory as the training stage writes it: loss and epoch every step, dev F1 every epoch, and
    the summary with the steps trained and the epoch whose weights were kept."""
    metrics = root / run / "plots" / "metrics"
    steps = range(1, per_epoch * epochs + 1)
    write_tsv(metrics / "loss.tsv", "loss", [(s, 1.0 / s) for s in steps])
    write_tsv(metrics / "epoch.tsv", "epoch", [(s, s / per_epoch) for s in steps])
    for lang in languages:
        write_tsv(metrics / "dev" / f"macro_f1_{lang}.tsv", f"macro_f1_{lang}",
                  [(e * per_epoch, dev_f1 if dev_f1 is not None else 0.3 + 0.1 * e) for e in range(1, epochs + 1)])
    kept = kept or epochs
    (root / run / "metrics.json").write_text(json.dumps({
        "selected_epoch": kept, "selected_step": kept * per_epoch, "optimizer_steps": per_epoch * epochs,
        "steps_per_epoch": per_epoch}))


def steps_per_epoch(cfg, model):
    return -(-evaluate.training_examples(cfg)[model] // cfg.train.batch_size)


def all_logs(root, cfg, kept=None, dev_f1=None):
    """Logs of every training run of `cfg`; kept: run -> epoch whose weights it kept (default: the last)."""
    for model in evaluate.model_names(cfg):
        for seed in cfg.train.seeds:
            run = evaluate.run_name(model, seed)
            fake_logs(root, run, steps_per_epoch(cfg, model), cfg.train.epochs,
                      evaluate.training_languages(model, cfg.data.languages), (kept or {}).get(run),
                      (dev_f1 or {}).get(run))


def budgets_of(logs, cfg, runs):
    return {run: evaluate.run_budget(logs, model, seed, cfg) for run, (model, seed) in runs.items()}


def test_training_and_dev_curves_span_the_run_on_an_epoch_axis(tmp_path):
    cfg = load_config(params(tmp_path))  # 2 epochs, batch 8, sizes 6 and 12 over two languages
    logs = tmp_path / "logs"
    fake_logs(logs, "joint_12_seed1", steps_per_epoch(cfg, "joint_12"), 2, LANGS)
    fake_logs(logs, "mono_english_seed1", steps_per_epoch(cfg, "mono_english"), 2, ("english",))
    runs = {"joint_12_seed1": ("joint_12", 1), "mono_english_seed1": ("mono_english", 1)}
    budgets = budgets_of(logs, cfg, runs)
    losses, dev = evaluate.training_curves(logs, runs, budgets, cfg)
    for run in runs:
        rows = [r for r in losses if r["model"] == run]
        assert rows[-1]["step"] == budgets[run]["optimizer_steps"] and rows[-1]["epoch"] == 2  # whole run, one axis
        assert min(r["epoch"] for r in rows) > 0
    assert budgets["joint_12_seed1"]["optimizer_steps"] != budgets["mono_english_seed1"]["optimizer_steps"]
    assert {(r["model"], r["language"], r["epoch"]) for r in dev} == {
        ("joint_12_seed1", "english", 1), ("joint_12_seed1", "english", 2), ("joint_12_seed1", "french", 1),
        ("joint_12_seed1", "french", 2), ("mono_english_seed1", "english", 1), ("mono_english_seed1", "english", 2)}
    loss = logs / "mono_english_seed1" / "plots" / "metrics" / "loss.tsv"
    loss.write_text(loss.read_text().replace("\t2\t0.5\n", "\t2\tnan\n"))  # an fp16 log whose step was skipped
    losses, dev = evaluate.training_curves(logs, runs, budgets, cfg)
    assert [r["loss"] for r in losses if r["model"] == "mono_english_seed1"][:3] == [1.0, None, round(1 / 3, 6)]
    png = tmp_path / "curves.png"
    figures.training_curves(pd.DataFrame(losses), pd.DataFrame(dev), png)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_missing_logs_are_refused_naming_the_file(tmp_path):
    cfg = load_config(params(tmp_path))
    logs = tmp_path / "logs"
    fake_logs(logs, "joint_12_seed1", steps_per_epoch(cfg, "joint_12"), 2, LANGS)
    runs = {"joint_12_seed1": ("joint_12", 1)}
    (logs / "joint_12_seed1" / "plots" / "metrics" / "dev" / "macro_f1_french.tsv").unlink()
    with pytest.raises(DataError, match=r"joint_12_seed1/plots/metrics/dev/macro_f1_french.tsv not found"):
        evaluate.training_curves(logs, runs, budgets_of(logs, cfg, runs), cfg)
    loss = logs / "joint_12_seed1" / "plots" / "metrics" / "loss.tsv"
    loss.write_text("timestamp\tstep\tloss\n")  # dvclive wrote the header, then training died
    with pytest.raises(DataError, match=r"joint_12_seed1/plots/metrics/loss.tsv has no rows"):
        evaluate.training_curves(logs, runs, budgets_of(logs, cfg, runs), cfg)
    (logs / "joint_12_seed1" / "metrics.json").write_text(json.dumps({"selected_epoch": 2}))
    with pytest.raises(DataError, match=r"joint_12_seed1/metrics.json has no selected_step.*"
                                         r"re-run the stage that writes it \(`dvc stage list` names it\): dvc repro -f -s <stage>, then dvc repro$"):
        evaluate.run_budget(logs, "joint_12", 1, cfg)
    with pytest.raises(DataError, match=r"mono_french_seed3/metrics.json not found.*did not finish; re-run the stage that writes it"):
        evaluate.run_budget(logs, "mono_french", 3, cfg)
    with pytest.raises(DataError, match=r"joint_equal_seed3/metrics.json not found.*did not finish; re-run the stage that writes it"):
        evaluate.run_budget(logs, "joint_equal", 3, cfg)


def test_dvc_names_the_stage_that_writes_a_runs_logs(tmp_path, monkeypatch):
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    p = tiny_params("unused", sizes=(6, 12), train__seeds=[1, 3])
    p["sample"]["leave_one_out"] = ["english"]
    write_params(tmp_path / "params.yaml", p)
    Repo.init(tmp_path, no_scm=True)
    monkeypatch.chdir(tmp_path)
    for path, stage in [("logs/joint_12_seed1", "train_joint@12-1"), ("logs/mono_french_seed3/metrics.json",
                        "train_mono@french-3"), ("logs/joint_equal_seed3", "train_joint_equal@3"),
                        ("logs/loo_english_seed1", "train_loo@english-1")]:
        assert evaluate.rerun(Path(path)) == f"re-run it (dvc repro -f -s {stage}, then dvc repro)"
    assert evaluate.rerun(Path("logs/joint_7_seed1")).startswith(  # no such run in dvc.yaml
        "re-run the stage that writes it (`dvc stage list` names it)")


def test_logs_that_disagree_with_the_params_or_themselves_are_refused(tmp_path):
    cfg = load_config(params(tmp_path))  # 2 epochs
    per_epoch = steps_per_epoch(cfg, "joint_6")
    logs = tmp_path / "logs"
    fake_logs(logs, "joint_6_seed1", per_epoch, 3, LANGS)  # a run of another train.epochs
    with pytest.raises(DataError, match=f"{3 * per_epoch} optimizer steps, but train.epochs \\(2\\) gives {2 * per_epoch}"
                                        ".*re-run the stage that writes it"):
        evaluate.run_budget(logs, "joint_6", 1, cfg)
    steps_cfg = load_config(params(tmp_path, train={"max_steps": 5}))
    with pytest.raises(DataError, match="optimizer steps, but train.max_steps is 5"):
        evaluate.run_budget(logs, "joint_6", 1, steps_cfg)
    fake_logs(logs, "joint_6_seed1", per_epoch, 2, LANGS, kept=3)
    with pytest.raises(DataError, match="selected_epoch 3, but the run trained 2 epochs"):
        evaluate.run_budget(logs, "joint_6", 1, cfg)
    fake_logs(logs, "joint_6_seed1", per_epoch, 2, LANGS)
    runs = {"joint_6_seed1": ("joint_6", 1)}
    budgets = budgets_of(logs, cfg, runs)
    write_tsv(logs / "joint_6_seed1" / "plots" / "metrics" / "epoch.tsv", "epoch", [(1, 1.0)])
    with pytest.raises(DataError, match=f"epoch 1.0 logged at optimizer step 1, but the run's summary gives {per_epoch}"):
        evaluate.training_curves(logs, runs, budgets, cfg)
    # 3 batches accumulated per step, 2 steps per epoch (4 to 6 batches): step 1 is at epoch 0.5 to 0.75, step 2 at 1
    accumulated = load_config(params(tmp_path, train={"gradient_accumulation_steps": 3}))
    for epochs, refused in (([(1, 0.75), (2, 1.0)], None),
                            ([(1, 1.0), (2, 1.0)], "epoch 1.0 logged at optimizer step 1"),
                            ([(1, 0.5), (2, 0.6)], "epoch 0.6 logged at optimizer step 2")):
        write_tsv(logs / "joint_6_seed1" / "plots" / "metrics" / "epoch.tsv", "epoch", epochs)
        if refused:
            with pytest.raises(DataError, match=refused):
                evaluate.training_curves(logs, runs, budgets, accumulated)
        else:
            evaluate.training_curves(logs, runs, budgets, accumulated)


def test_budgets_give_steps_and_the_kept_epoch_of_every_run(tmp_path, pred_dir):
    cfg = load_config(params(tmp_path))  # seeds 1 and 2, 2 epochs
    logs = tmp_path / "logs"
    all_logs(logs, cfg, kept={"joint_12_seed2": 1})
    metrics, _ = run_cli(tmp_path, pred_dir, logs=logs)
    got = json.loads((metrics / "budgets.json").read_text())["joint_12"]
    per_epoch = steps_per_epoch(cfg, "joint_12")  # 24 examples, batch 8: 3 steps per epoch
    assert got == {"examples": 24,
                   "seed1": {"optimizer_steps": 2 * per_epoch, "steps_per_epoch": per_epoch, "selected_epoch": 2,
                             "selected_step": 2 * per_epoch},
                   "seed2": {"optimizer_steps": 2 * per_epoch, "steps_per_epoch": per_epoch, "selected_epoch": 1,
                             "selected_step": per_epoch}}


def test_outputs_of_runs_no_stage_writes_are_removed_and_named(tmp_path, pred_dir, caplog):
    cfg = load_config(params(tmp_path))
    logs = tmp_path / "logs"
    all_logs(logs, cfg)
    (pred_dir / "joint_12_seed3.parquet").write_bytes((pred_dir / "joint_12_seed2.parquet").read_bytes())
    (logs / "mono_german_seed1").mkdir()
    (pred_dir / ".gitignore").write_text("/joint_6_seed1.parquet\n")  # what DVC writes there is not a leftover
    with caplog.at_level("INFO", logger="crossling"):
        metrics, _ = run_cli(tmp_path, pred_dir, logs=logs)
    assert (metrics / "headline.json").exists()
    assert not (pred_dir / "joint_12_seed3.parquet").exists() and not (logs / "mono_german_seed1").exists()
    assert (pred_dir / ".gitignore").exists() and (pred_dir / "joint_6_seed1.parquet").exists()
    said = [r.getMessage() for r in caplog.records if "removed the outputs of runs" in r.getMessage()]
    assert len(said) == 1 and "joint_12_seed3.parquet" in said[0] and "mono_german_seed1" in said[0]


def test_cli_writes_differences_curves_and_confusion_plots(tmp_path, pred_dir):
    metrics, plots = run_cli(tmp_path, pred_dir)
    diffs = json.loads((metrics / "differences.json").read_text())
    assert all(set(d) == {"difference", "ci_low", "ci_high", "p", "p_adjusted", "degenerate_model", "finding"}
               for d in diffs.values())
    assert all(d["p_adjusted"] >= d["p"] for d in diffs.values())
    confusion = json.loads((plots / "confusion_largest_joint.json").read_text())
    english = [r for r in confusion if r["language"] == "english"]
    assert len(english) == 9 and sum(r["count"] for r in english) == len(SEEDS) * 40  # summed over seeds
    conf = json.loads((metrics / "confusion_matrices.json").read_text())["runs"]
    assert english[1]["count"] == sum(conf[f"joint_12_seed{s}"]["english"][0][1] for s in SEEDS)
    for r in english[:3]:
        assert r["share"] == pytest.approx(r["count"] / sum(x["count"] for x in english[:3]), abs=1e-6)
    dev = json.loads((plots / "dev_curve.json").read_text())
    assert {r["language"] for r in dev if r["model"] == "mono_french_seed2"} == {"french"}
    assert {r["language"] for r in dev if r["model"] == "loo_french_seed2"} == {"english"}  # never the held-out one
    for png in ("training_curves.png", "confusion_largest_joint.png"):
        assert (plots / png).read_bytes()[:4] == b"\x89PNG"


def test_headline_names_do_not_depend_on_sizes_or_seeds(tmp_path, pred_dir):
    (tmp_path / "a").mkdir()
    first, _ = run_cli(tmp_path / "a", pred_dir, params(tmp_path / "a"))
    names = set(json.loads((first / "headline.json").read_text()))
    p = tiny_params("unused", sizes=(6,))
    p["train"]["seeds"] = [2]
    p["evaluate"]["bootstrap_samples"] = 200
    (tmp_path / "b").mkdir()
    other, _ = run_cli(tmp_path / "b", pred_dir, write_params(tmp_path / "b" / "params.yaml", p))
    other_names = set(json.loads((other / "headline.json").read_text()))
    assert other_names == names - {"leave_one_out_mean_macro_f1", "leave_one_out_normalized_mean"}
    assert len(names) <= 10 + 3 * len(LANGS)
    assert not [name for name in names if any(n in name for n in ("_6", "_12", "seed"))]  # no size or seed in a name


def collapse(pred_dir, run, label=1):
    df = pd.read_parquet(pred_dir / f"{run}.parquet")
    df["pred_id"] = label
    df.to_parquet(pred_dir / f"{run}.parquet", schema=prediction_schema(LABELS))


def test_collapsed_and_at_chance_runs_are_degenerate_and_never_findings(tmp_path, pred_dir):
    cfg = load_config(params(tmp_path))
    for seed in SEEDS:
        collapse(pred_dir, f"mono_french_seed{seed}")  # every french and english text predicted "neutral"
    logs = tmp_path / "logs"
    all_logs(logs, cfg, dev_f1={"joint_6_seed2": 1 / 6})  # dev macro-F1 of predicting one class, every epoch
    metrics, _ = run_cli(tmp_path, pred_dir, logs=logs)
    health = json.loads((metrics / "health.json").read_text())
    assert health["mono_french_seed1"].items() >= {"collapsed_test_languages": 2, "collapsed_on_english": 1,
                                                  "collapsed_on_french": 1, "degenerate": 1}.items()
    assert health["joint_6_seed2"]["dev_at_single_class_level"] == 1 and health["joint_6_seed2"]["degenerate"] == 1
    assert health["joint_6_seed2"]["single_class_dev_macro_f1"] == pytest.approx(1 / 6, abs=1e-6)
    assert health["joint_12_seed1"]["degenerate"] == 0
    assert health["mono_french_seed2"]["degenerate"] == 1
    assert json.loads((metrics / "headline.json").read_text())["degenerate_runs"] == 3
    diffs = json.loads((metrics / "differences.json").read_text())
    for key, d in diffs.items():
        involves = "mono_french" in key or "joint_6" in key
        assert d["degenerate_model"] == int(involves), key
        if involves:
            assert d["finding"] == 0
    # the collapsed model is far below the others: a clear difference that must not be marked
    d = diffs["joint_12_minus_mono_french_on_french"]
    assert d["p_adjusted"] < 0.05 and d["finding"] == 0


def test_a_model_at_chance_in_language_is_degenerate_though_nothing_collapsed(tmp_path, pred_dir):
    """Random guesses spread over every class: no collapse, dev above the single-class level, and still a failed
    run, because its in-language test macro-F1 is not above chance."""
    for seed in SEEDS:
        fake_predictions(100 + seed, skill=0.0).to_parquet(pred_dir / f"mono_english_seed{seed}.parquet",
                                                          schema=prediction_schema(LABELS))
    metrics, _ = run_cli(tmp_path, pred_dir)
    health = json.loads((metrics / "health.json").read_text())
    for seed in SEEDS:
        assert health[f"mono_english_seed{seed}"].items() >= {"collapsed_test_languages": 0, "in_language_at_chance": 1,
                                                             "dev_at_single_class_level": 0, "degenerate": 1}.items()
    assert not any(h["in_language_at_chance"] for run, h in health.items() if not run.startswith("mono_english"))
    diffs = json.loads((metrics / "differences.json").read_text())
    assert all(d["degenerate_model"] == int("mono_english" in key) for key, d in diffs.items())
    from crossling.report import degenerate_note
    assert "`mono_english_seed1`: its model's in-language test macro-F1 (its seeds averaged) not above chance" \
        in degenerate_note(health, 0.9)


def test_a_collapse_is_one_class_predicted_well_beyond_its_share_or_at_a_one_class_score(tmp_path):
    """A perfect model on a test split 92% positive puts 92% of its predictions in one class; so does one that
    predicts positive for every text. Only the second has collapsed. Where the class is rarer (at most 80% of the
    texts for collapse_share 0.9), the share alone decides, as it always did."""
    one_class = stats.single_class_macro_f1([184, 8, 8])
    cases = {  # name: (gold per class, share of each gold class predicted as class 0, macro-F1, collapsed?)
        "perfect_on_92": ((184, 8, 8), (1, 0, 0), 1.0, False),
        "one_class_on_92": ((184, 8, 8), (1, 1, 1), one_class, True),
        "good_on_88": ((176, 12, 12), (1, 0.25, 0.25), 0.75, False),  # 91% predicted positive
        "over_on_85": ((170, 15, 15), (1, 1, 1 / 3), 0.4, True),     # 95%: 10 points beyond the class's share
        "balanced_95": ((70, 70, 60), (1, 65 / 70, 55 / 60), 0.267, True),
    }
    for name, (gold, to_top, f1, expected) in cases.items():
        matrix = np.zeros((3, 3), dtype=int)
        for i, (n, p) in enumerate(zip(gold, to_top)):
            matrix[i, 0] = round(n * p)
            matrix[i, i] += n - round(n * p)
        share = matrix[:, 0].sum() / matrix.sum()
        got = evaluate.collapsed_on({"english": {"top_class_share": share, "macro_f1": f1}},
                                    {"english": matrix.tolist()}, 0.9)
        assert got == (["english"] if expected else []), (name, share)
    cfg = load_config(params(tmp_path, data={"languages": ["english"]}, sample={"leave_one_out": []}))
    data_counts = {"english": {f"dev_{name}": 50 for name in LABELS}}
    perfect = np.diag([184, 8, 8]).tolist()
    collapsed = [[184, 0, 0], [8, 0, 0], [8, 0, 0]]
    health = evaluate.health({"a": {"english": {"top_class_share": 0.92, "macro_f1": 1.0}},
                              "b": {"english": {"top_class_share": 1.0, "macro_f1": one_class}}},
                             {"a": {"english": perfect}, "b": {"english": collapsed}},
                             [{"model": run, "step": 1, "macro_f1": 0.9} for run in "ab"],
                             {"a": ("mono_english", 1), "b": ("mono_english", 1)}, data_counts, set(), cfg)
    assert (health["a"]["degenerate"], health["b"]["degenerate"]) == (0, 1)


def test_a_collapse_on_a_zero_shot_language_marks_those_cells_not_the_run(tmp_path, pred_dir):
    for seed in SEEDS:
        path = pred_dir / f"mono_english_seed{seed}.parquet"
        df = pd.read_parquet(path)
        df.loc[df["language"] == "french", "pred_id"] = 1  # zero-shot on french: every text "neutral"
        df.to_parquet(path, schema=prediction_schema(LABELS))
    metrics, _ = run_cli(tmp_path, pred_dir)
    health = json.loads((metrics / "health.json").read_text())
    assert health["mono_english_seed1"].items() >= {"collapsed_on_french": 1, "degenerate": 0}.items()
    diffs = json.loads((metrics / "differences.json").read_text())
    assert diffs["mono_english_minus_mono_french_on_french"]["degenerate_model"] == 1
    assert diffs["mono_english_minus_chance_on_french"]["finding"] == 0
    assert diffs["joint_12_minus_mono_english_on_english"]["degenerate_model"] == 0  # its own language stands
    from crossling.report import degenerate_note
    note = degenerate_note(health, 0.9)
    assert note.startswith("No degenerate run") and "- `mono_english_seed1` on french" in note


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_findings_follow_the_adjusted_p_values(tmp_path, pred_dir, correction):
    metrics, _ = run_cli(tmp_path, pred_dir, params(tmp_path, evaluate={"correction": correction}))
    diffs = json.loads((metrics / "differences.json").read_text())
    assert all(d["finding"] == int(d["p_adjusted"] < 0.05 and not d["degenerate_model"]) for d in diffs.values())
    raw = {k: d["p"] for k, d in diffs.items()}
    assert stats.adjust(raw, correction) == {k: d["p_adjusted"] for k, d in diffs.items()}
    assert stats.adjust(raw, "holm") != stats.adjust(raw, "bh")  # the two corrections tell apart on these p-values


def test_last_epoch_loss_weights_each_logged_mean_by_its_steps_in_the_last_epoch():
    # 4 steps per epoch, 2 epochs; logged at steps 1, 3, 5, 7 and (the last step) 8
    rows = [{"model": "joint_6_seed1", "step": step, "loss": loss}
            for step, loss in ((1, 2.0), (3, 1.0), (5, 0.8), (7, 0.6), (8, 0.4))]
    # last epoch = steps 5-8: step 5 from the mean logged at 5, steps 6-7 from 7, step 8 from 8
    per_epoch = {"joint_6_seed1": 4, "joint_6_seed2": 4}
    got = evaluate.last_epoch_loss(rows, ["joint_6_seed1"], per_epoch)
    assert got == pytest.approx((0.8 + 2 * 0.6 + 0.4) / 4)
    seed2 = [r | {"model": "joint_6_seed2", "loss": r["loss"] + 0.2} for r in rows]
    assert evaluate.last_epoch_loss(rows + seed2, ["joint_6_seed1", "joint_6_seed2"], per_epoch) == \
        pytest.approx(0.7)  # the mean over seeds
    skipped = [r | {"loss": None} if r["step"] == 7 else r for r in rows]  # an fp16 log whose step was skipped
    assert evaluate.last_epoch_loss(skipped, ["joint_6_seed1"], per_epoch) == pytest.approx((0.8 + 0.4) / 2)
    last_skipped = [r | {"loss": None} if r["step"] >= 5 else r for r in rows]
    assert evaluate.last_epoch_loss(last_skipped + seed2, ["joint_6_seed1", "joint_6_seed2"], per_epoch) == \
        pytest.approx(0.8)  # seed 2's alone
    assert evaluate.last_epoch_loss(last_skipped, ["joint_6_seed1"], per_epoch) is None  # null in headline.json


@pytest.mark.parametrize("n_languages", [3, 12])
def test_each_learning_curve_band_has_its_lines_colour(tmp_path, monkeypatch, n_languages):
    # seaborn draws more than 10 hues from another palette (husl) than the default cycle the bands once took
    from matplotlib.colors import to_hex

    rows = [{"size": size, "language": f"lang{i:02d}",
             **{f"{m}{end}": 0.03 * i + size / 1000 + shift for m in ("accuracy", "macro_f1")
                for end, shift in (("", 0), ("_ci_low", -0.02), ("_ci_high", 0.02))}}
            for size in (100, 200) for i in range(n_languages)]
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig))
    figures.learning_curve(pd.DataFrame(rows), tmp_path / "curve.png")
    for ax in drawn[0].axes:
        lines = {line.get_label(): to_hex(line.get_color()) for line in ax.get_legend().get_lines()}
        bands = [to_hex(band.get_facecolor()[0]) for band in ax.collections[-n_languages:]]
        assert len(set(lines.values())) == n_languages
        assert bands == [lines[f"lang{i:02d}"] for i in range(n_languages)]
