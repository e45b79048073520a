"""evaluate: metrics, intervals, learning curve and transfer matrix from saved predictions (no model is loaded).

Per training run (model x seed) and test language: accuracy, macro precision/recall/F1, per-class F1,
support (`metrics/detailed.json`) and the confusion matrix. Per model and test language, over its seeds:
mean accuracy and macro-F1, the spread between seeds, and a seeded bootstrap interval of the
seed-averaged score (`metrics/joint.json`, `metrics/transfer.json`). `metrics/summary.json` holds the
headline numbers and `metrics/transfer_summary.json` the in-language vs cross-language gap.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from crossling import figures, stats
from crossling.common import (DataError, joint_name, log, log_params, mono_name, read_parquet, run_name, run_stage,
                              stage_parser, write_json)
from crossling.config import Config


def final_loss(losses: list[dict], model: str, seeds: tuple[int, ...]) -> dict:
    """Last logged training loss of `model`, averaged over seeds, so `dvc exp show` shows it."""
    last = {}
    for row in losses:  # rows are in step order per run
        last[row["model"]] = row["loss"]
    values = [last[run_name(model, seed)] for seed in seeds if run_name(model, seed) in last]
    return {f"{model}_final_train_loss": round(float(np.mean(values)), 6)} if values else {}


def model_names(cfg: Config) -> list[str]:
    return [joint_name(s) for s in sorted(cfg.sample.sizes)] + [mono_name(lang) for lang in cfg.data.languages]


def evaluate_model(runs: dict[str, pd.DataFrame], cfg: Config) -> tuple[dict, dict, dict]:
    """Seed-aggregated scores, per-run scores and per-run confusion matrices, per test language."""
    labels, ev = cfg.data.labels, cfg.evaluate
    aggregate, detailed, confusions = {}, {name: {} for name in runs}, {name: {} for name in runs}
    for lang in cfg.data.languages:
        parts = {name: preds[preds["language"] == lang].sort_values("test_row") for name, preds in runs.items()}
        if any(part.empty for part in parts.values()):
            raise DataError(f"predictions have no rows for test language {lang!r}; re-run the training stages")
        gold = next(iter(parts.values()))["label_id"].to_numpy()
        for name, part in parts.items():
            detailed[name][lang] = stats.scores(gold, part["pred_id"].to_numpy(), labels)
            confusions[name][lang] = stats.confusion(gold, part["pred_id"].to_numpy(), len(labels))
        f1 = [detailed[name][lang]["macro_f1"] for name in runs]
        acc = [detailed[name][lang]["accuracy"] for name in runs]
        # Same resamples for every model of a language, so models are compared on paired resamples.
        interval = stats.bootstrap_interval(gold, [p["pred_id"].to_numpy() for p in parts.values()], len(labels),
                                            ev.bootstrap_samples, ev.confidence, seed=[ev.seed, zlib.crc32(lang.encode())])
        aggregate[lang] = {"accuracy": round(float(np.mean(acc)), 6), "macro_f1": round(float(np.mean(f1)), 6),
                           **interval, "macro_f1_seed_std": round(float(np.std(f1)), 6), "seeds": len(runs)}
    return aggregate, detailed, confusions


def learning_curve(joint: dict, sizes: tuple[int, ...]) -> list[dict]:
    return [{"size": size, "language": lang, **joint[joint_name(size)][lang]}
            for size in sorted(sizes) for lang in joint[joint_name(size)]]


def transfer_matrix(transfer: dict, languages: tuple[str, ...]) -> list[dict]:
    return [{"train_language": src, "test_language": tgt, **transfer[mono_name(src)][tgt]}
            for src in languages for tgt in languages]


def transfer_summary(joint: dict, transfer: dict, largest: int, languages: tuple[str, ...]) -> dict:
    """Per train language: in-language F1, mean F1 elsewhere, their gap, and the joint model's F1 there."""
    out = {}
    for src in languages:
        row = transfer[mono_name(src)]
        own, cross = row[src]["macro_f1"], [row[t]["macro_f1"] for t in languages if t != src]
        entry = {"in_language_macro_f1": own, "joint_macro_f1": joint[joint_name(largest)][src]["macro_f1"]}
        if cross:
            entry |= {"cross_language_mean_macro_f1": float(np.mean(cross)), "transfer_gap": own - float(np.mean(cross))}
        out[src] = {k: round(v, 6) for k, v in entry.items()}
    return out


def summary(joint: dict, transfer: dict, largest: int, languages: tuple[str, ...]) -> dict:
    name = joint_name(largest)
    top = joint[name]
    out = {f"{name}_mean_macro_f1": np.mean([top[lang]["macro_f1"] for lang in languages])}
    out |= {f"{name}_macro_f1_{lang}": top[lang]["macro_f1"] for lang in languages}
    out["mono_in_language_mean_macro_f1"] = np.mean([transfer[mono_name(lang)][lang]["macro_f1"] for lang in languages])
    cross = [transfer[mono_name(s)][t]["macro_f1"] for s in languages for t in languages if s != t]
    if cross:
        out["zero_shot_mean_macro_f1"] = np.mean(cross)
    return {k: round(float(v), 6) for k, v in out.items()}


def training_loss(log_dir: Path, runs: list[str]) -> list[dict]:
    """Step losses that dvclive logged for each run, as one table for the training-loss plot."""
    rows = []
    for name in runs:
        path = log_dir / name / "plots" / "metrics" / "loss.tsv"
        if not path.exists():
            log.warning("no training loss logged at %s; left out of plots/training_loss.json", path)
            continue
        losses = pd.read_csv(path, sep="\t")
        rows += [{"model": name, "step": int(r.step), "loss": round(float(r.loss), 6)} for r in losses.itertuples()]
    return rows


def evaluate(pred_dir: Path, cfg: Config) -> dict:
    aggregate, detailed, confusions = {}, {}, {}
    for model in model_names(cfg):
        runs = {run_name(model, seed): read_parquet(pred_dir / f"{run_name(model, seed)}.parquet",
                                                    f"predictions of {run_name(model, seed)}")
                for seed in cfg.train.seeds}
        aggregate[model], per_run, conf = evaluate_model(runs, cfg)
        detailed |= per_run
        confusions |= conf
    largest, langs = cfg.sample.largest, cfg.data.languages
    joint = {joint_name(size): aggregate[joint_name(size)] for size in cfg.sample.sizes}
    transfer = {mono_name(lang): aggregate[mono_name(lang)] for lang in langs}
    return {"joint": joint, "transfer": transfer, "detailed": detailed, "confusion": confusions,
            "summary": summary(joint, transfer, largest, langs),
            "transfer_summary": transfer_summary(joint, transfer, largest, langs),
            "learning_curve": learning_curve(joint, cfg.sample.sizes), "transfer_matrix": transfer_matrix(transfer, langs)}


def main(args, cfg: Config) -> None:
    log_params("evaluate", data={"languages": cfg.data.languages, "labels": cfg.data.labels},
               sample={"sizes": cfg.sample.sizes}, train={"seeds": cfg.train.seeds}, evaluate=asdict(cfg.evaluate))
    out = evaluate(Path(args.predictions), cfg)
    metrics, plots = Path(args.metrics), Path(args.plots)
    for name in ("joint", "transfer", "transfer_summary", "detailed"):
        write_json(out[name], metrics / f"{name}.json")
    write_json({"labels": list(cfg.data.labels), "rows": "gold", "columns": "predicted", "runs": out["confusion"]},
               metrics / "confusion_matrices.json")
    write_json(out["learning_curve"], plots / "learning_curve.json")
    write_json(out["transfer_matrix"], plots / "transfer_matrix.json")
    runs = [run_name(m, seed) for m in model_names(cfg) for seed in cfg.train.seeds]
    losses = training_loss(Path(args.logs), runs)
    write_json(losses, plots / "training_loss.json")
    out["summary"] |= final_loss(losses, joint_name(cfg.sample.largest), cfg.train.seeds)
    figures.learning_curve(pd.DataFrame(out["learning_curve"]), plots / "learning_curve.png")
    figures.transfer_matrix(pd.DataFrame(out["transfer_matrix"]), plots / "transfer_matrix.png")
    write_json(out["summary"], metrics / "summary.json")
    log.info("summary: %s", out["summary"])


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--predictions", default="data/predictions")
    parser.add_argument("--logs", default="logs", help="dvclive directories, one per training run")
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--plots", default="plots")
    run_stage("evaluate", main, parser, argv)


if __name__ == "__main__":
    cli()
