"""Scores, seeded bootstrap intervals, p-values and multiple-comparison corrections (pure numpy, vectorized
over resamples)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


def scores(gold: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, macro precision/recall/F1 (F1 = mean of per-class F1), per-class F1 and support."""
    p, r, f1, _ = precision_recall_fscore_support(gold, pred, labels=list(range(len(labels))), zero_division=0)
    out = {"accuracy": accuracy_score(gold, pred), "macro_precision": p.mean(), "macro_recall": r.mean(),
           "macro_f1": f1.mean(), **{f"f1_{name}": value for name, value in zip(labels, f1)}}
    return {k: round(float(v), 6) for k, v in out.items()} | {"support": len(gold)}


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
    """Rows of n indices (test texts, or runs) drawn with replacement; one row per bootstrap resample."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def resampled_means(gold: np.ndarray, preds: list[np.ndarray], idx: np.ndarray, n_labels: int,
                    seed_idx: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of every resample, averaged over runs (seeds) scored on the same texts.

    Two levels: resample b scores the test texts idx[b] and averages over the runs seed_idx[b] (drawn with
    replacement), so with several seeds the spread covers seed-to-seed variation too.
    """
    per_run = [_resampled(gold, pred, idx, n_labels) for pred in preds]
    # the stack is runs x resamples: resample b averages the runs seed_idx[b]
    return {metric: np.stack([run[metric] for run in per_run])[seed_idx.T, np.arange(idx.shape[0])].mean(axis=0)
            for metric in ("accuracy", "macro_f1")}


def chance_macro_f1(gold: np.ndarray, idx: np.ndarray, n_labels: int) -> tuple[float, np.ndarray]:
    """Expected macro-F1 of a uniform random guesser, on the test texts (rounded) and on every resample.

    Guessing each of k classes with probability 1/k (the class prior of the balanced training samples)
    gives, in expectation, n_c/k true positives and n/k predictions of class c, so
    F1_c = 2 n_c / (k n_c + n): 1/k when the test classes are balanced, less when they are not.
    """
    def macro(counts: np.ndarray) -> np.ndarray:
        n = counts.sum(axis=-1, keepdims=True)
        return (2 * counts / (n_labels * counts + n)).mean(axis=-1)

    point = macro(np.bincount(gold, minlength=n_labels))
    per_resample = macro((gold[idx][..., None] == np.arange(n_labels)).sum(axis=1))  # class counts per resample
    return round(float(point), 6), per_resample


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return round(float(low), 6), round(float(high), 6)


def difference(point: float, resampled: np.ndarray, confidence: float) -> dict[str, float]:
    """A difference of two scores, its percentile interval and its two-sided p-value (p_value)."""
    low, high = interval(resampled, confidence)
    return {"difference": round(float(point), 6), "ci_low": low, "ci_high": high, "p": p_value(point, resampled)}


def p_value(point: float, resampled: np.ndarray) -> float:
    """Two-sided p-value of a zero difference from its bootstrap standard error (normal approximation).

    The percentile p-value of 1000 resamples cannot go below 0.002, too coarse for a correction over
    hundreds of differences; the standard error gives continuous p-values.
    """
    se = float(np.std(resampled, ddof=1))
    if se == 0:
        return 1.0 if point == 0 else 0.0
    return math.erfc(abs(point) / se / math.sqrt(2))


def adjust(p: dict[str, float], method: str) -> dict[str, float]:
    """p-values adjusted for multiple comparisons: Holm (family-wise error) or Benjamini-Hochberg ("bh", false
    discovery rate), over every p-value given."""
    names = sorted(p, key=lambda k: (p[k], k))
    ranked, m = np.array([p[name] for name in names], dtype=float), len(names)
    # p_(i), i = 1..m, the p-values in increasing order; the result is keyed by name (its order means nothing)
    if method == "holm":  # running maximum of (m - i + 1) p_(i), from the smallest p-value up
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:  # running minimum of m p_(i) / i, from the largest p-value down
        adjusted = np.minimum(1.0, np.minimum.accumulate((m * ranked / np.arange(1, m + 1))[::-1])[::-1])
    return {name: round(float(value), 6) for name, value in zip(names, adjusted)}


def significance_level(confidence: float) -> float:
    """1 - confidence without float residue (1 - 0.95 is 0.050000000000000044): a published adjusted p-value
    of exactly 0.05 is not below 0.05."""
    return round(1 - confidence, 12)


def single_class_macro_f1(counts: list[int]) -> float:
    """The best macro-F1 of a classifier that predicts one class for every text, given the class counts:
    F1 of that class = 2 n_c / (n_c + n), the others 0."""
    n = sum(counts)
    return max(2 * c / (c + n) for c in counts) / len(counts) if n else 0.0
