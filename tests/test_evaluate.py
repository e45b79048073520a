import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params, write_params
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from crossling import evaluate
from crossling.common import DataError
from crossling.train import prediction_schema

LANGS = ("english", "french")
LABELS = ("positive", "neutral", "negative")
SIZES = (6, 12)


def fake_predictions(seed: int, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 3, size=2 * n)
    # mostly right, some noise, so that every metric is between 0 and 1
    pred = np.where(rng.random(2 * n) < 0.6, gold, rng.integers(0, 3, size=2 * n))
    probs = rng.dirichlet(np.ones(3), size=2 * n).astype("float32")
    df = pd.DataFrame({"language": np.repeat(LANGS, n), "test_row": np.arange(2 * n), "label_id": gold,
                       "pred_id": pred})
    for i, name in enumerate(LABELS):
        df[f"prob_{name}"] = probs[:, i]
    return df


@pytest.fixture
def pred_dir(tmp_path):
    d = tmp_path / "predictions"
    d.mkdir()
    names = [f"joint_{s}" for s in SIZES] + [f"mono_{lang}" for lang in LANGS]
    for seed, name in enumerate(names):
        fake_predictions(seed).to_parquet(d / f"{name}.parquet", schema=prediction_schema(LABELS))
    return d


def test_metrics_equal_sklearn(pred_dir):
    pred = fake_predictions(0)
    part = pred[pred["language"] == "french"]
    got = evaluate.scores(part["label_id"].to_numpy(), part["pred_id"].to_numpy(), LABELS)
    y, p = part["label_id"], part["pred_id"]
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-6)
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    assert got["macro_precision"] == pytest.approx(precision_score(y, p, average="macro"), abs=1e-6)
    assert got["macro_recall"] == pytest.approx(recall_score(y, p, average="macro"), abs=1e-6)
    per_class = f1_score(y, p, average=None, labels=[0, 1, 2])
    assert [got[f"f1_{n}"] for n in LABELS] == pytest.approx(list(per_class), abs=1e-6)
    # the real macro-F1: the mean of per-class F1, not F1 of macro precision and recall
    assert got["macro_f1"] == pytest.approx(np.mean(per_class), abs=1e-6)


def test_cli_outputs_match_a_recomputation(tmp_path, pred_dir):
    params = write_params(tmp_path / "params.yaml", tiny_params("unused", sizes=SIZES))
    metrics, plots = tmp_path / "metrics", tmp_path / "plots"
    evaluate.cli(["--params", str(params), "--predictions", str(pred_dir), "--logs", str(tmp_path / "logs"),
                  "--metrics", str(metrics), "--plots", str(plots)])
    joint = json.loads((metrics / "joint.json").read_text())
    transfer = json.loads((metrics / "transfer.json").read_text())
    for name, table in [("joint_12", joint), ("mono_english", transfer)]:
        pred = pd.read_parquet(pred_dir / f"{name}.parquet")
        for lang in LANGS:
            part = pred[pred["language"] == lang]
            assert table[name][lang]["macro_f1"] == pytest.approx(
                f1_score(part["label_id"], part["pred_id"], average="macro"), abs=1e-6)
    detailed = json.loads((metrics / "detailed.json").read_text())
    pred = pd.read_parquet(pred_dir / "joint_6.parquet")
    part = pred[pred["language"] == "french"]
    assert detailed["joint_6"]["french"]["f1_neutral"] == pytest.approx(
        f1_score(part["label_id"], part["pred_id"], average=None, labels=[0, 1, 2])[1], abs=1e-6)
    assert set(joint["joint_6"]["french"]) == {"accuracy", "macro_f1"}
    conf = json.loads((metrics / "confusion_matrices.json").read_text())
    pred = pd.read_parquet(pred_dir / "joint_6.parquet")
    part = pred[pred["language"] == "english"]
    assert conf["models"]["joint_6"]["english"] == confusion_matrix(part["label_id"], part["pred_id"]).tolist()

    summary = json.loads((metrics / "summary.json").read_text())
    assert summary["joint_12_mean_macro_f1"] == pytest.approx(np.mean([joint["joint_12"][l]["macro_f1"] for l in LANGS]), abs=1e-6)
    off = [transfer["mono_english"]["french"]["macro_f1"], transfer["mono_french"]["english"]["macro_f1"]]
    assert summary["zero_shot_mean_macro_f1"] == pytest.approx(np.mean(off), abs=1e-6)

    curve = json.loads((plots / "learning_curve.json").read_text())
    assert {(r["size"], r["language"]) for r in curve} == {(s, lang) for s in SIZES for lang in LANGS}
    matrix = json.loads((plots / "transfer_matrix.json").read_text())
    cell = next(r for r in matrix if r["train_language"] == "french" and r["test_language"] == "english")
    assert cell["macro_f1"] == transfer["mono_french"]["english"]["macro_f1"]
    for png in ("learning_curve.png", "transfer_matrix.png"):
        assert (plots / png).read_bytes()[:4] == b"\x89PNG"
    # every metric file is flat enough for `dvc metrics diff`: dicts of numbers, no lists
    def leaves(x):
        return [v for val in x.values() for v in (leaves(val) if isinstance(val, dict) else [val])]
    assert all(isinstance(v, int | float) for f in (joint, transfer, summary) for v in leaves(f))


def test_missing_predictions_are_named(tmp_path, pred_dir):
    (pred_dir / "mono_french.parquet").unlink()
    params = write_params(tmp_path / "params.yaml", tiny_params("unused", sizes=SIZES))
    from crossling.config import load_config

    with pytest.raises(DataError, match="predictions of mono_french not found"):
        evaluate.evaluate(pred_dir, load_config(params))
