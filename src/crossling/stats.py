"""Scores and seeded bootstrap intervals from predictions (pure numpy, vectorized over resamples)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def scores(gold: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, macro precision/recall/F1 (F1 = mean of per-class F1), per-class F1 and support."""
    ids = list(range(len(labels)))
    p, r, f1, _ = precision_recall_fscore_support(gold, pred, labels=ids, average="macro", zero_division=0)
    per_class = precision_recall_fscore_support(gold, pred, labels=ids, average=None, zero_division=0)[2]
    out = {"accuracy": accuracy_score(gold, pred), "macro_precision": p, "macro_recall": r, "macro_f1": f1}
    out.update({f"f1_{name}": per_class[i] for i, name in enumerate(labels)})
    out = {k: round(float(v), 6) for k, v in out.items()}
    out["support"] = int(len(gold))
    return out


def confusion(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> list[list[int]]:
    return confusion_matrix(gold, pred, labels=list(range(n_labels))).tolist()


def _resampled(gold: np.ndarray, pred: np.ndarray, idx: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of every resample (rows of idx)."""
    g, p = gold[idx], pred[idx]
    f1 = np.zeros(idx.shape[0])
    for c in range(n_labels):
        tp = ((g == c) & (p == c)).sum(axis=1)
        denom = (g == c).sum(axis=1) + (p == c).sum(axis=1)
        f1 += np.divide(2 * tp, denom, out=np.zeros(idx.shape[0]), where=denom > 0)
    return {"accuracy": (g == p).mean(axis=1), "macro_f1": f1 / n_labels}


def bootstrap_interval(gold: np.ndarray, preds: list[np.ndarray], n_labels: int, resamples: int,
                       confidence: float, seed) -> dict[str, float]:
    """Percentile interval of accuracy and macro-F1 averaged over runs (seeds) scored on the same texts.

    Every run is scored on the same resampled test texts, so the interval covers test-set sampling of
    the seed-averaged score; the spread between seeds is reported separately.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(gold), size=(resamples, len(gold)))
    per_run = [_resampled(gold, pred, idx, n_labels) for pred in preds]
    tail = (1 - confidence) / 2 * 100
    out = {}
    for metric in ("accuracy", "macro_f1"):
        mean = np.mean([run[metric] for run in per_run], axis=0)
        low, high = np.percentile(mean, [tail, 100 - tail])
        out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = round(float(low), 6), round(float(high), 6)
    return out
