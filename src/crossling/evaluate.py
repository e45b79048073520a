"""evaluate: metrics, learning curve and transfer matrix from the saved predictions (no model is loaded).

Per model and test language: accuracy, macro precision/recall/F1, per-class F1, support
(`metrics/detailed.json`) and the confusion matrix. `metrics/joint.json` and `metrics/transfer.json`
keep accuracy and macro-F1 per model and language, short enough for `dvc metrics diff` in a pull
request; `metrics/summary.json` holds the headline numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from crossling import figures
from crossling.common import DataError, log, log_params, read_parquet, run_stage, stage_parser, write_json
from crossling.config import Config


HEADLINE = ("accuracy", "macro_f1")


def joint_name(size: int) -> str:
    return f"joint_{size}"


def mono_name(language: str) -> str:
    return f"mono_{language}"


def scores(gold: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> dict:
    ids = list(range(len(labels)))
    p, r, f1, _ = precision_recall_fscore_support(gold, pred, labels=ids, average="macro", zero_division=0)
    per_class = precision_recall_fscore_support(gold, pred, labels=ids, average=None, zero_division=0)[2]
    out = {"accuracy": accuracy_score(gold, pred), "macro_precision": p, "macro_recall": r, "macro_f1": f1}
    out.update({f"f1_{name}": per_class[i] for i, name in enumerate(labels)})
    out = {k: round(float(v), 6) for k, v in out.items()}
    out["support"] = len(gold)
    return out


def evaluate_model(preds: pd.DataFrame, languages: tuple[str, ...], labels: tuple[str, ...]) -> tuple[dict, dict]:
    """Scores and confusion matrices (rows gold, columns predicted) per test language."""
    metrics, confusions = {}, {}
    for lang in languages:
        part = preds[preds["language"] == lang]
        if part.empty:
            raise DataError(f"predictions have no rows for test language {lang!r}; re-run the training stage")
        gold, pred = part["label_id"].to_numpy(), part["pred_id"].to_numpy()
        metrics[lang] = scores(gold, pred, labels)
        confusions[lang] = confusion_matrix(gold, pred, labels=list(range(len(labels)))).tolist()
    return metrics, confusions


def learning_curve(joint: dict, sizes: tuple[int, ...]) -> list[dict]:
    return [{"size": size, "language": lang, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
            for size in sorted(sizes) for lang, m in joint[joint_name(size)].items()]


def transfer_matrix(transfer: dict, languages: tuple[str, ...]) -> list[dict]:
    return [{"train_language": src, "test_language": tgt, "macro_f1": transfer[mono_name(src)][tgt]["macro_f1"],
             "accuracy": transfer[mono_name(src)][tgt]["accuracy"]} for src in languages for tgt in languages]


def summary(joint: dict, transfer: dict, sizes: tuple[int, ...], languages: tuple[str, ...]) -> dict:
    largest = joint[joint_name(max(sizes))]
    out = {f"joint_{max(sizes)}_mean_macro_f1": np.mean([largest[lang]["macro_f1"] for lang in languages])}
    out.update({f"joint_{max(sizes)}_macro_f1_{lang}": largest[lang]["macro_f1"] for lang in languages})
    own = [transfer[mono_name(lang)][lang]["macro_f1"] for lang in languages]
    cross = [transfer[mono_name(s)][t]["macro_f1"] for s in languages for t in languages if s != t]
    out["mono_in_language_mean_macro_f1"] = np.mean(own)
    if cross:
        out["zero_shot_mean_macro_f1"] = np.mean(cross)
    return {k: round(float(v), 6) for k, v in out.items()}


def training_loss(log_dir: Path, names: list[str]) -> list[dict]:
    """Step losses that dvclive logged for each model, as one table for the training-loss plot."""
    rows = []
    for name in names:
        path = log_dir / name / "plots" / "metrics" / "loss.tsv"
        if not path.exists():
            log.warning("no training loss logged at %s; left out of plots/training_loss.json", path)
            continue
        losses = pd.read_csv(path, sep="\t")
        rows += [{"model": name, "step": int(r.step), "loss": round(float(r.loss), 6)} for r in losses.itertuples()]
    return rows


def model_names(cfg: Config) -> list[str]:
    return [joint_name(s) for s in sorted(cfg.sample.sizes)] + [mono_name(lang) for lang in cfg.data.languages]


def evaluate(pred_dir: Path, cfg: Config) -> dict:
    langs, labels, sizes = cfg.data.languages, cfg.data.labels, cfg.sample.sizes
    names = model_names(cfg)
    results = {name: evaluate_model(read_parquet(pred_dir / f"{name}.parquet", f"predictions of {name}"), langs, labels)
               for name in names}
    joint = {n: results[n][0] for n in names if n.startswith("joint_")}
    transfer = {n: results[n][0] for n in names if n.startswith("mono_")}
    return {"joint": joint, "transfer": transfer, "detailed": {n: r[0] for n, r in results.items()},
            "confusion": {n: r[1] for n, r in results.items()},
            "summary": summary(joint, transfer, sizes, langs),
            "learning_curve": learning_curve(joint, sizes), "transfer_matrix": transfer_matrix(transfer, langs)}


def headline(table: dict) -> dict:
    """Accuracy and macro-F1 only, per model and language: the part a reviewer reads in a diff."""
    return {name: {lang: {k: m[k] for k in HEADLINE} for lang, m in langs.items()} for name, langs in table.items()}


def main(args, cfg: Config) -> None:
    log_params("evaluate", data={"languages": cfg.data.languages, "labels": cfg.data.labels},
               sample={"sizes": cfg.sample.sizes})
    out = evaluate(Path(args.predictions), cfg)
    metrics, plots = Path(args.metrics), Path(args.plots)
    write_json(headline(out["joint"]), metrics / "joint.json")
    write_json(headline(out["transfer"]), metrics / "transfer.json")
    write_json(out["detailed"], metrics / "detailed.json")
    write_json(out["summary"], metrics / "summary.json")
    write_json({"labels": list(cfg.data.labels), "rows": "gold", "columns": "predicted", "models": out["confusion"]},
               metrics / "confusion_matrices.json")
    write_json(out["learning_curve"], plots / "learning_curve.json")
    write_json(out["transfer_matrix"], plots / "transfer_matrix.json")
    write_json(training_loss(Path(args.logs), model_names(cfg)), plots / "training_loss.json")
    figures.learning_curve(pd.DataFrame(out["learning_curve"]), plots / "learning_curve.png")
    figures.transfer_matrix(pd.DataFrame(out["transfer_matrix"]), plots / "transfer_matrix.png")
    log.info("summary: %s", out["summary"])


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--predictions", default="data/predictions")
    parser.add_argument("--logs", default="logs", help="dvclive directories, one per model")
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--plots", default="plots")
    run_stage("evaluate", main, parser, argv)


if __name__ == "__main__":
    cli()
