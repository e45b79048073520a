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


def resample_indices(n: int, resamples: int, seed) -> np.ndarray:
    """Rows of test-text indices drawn with replacement; one row per bootstrap resample."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def resampled_means(gold: np.ndarray, preds: list[np.ndarray], idx: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of every resample, averaged over runs (seeds) scored on the same texts."""
    per_run = [_resampled(gold, pred, idx, n_labels) for pred in preds]
    return {metric: np.mean([run[metric] for run in per_run], axis=0) for metric in ("accuracy", "macro_f1")}


def chance_macro_f1(gold: np.ndarray, idx: np.ndarray, n_labels: int) -> tuple[float, np.ndarray]:
    """Expected macro-F1 of a uniform random guesser, on the test texts and on every resample.

    Guessing each of k classes with probability 1/k (the class prior of the balanced training samples)
    gives, in expectation, n_c/k true positives and n/k predictions of class c, so
    F1_c = 2 n_c / (k n_c + n): 1/k when the test classes are balanced, less when they are not.
    """
    def macro(counts: np.ndarray) -> np.ndarray:
        n = counts.sum(axis=-1, keepdims=True)
        return (2 * counts / (n_labels * counts + n)).mean(axis=-1)

    classes = np.arange(n_labels)
    point = macro((gold[:, None] == classes).sum(axis=0))
    per_resample = macro(np.stack([(gold[idx] == c).sum(axis=1) for c in classes], axis=1))
    return float(point), per_resample


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return round(float(low), 6), round(float(high), 6)


def bootstrap_interval(gold: np.ndarray, preds: list[np.ndarray], n_labels: int, resamples: int,
                       confidence: float, seed) -> dict[str, float]:
    """Percentile interval of accuracy and macro-F1 averaged over runs (seeds) scored on the same texts.

    Every run is scored on the same resampled test texts, so the interval covers test-set sampling of
    the seed-averaged score; the spread between seeds is reported separately.
    """
    means = resampled_means(gold, preds, resample_indices(len(gold), resamples, seed), n_labels)
    out = {}
    for metric in ("accuracy", "macro_f1"):
        out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = interval(means[metric], confidence)
    return out


def difference(name: str, point: float, resampled: np.ndarray, confidence: float) -> dict[str, float]:
    """A difference of two scores and its percentile interval, under flat metric names."""
    low, high = interval(resampled, confidence)
    return {name: round(float(point), 6), f"{name}_ci_low": low, f"{name}_ci_high": high}
