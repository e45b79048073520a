"""PNG versions of the tracked plot data, drawn with seaborn (the JSON next to each is what dvc plots reads)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from crossling.common import _parent  # noqa: E402


def _save(fig, path: str | Path) -> None:
    # metadata=None keeps matplotlib's version/date out, so equal data give equal bytes.
    fig.savefig(_parent(path), format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def label_distribution(dist: pd.DataFrame, path: str | Path) -> None:
    # Shares, so languages with pools of different sizes compare at a glance; the counts are in the JSON.
    grid = sns.catplot(data=dist, kind="bar", x="language", y="share", hue="label", col="split",
                       height=3.6, aspect=1.5)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("", "share of the split's texts")
    grid.figure.suptitle("Label distribution per language (training pool and test split)", y=1.03)
    _save(grid.figure, path)


def training_curves(losses: pd.DataFrame, dev: pd.DataFrame, path: str | Path) -> None:
    """Training loss and dev macro-F1 (mean over the run's training languages) against epochs, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharex=True)
    sns.lineplot(data=losses, x="epoch", y="loss", hue="model", ax=axes[0], linewidth=1)
    mean_dev = dev.groupby(["model", "epoch"], sort=False, as_index=False)["macro_f1"].mean()
    sns.lineplot(data=mean_dev, x="epoch", y="macro_f1", hue="model", marker="o", ax=axes[1])
    axes[0].set(title="Training loss", xlabel="epoch (optimizer step / steps per epoch)", ylabel="loss")
    axes[1].set(title="Dev macro-F1 (mean over the training languages)", xlabel="epoch", ylabel="macro-F1")
    for ax in axes:
        ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def confusion_matrices(rows: pd.DataFrame, model: str, path: str | Path) -> None:
    """One confusion matrix per test language: colour = share of the gold row, text = count."""
    languages = list(dict.fromkeys(rows["language"]))
    labels = list(dict.fromkeys(rows["actual"]))
    cols = min(3, len(languages))
    grid_rows = -(-len(languages) // cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(3.4 * cols, 3.2 * grid_rows), squeeze=False)
    for ax in axes.flat[len(languages):]:
        ax.set_visible(False)
    for ax, lang in zip(axes.flat, languages):
        part = rows[rows["language"] == lang]
        shares = part.pivot(index="actual", columns="predicted", values="share").loc[labels, labels]
        counts = part.pivot(index="actual", columns="predicted", values="count").loc[labels, labels]
        sns.heatmap(shares, annot=counts, fmt="d", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax)
        ax.set(title=lang, xlabel="predicted", ylabel="gold")
    fig.suptitle(f"{model}: confusion matrices per test language (colour: share of the gold class)")
    fig.tight_layout()
    _save(fig, path)


def learning_curve(curve: pd.DataFrame, path: str | Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    languages = list(dict.fromkeys(curve["language"]))
    # seaborn's own choice, made once for lines and bands: past the colour cycle's length it draws husl
    n = len(languages)
    cycle = len(sns.color_palette())
    colors = dict(zip(languages, sns.color_palette(n_colors=n) if n <= cycle else sns.color_palette("husl", n)))
    for ax, metric, title in zip(axes, ("accuracy", "macro_f1"), ("Accuracy", "Macro-F1")):
        sns.lineplot(data=curve, x="size", y=metric, hue="language", palette=colors, marker="o", ax=ax)
        lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
        for lang, part in curve.groupby("language", sort=False):
            ax.fill_between(part["size"], part[lo], part[hi], alpha=0.15, color=colors[lang], linewidth=0)
        ax.set(title=title, xlabel="training examples per language", ylabel=title)
    fig.suptitle("Joint model: learning curve per test language")
    _save(fig, path)


def _labelled(names: list[str], domains: dict[str, str]) -> list[str]:
    return [f"{name}\n({domains[name]})" if domains.get(name) else name for name in names]


def _heatmap(matrix: pd.DataFrame, value: str, path: str | Path, title: str, **style) -> None:
    order_rows = list(dict.fromkeys(matrix["train_language"]))
    # columns in the rows' order, so that the diagonal (in-language, absent when normalized) stays a diagonal
    order_cols = [lang for lang in dict.fromkeys([*order_rows, *matrix["test_language"]])
                  if lang in set(matrix["test_language"])]
    grid = matrix.pivot(index="train_language", columns="test_language", values=value).loc[order_rows, order_cols]
    domains = dict(zip(matrix["train_language"], matrix["train_domain"])) | dict(zip(matrix["test_language"],
                                                                                   matrix["test_domain"]))
    annot = grid.map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    # a cell that involves a degenerate run or collapsed predictions is never a finding
    if "degenerate" in matrix and matrix["degenerate"].any():
        flags = matrix.pivot(index="train_language", columns="test_language", values="degenerate")
        annot = annot.where(flags.loc[order_rows, order_cols].fillna(0) == 0, annot + "*")
        title += "\n* involves a degenerate run or collapsed predictions: not a finding"
    fig, ax = plt.subplots(figsize=(1.5 * len(order_cols) + 2.5, 0.9 * len(order_rows) + 2))
    sns.heatmap(grid, annot=annot, fmt="", ax=ax, xticklabels=_labelled(order_cols, domains),
                yticklabels=_labelled(order_rows, domains), **style)
    ax.set(title=title, xlabel="test language (domain)", ylabel="train language (domain)")
    ax.tick_params(axis="x", labelsize=8)
    ax.tick_params(axis="y", labelsize=8, rotation=0)
    _save(fig, path)


def transfer_matrix(matrix: pd.DataFrame, path: str | Path) -> None:
    _heatmap(matrix, "macro_f1", path, "Zero-shot transfer: macro-F1, train on one language, test on each",
             cmap="viridis", vmin=0, vmax=1, cbar_kws={"label": "macro-F1"})


def transfer_normalized(matrix: pd.DataFrame, path: str | Path) -> None:
    """Each zero-shot cell minus the target language's own in-language macro-F1 (0: nothing lost)."""
    if matrix.empty:  # one language: no zero-shot cell
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "one language: no zero-shot transfer", ha="center")
        _save(fig, path)
        return
    limit = max(0.05, float(matrix["normalized_macro_f1"].abs().max()))
    _heatmap(matrix, "normalized_macro_f1", path,
             "Normalized transfer: zero-shot macro-F1 minus the target's in-language macro-F1",
             cmap="RdBu", center=0, vmin=-limit, vmax=limit, cbar_kws={"label": "difference in macro-F1"})


def tokenization(rows: pd.DataFrame, path: str | Path) -> None:
    chars = list(dict.fromkeys(rows.loc[rows["unit"] == "character", "language"]))
    per_unit = "tokens per word" + (f" ({', '.join(chars)}: per character)" if chars else "")
    measures = [("tokens_per_unit", per_unit), ("unk_rate", "unknown-token rate"),
                ("truncated_share", "share truncated at max_length"), ("mean_tokens", "mean length in tokens")]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.6))
    for ax, (column, title) in zip(axes, measures):
        sns.barplot(data=rows, x="language", y=column, hue="split", ax=ax)
        ax.set(title=title, xlabel="", ylabel="")
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle("Base tokenizer per language (training pool and test split)")
    fig.tight_layout()
    _save(fig, path)
