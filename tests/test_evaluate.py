import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, tiny_params, write_params
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from crossling import evaluate, stats
from crossling.common import DataError, joint_name, mono_name, run_name
from crossling.config import load_config
from crossling.predict import prediction_schema

LANGS = ("english", "french")
LABELS = ("positive", "neutral", "negative")
SIZES = (6, 12)
SEEDS = (1, 2)


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


def params(tmp_path, **kw):
    p = tiny_params("unused", sizes=SIZES)
    p["train"]["seeds"] = list(SEEDS)
    p["evaluate"] |= {"bootstrap_samples": 500, "seed": 3}
    return write_params(tmp_path / "params.yaml", p)


@pytest.fixture
def pred_dir(tmp_path):
    d = tmp_path / "predictions"
    d.mkdir()
    names = [f"joint_{s}" for s in SIZES] + [f"mono_{lang}" for lang in LANGS]
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
        ci = stats.bootstrap_interval(gold, [guess], 3, resamples=1000, confidence=0.95, seed=0)
        point = stats.scores(gold, guess, LABELS)
        for metric in ("accuracy", "macro_f1"):
            assert ci[f"{metric}_ci_low"] <= point[metric] <= ci[f"{metric}_ci_high"]
        widths.append(ci["macro_f1_ci_high"] - ci["macro_f1_ci_low"])
    assert widths[0] > widths[1] > widths[2]
    again = stats.bootstrap_interval(gold, [guess], 3, resamples=1000, confidence=0.95, seed=0)
    assert again == ci  # seeded


def test_cli_outputs_match_a_recomputation(tmp_path, pred_dir):
    metrics, plots = tmp_path / "metrics", tmp_path / "plots"
    evaluate.cli(["--params", str(params(tmp_path)), "--predictions", str(pred_dir), "--logs", str(tmp_path / "logs"),
                  "--metrics", str(metrics), "--plots", str(plots)])
    joint = json.loads((metrics / "joint.json").read_text())
    transfer = json.loads((metrics / "transfer.json").read_text())
    for name, table in [("joint_12", joint), ("mono_english", transfer)]:
        runs = [pd.read_parquet(pred_dir / f"{evaluate.run_name(name, s)}.parquet") for s in SEEDS]
        for lang in LANGS:
            f1 = [f1_score(r.loc[r["language"] == lang, "label_id"], r.loc[r["language"] == lang, "pred_id"],
                           average="macro") for r in runs]
            cell = table[name][lang]
            assert cell["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-5)
            assert cell["macro_f1_seed_std"] == pytest.approx(np.std(f1), abs=1e-5)
            assert cell["macro_f1_ci_low"] <= cell["macro_f1"] <= cell["macro_f1_ci_high"]
            assert cell["seeds"] == 2
    detailed = json.loads((metrics / "detailed.json").read_text())
    run = pd.read_parquet(pred_dir / "joint_6_seed2.parquet")
    part = run[run["language"] == "french"]
    assert detailed["joint_6_seed2"]["french"]["f1_neutral"] == pytest.approx(
        f1_score(part["label_id"], part["pred_id"], average=None, labels=[0, 1, 2])[1], abs=1e-6)
    conf = json.loads((metrics / "confusion_matrices.json").read_text())
    assert conf["runs"]["joint_6_seed2"]["french"] == confusion_matrix(part["label_id"], part["pred_id"]).tolist()

    summary = json.loads((metrics / "summary.json").read_text())
    assert summary["joint_12_mean_macro_f1"] == pytest.approx(np.mean([joint["joint_12"][l]["macro_f1"] for l in LANGS]), abs=1e-6)
    off = [transfer["mono_english"]["french"]["macro_f1"], transfer["mono_french"]["english"]["macro_f1"]]
    assert summary["zero_shot_mean_macro_f1"] == pytest.approx(np.mean(off), abs=1e-6)
    tsum = json.loads((metrics / "transfer_summary.json").read_text())
    en = tsum["english"]
    assert en["in_language_macro_f1"] == transfer["mono_english"]["english"]["macro_f1"]
    assert en["transfer_gap"] == pytest.approx(en["in_language_macro_f1"] - transfer["mono_english"]["french"]["macro_f1"], abs=1e-6)
    assert en["joint_macro_f1"] == joint["joint_12"]["english"]["macro_f1"]

    curve = json.loads((plots / "learning_curve.json").read_text())
    assert {(r["size"], r["language"]) for r in curve} == {(s, lang) for s in SIZES for lang in LANGS}
    assert all(r["macro_f1_ci_low"] <= r["macro_f1"] <= r["macro_f1_ci_high"] for r in curve)
    matrix = json.loads((plots / "transfer_matrix.json").read_text())
    cell = next(r for r in matrix if r["train_language"] == "french" and r["test_language"] == "english")
    assert cell["macro_f1"] == transfer["mono_french"]["english"]["macro_f1"]
    for png in ("learning_curve.png", "transfer_matrix.png"):
        assert (plots / png).read_bytes()[:4] == b"\x89PNG"

    # every metric file is flat enough for `dvc metrics diff`: dicts of numbers, no lists
    def leaves(x):
        return [v for val in x.values() for v in (leaves(val) if isinstance(val, dict) else [val])]
    assert all(isinstance(v, int | float) for f in (joint, transfer, summary, tsum) for v in leaves(f))


def test_missing_predictions_are_named(tmp_path, pred_dir):
    (pred_dir / "mono_french_seed2.parquet").unlink()
    with pytest.raises(DataError, match="predictions of mono_french_seed2 not found"):
        evaluate.evaluate(pred_dir, load_config(params(tmp_path)))


def test_dvc_yaml_names_runs_as_the_code_does():
    # dvc.yaml cannot call Python: its run names must spell the scheme of crossling.common.
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for kind, model in (("joint", joint_name("${item.size}")), ("mono", mono_name("${item.lang}"))):
        name = run_name(model, "${item.seed}")
        train, predict = (" ".join(stages[f"{step}_{kind}"]["cmd"].split()) for step in ("train", "predict"))
        for arg in (f"--name {name}", f"--out models/{name}", f"--live logs/{name}"):
            assert arg in train, (kind, arg)
        assert f"models/{name}" in stages[f"train_{kind}"]["outs"]
        assert f"--model models/{name}" in predict and f"--out data/predictions/{name}.parquet" in predict
