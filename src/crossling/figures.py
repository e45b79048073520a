"""PNG versions of the tracked plot data, drawn with seaborn (the JSON next to each is what dvc plots reads)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from crossling.common import atomic_file  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        # metadata=None keeps matplotlib's version/date out, so equal data give equal bytes.
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def label_distribution(dist: pd.DataFrame, path: str | Path) -> None:
    grid = sns.catplot(data=dist, kind="bar", x="language", y="count", hue="label", col="split",
                       height=3.6, aspect=1.5, sharey=False)
    grid.set_titles("{col_name}")
    grid.figure.suptitle("Label distribution per language (training pool and test split)", y=1.03)
    _save(grid.figure, path)


def learning_curve(curve: pd.DataFrame, path: str | Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, metric, title in zip(axes, ("accuracy", "macro_f1"), ("Accuracy", "Macro-F1")):
        sns.lineplot(data=curve, x="size", y=metric, hue="language", marker="o", ax=ax)
        lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
        if lo in curve and hi in curve:
            for (_, part), color in zip(curve.groupby("language", sort=False),
                                           sns.color_palette(n_colors=curve["language"].nunique())):
                ax.fill_between(part["size"], part[lo], part[hi], alpha=0.15, color=color, linewidth=0)
        ax.set(title=title, xlabel="training examples per language", ylabel=title)
    fig.suptitle("Joint model: learning curve per test language")
    _save(fig, path)


def transfer_matrix(matrix: pd.DataFrame, path: str | Path, value: str = "macro_f1") -> None:
    order_rows = list(dict.fromkeys(matrix["train_language"]))
    order_cols = list(dict.fromkeys(matrix["test_language"]))
    grid = matrix.pivot(index="train_language", columns="test_language", values=value).loc[order_rows, order_cols]
    fig, ax = plt.subplots(figsize=(1.1 * len(order_cols) + 2, 0.8 * len(order_rows) + 1.5))
    sns.heatmap(grid, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": value.replace("_", "-")})
    ax.set(title="Zero-shot transfer: train on one language, test on each", xlabel="test language",
           ylabel="train language")
    _save(fig, path)


def tokenization(rows: pd.DataFrame, path: str | Path) -> None:
    measures = [("tokens_per_unit", "tokens per word (ja/zh: per character)"), ("unk_rate", "unknown-token rate"),
                ("truncated_share", "share truncated at max_length"), ("mean_tokens", "mean length in tokens")]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6))
    for ax, (column, title) in zip(axes, measures):
        sns.barplot(data=rows, x="language", y=column, hue="split", ax=ax)
        ax.set(title=title, xlabel="", ylabel="")
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle("Base tokenizer per language (training pool and test split)")
    fig.tight_layout()
    _save(fig, path)
