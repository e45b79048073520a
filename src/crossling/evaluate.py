"""evaluate: metrics, intervals, paired differences and plots from saved predictions (no model is loaded).

Per training run (model x seed) and test language: accuracy, macro precision/recall/F1, per-class F1,
support (`metrics/detailed.json`) and the confusion matrix. Per model and test language, over its seeds:
mean accuracy and macro-F1, the sample standard deviation between seeds (only with two or more seeds), and
a seeded bootstrap interval of the seed-averaged score (`metrics/joint.json`, `metrics/transfer.json`).
Every model of a language is scored on the same resamples of its test texts, so `metrics/differences.json`
gives paired intervals for differences between models on the same texts. `metrics/summary.json` holds the
headline numbers and `metrics/transfer_summary.json` the in-language vs cross-language gap. The training
and dev curves come from the dvclive logs, on an epoch axis (optimizer step / steps per epoch), and
`metrics/budgets.json` gives every model's training examples, optimizer steps and, per seed, the epoch it
kept (`train.select`). Missing or inconsistent logs, and predictions or logs of runs that no stage writes,
are refused.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from crossling import figures, stats
from crossling.common import (DataError, joint_name, log, log_params, mono_name, read_json, read_parquet, run_name,
                              run_stage, stage_parser, write_json)
from crossling.config import Config


def last_epoch_loss(losses: list[dict], model: str, seeds: tuple[int, ...], per_epoch: int) -> dict:
    """Training loss of `model` over its last epoch, averaged over seeds, so `dvc exp show` shows it.

    Each logged loss is the mean over the steps since the previous log; those means are weighted by how many of
    their steps fall in the last epoch, so the figure does not depend on where logging_steps put the last log.
    """
    values = []
    for seed in seeds:
        rows = [r for r in losses if r["model"] == run_name(model, seed)]  # in step order
        if not rows:
            continue
        start, previous, total, weight = rows[-1]["step"] - per_epoch, 0, 0.0, 0
        for row in rows:
            steps = row["step"] - max(previous, start)
            if steps > 0:
                total, weight = total + steps * row["loss"], weight + steps
            previous = row["step"]
        values.append(total / weight)
    return {f"{model}_last_epoch_train_loss": round(float(np.mean(values)), 6)} if values else {}


def model_names(cfg: Config) -> list[str]:
    return [joint_name(s) for s in sorted(cfg.sample.sizes)] + [mono_name(lang) for lang in cfg.data.languages]


def training_budget(cfg: Config) -> dict[str, dict[str, int]]:
    """Training examples and optimizer steps of every model, from params and sample sizes.

    A joint model of size N trains on N examples of every language; a monolingual one on its language's
    part of the largest sample. Steps = epochs x ceil(examples / (batch_size x processes)).
    """
    examples = {joint_name(s): s * len(cfg.data.languages) for s in sorted(cfg.sample.sizes)}
    examples |= {mono_name(lang): cfg.sample.largest for lang in cfg.data.languages}
    per_step = cfg.train.batch_size * cfg.train.processes
    return {model: {"examples": n, "steps_per_epoch": -(-n // per_step), "steps": cfg.train.epochs * -(-n // per_step)}
            for model, n in examples.items()}


def training_languages(model: str, languages: tuple[str, ...]) -> tuple[str, ...]:
    return languages if model.startswith("joint_") else (model.removeprefix("mono_"),)


def gold_labels(runs: dict[str, pd.DataFrame], languages: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Gold labels of every test language, checked to be the same in every run's predictions."""
    gold = {}
    for lang in languages:
        for name, preds in runs.items():
            labels = preds[preds["language"] == lang].sort_values("test_row")["label_id"].to_numpy()
            if not len(labels):
                raise DataError(f"predictions of {name} have no rows for test language {lang!r}; "
                                "re-run the training stages")
            if lang not in gold:
                gold[lang], first = labels, name
            elif not np.array_equal(gold[lang], labels):
                raise DataError(f"predictions of {name} and {first} hold different {lang} test texts; "
                                "re-run the training stages on the current test split")
    return gold


def evaluate_model(runs: dict[str, pd.DataFrame], gold: dict[str, np.ndarray], idx: dict[str, np.ndarray],
                   cfg: Config) -> tuple[dict, dict, dict, dict]:
    """Seed-aggregated scores, per-run scores, per-run confusion matrices and seed-averaged macro-F1 of
    every bootstrap resample, per test language."""
    labels, ev = cfg.data.labels, cfg.evaluate
    aggregate, resampled = {}, {}
    detailed, confusions = {name: {} for name in runs}, {name: {} for name in runs}
    for lang in cfg.data.languages:
        preds = {name: run[run["language"] == lang].sort_values("test_row")["pred_id"].to_numpy()
                 for name, run in runs.items()}
        for name, pred in preds.items():
            detailed[name][lang] = stats.scores(gold[lang], pred, labels)
            confusions[name][lang] = stats.confusion(gold[lang], pred, len(labels))
        f1 = [detailed[name][lang]["macro_f1"] for name in runs]
        acc = [detailed[name][lang]["accuracy"] for name in runs]
        # Same resamples for every model of a language, so models are compared on paired resamples.
        means = stats.resampled_means(gold[lang], list(preds.values()), idx[lang], len(labels))
        resampled[lang] = means["macro_f1"]
        cell = {"accuracy": round(float(np.mean(acc)), 6), "macro_f1": round(float(np.mean(f1)), 6)}
        for metric in ("accuracy", "macro_f1"):
            cell[f"{metric}_ci_low"], cell[f"{metric}_ci_high"] = stats.interval(means[metric], ev.confidence)
        if len(runs) > 1:  # a spread needs two seeds; with one it is left out, never 0 or NaN
            cell["macro_f1_seed_std"] = round(float(np.std(f1, ddof=1)), 6)
        aggregate[lang] = cell | {"seeds": len(runs)}
    return aggregate, detailed, confusions, resampled


def equal_budget_size(cfg: Config) -> int | None:
    """The joint size whose total training examples equal a monolingual model's, if sample.sizes has it."""
    n_langs = len(cfg.data.languages)
    return next((s for s in cfg.sample.sizes if s * n_langs == cfg.sample.largest), None)


def differences(scores: dict, resampled: dict, gold: dict, idx: dict, cfg: Config) -> dict:
    """Differences of seed-averaged macro-F1 with percentile intervals over the shared bootstrap resamples.

    Paired (the same resampled test texts on both sides): each learning-curve step, the largest (and the
    equal-budget) joint model vs the monolingual model of the test language, each zero-shot cell vs the
    target language's own monolingual model, and vs a uniform random guesser. Unpaired (different test
    texts, independent resamples): each zero-shot cell vs the source model's in-language score.
    """
    langs, sizes, conf = cfg.data.languages, sorted(cfg.sample.sizes), cfg.evaluate.confidence
    out = {}

    def paired(a: str, b: str, lang: str) -> None:
        point = scores[a][lang]["macro_f1"] - scores[b][lang]["macro_f1"]
        out.update(stats.difference(f"{a}_minus_{b}_on_{lang}", point, resampled[a][lang] - resampled[b][lang], conf))

    for lang in langs:
        for smaller, larger in zip(sizes, sizes[1:]):
            paired(joint_name(larger), joint_name(smaller), lang)
    for size in dict.fromkeys([cfg.sample.largest, equal_budget_size(cfg)]):
        if size is not None:
            for lang in langs:
                paired(joint_name(size), mono_name(lang), lang)
    chance = {lang: stats.chance_macro_f1(gold[lang], idx[lang], len(cfg.data.labels)) for lang in langs}
    out |= {f"chance_macro_f1_on_{lang}": round(chance[lang][0], 6) for lang in langs}
    for src in langs:
        for tgt in (t for t in langs if t != src):
            model, own = mono_name(src), scores[mono_name(src)]
            paired(model, mono_name(tgt), tgt)
            out.update(stats.difference(f"{model}_minus_chance_on_{tgt}", own[tgt]["macro_f1"] - chance[tgt][0],
                                        resampled[model][tgt] - chance[tgt][1], conf))
            out.update(stats.difference(f"{model}_on_{src}_minus_on_{tgt}", own[src]["macro_f1"] - own[tgt]["macro_f1"],
                                        resampled[model][src] - resampled[model][tgt], conf))
    return out


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


def read_metric_log(path: Path, column: str) -> pd.DataFrame:
    """A dvclive metric history (`step` and the metric, named after the last part of its name)."""
    if not path.exists():
        raise DataError(f"{path} not found: the training stage that writes it did not finish; re-run it (dvc repro)")
    table = pd.read_csv(path, sep="\t")
    if not {"step", column} <= set(table.columns):
        raise DataError(f"{path}: expected columns step and {column}, found {', '.join(table.columns)}")
    if table.empty:
        raise DataError(f"{path} has no rows: the training stage that writes it did not finish; re-run it (dvc repro)")
    return table


def training_curves(log_dir: Path, runs: dict[str, str], cfg: Config) -> tuple[list[dict], list[dict]]:
    """Training loss and dev macro-F1 of every run (run name -> model), against optimizer step and epoch.

    epoch = step / steps per epoch (from params), so models of different sizes share one axis: 0 to train.epochs.
    """
    budget = training_budget(cfg)
    losses, dev = [], []
    for run, model in runs.items():
        metrics = log_dir / run / "plots" / "metrics"
        per_epoch = budget[model]["steps_per_epoch"]
        loss = read_metric_log(metrics / "loss.tsv", "loss")
        _check_epochs(read_metric_log(metrics / "epoch.tsv", "epoch"), per_epoch, metrics / "epoch.tsv", run)
        if loss["step"].iloc[-1] != budget[model]["steps"]:  # the last optimizer step is always logged
            raise DataError(f"{metrics / 'loss.tsv'}: the loss ends at optimizer step {int(loss['step'].iloc[-1])}, "
                            f"but train.epochs and the sample give {budget[model]['steps']} steps: these logs are not "
                            f"of a run with the current params; {rerun(run)}")
        losses += [{"model": run, "step": int(r.step), "epoch": round(r.step / per_epoch, 4),
                    "loss": round(float(r.loss), 6)} for r in loss.itertuples()]
        for lang in training_languages(model, cfg.data.languages):
            scores = read_metric_log(metrics / "dev" / f"macro_f1_{lang}.tsv", f"macro_f1_{lang}")
            dev += [{"model": run, "language": lang, "step": int(step), "epoch": round(step / per_epoch, 4),
                     "macro_f1": round(float(f1), 6)} for step, f1 in zip(scores["step"], scores[f"macro_f1_{lang}"])]
    return losses, dev


def train_stage(run: str) -> str:
    """The dvc.yaml stage that trains a run: joint_30_seed1 -> train_joint@30-1, mono_english_seed1 -> train_mono@english-1."""
    model, seed = run.rsplit("_seed", 1)
    kind, item = model.split("_", 1)
    return f"train_{kind}@{item}-{seed}"


def rerun(run: str) -> str:
    # -s: without it, -f forces every stage upstream too (download, sample, base)
    return f"re-run it (dvc repro -f -s {train_stage(run)}, then dvc repro)"


def _check_epochs(epochs: pd.DataFrame, per_epoch: int, path: Path, run: str) -> None:
    # The Trainer logs epoch = optimizer step / steps per epoch; anything else means the logs are not those
    # of a run with these params.
    off = (epochs["epoch"] - epochs["step"] / per_epoch).abs() > 1e-4
    if off.any():
        row = epochs[off].iloc[0]
        raise DataError(f"{path}: epoch {row['epoch']} logged at optimizer step {int(row['step'])}, but "
                        f"train.batch_size and train.processes give {per_epoch} steps per epoch: these logs are "
                        f"not of a run with the current params; {rerun(run)}")


def kept_epochs(log_dir: Path, runs: list[str], epochs: int) -> dict[str, int]:
    """The epoch whose weights each run kept (train.select), from its dvclive summary."""
    kept = {}
    for run in runs:
        path = log_dir / run / "metrics.json"
        if not path.exists():
            raise DataError(f"{path} not found: the training stage that writes it did not finish; re-run it "
                            f"(dvc repro {train_stage(run)})")
        summary = read_json(path)
        if "selected_epoch" not in summary:  # dvclive writes it when training ends
            raise DataError(f"{path} has no selected_epoch: its training did not finish, or an older version of "
                            f"the stage wrote it; {rerun(run)}")
        kept[run] = int(summary["selected_epoch"])
        if not 1 <= kept[run] <= epochs:
            raise DataError(f"{path}: selected_epoch {kept[run]}, but train.epochs is {epochs}: these logs are not "
                            f"of a run with the current params; {rerun(run)}")
    return kept


def budgets(cfg: Config, kept: dict[str, int]) -> dict[str, dict[str, int]]:
    """Every model's training examples and optimizer steps, and per seed the epoch it kept and the steps to it."""
    out = {}
    for model, b in training_budget(cfg).items():
        out[model] = dict(b)
        for seed in cfg.train.seeds:
            epoch = kept[run_name(model, seed)]
            out[model] |= {f"kept_epoch_seed{seed}": epoch, f"kept_steps_seed{seed}": epoch * b["steps_per_epoch"]}
    return out


def unexpected_files(pred_dir: Path, log_dir: Path, expected: set[str]) -> None:
    """Refuse predictions and logs of runs no stage writes any more (a seed, size or language taken out):
    evaluate depends on both folders whole, and such leftovers make its inputs differ from a fresh clone's."""
    found = sorted([p for p in pred_dir.glob("*.parquet") if p.stem not in expected]
                   + [p for p in (log_dir.iterdir() if log_dir.is_dir() else []) if p.is_dir() and p.name not in expected])
    if found:
        raise DataError(f"{', '.join(map(str, found))}: of runs that no stage of dvc.yaml writes with the current "
                        "params (train.seeds, sample.sizes, data.languages); delete them")


def confusion_rows(confusions: dict, runs: list[str], labels: tuple[str, ...]) -> list[dict]:
    """Confusion counts of the given runs summed (one model's seeds), per test language, with row shares."""
    rows = []
    for lang in confusions[runs[0]]:
        matrix = np.sum([confusions[run][lang] for run in runs], axis=0)
        for i, actual in enumerate(labels):
            total = int(matrix[i].sum())
            rows += [{"language": lang, "actual": actual, "predicted": predicted, "count": int(matrix[i, j]),
                      "share": round(float(matrix[i, j] / total), 6) if total else 0.0}
                     for j, predicted in enumerate(labels)]
    return rows


def evaluate(pred_dir: Path, cfg: Config) -> dict:
    predictions = {model: {run_name(model, seed): read_parquet(pred_dir / f"{run_name(model, seed)}.parquet",
                                                               f"predictions of {run_name(model, seed)}")
                           for seed in cfg.train.seeds} for model in model_names(cfg)}
    ev, langs = cfg.evaluate, cfg.data.languages
    gold = gold_labels({run: preds for runs in predictions.values() for run, preds in runs.items()}, langs)
    idx = {lang: stats.resample_indices(len(gold[lang]), ev.bootstrap_samples, [ev.seed, zlib.crc32(lang.encode())])
           for lang in langs}
    aggregate, detailed, confusions, resampled = {}, {}, {}, {}
    for model, runs in predictions.items():
        aggregate[model], per_run, conf, resampled[model] = evaluate_model(runs, gold, idx, cfg)
        detailed |= per_run
        confusions |= conf
    joint = {joint_name(size): aggregate[joint_name(size)] for size in cfg.sample.sizes}
    transfer = {mono_name(lang): aggregate[mono_name(lang)] for lang in langs}
    largest = cfg.sample.largest
    top_runs = [run_name(joint_name(largest), seed) for seed in cfg.train.seeds]
    return {"joint": joint, "transfer": transfer, "detailed": detailed, "confusion": confusions,
            "summary": summary(joint, transfer, largest, langs),
            "transfer_summary": transfer_summary(joint, transfer, largest, langs),
            "differences": differences(aggregate, resampled, gold, idx, cfg),
            "confusion_largest_joint": confusion_rows(confusions, top_runs, cfg.data.labels),
            "learning_curve": learning_curve(joint, cfg.sample.sizes), "transfer_matrix": transfer_matrix(transfer, langs)}


def main(args, cfg: Config) -> None:
    log_params("evaluate", data={"languages": cfg.data.languages, "labels": cfg.data.labels},
               sample={"sizes": cfg.sample.sizes}, evaluate=asdict(cfg.evaluate),
               train={k: getattr(cfg.train, k) for k in ("seeds", "epochs", "batch_size", "processes")})
    runs = {run_name(m, seed): m for m in model_names(cfg) for seed in cfg.train.seeds}
    unexpected_files(Path(args.predictions), Path(args.logs), set(runs))
    out = evaluate(Path(args.predictions), cfg)
    losses, dev = training_curves(Path(args.logs), runs, cfg)
    metrics, plots = Path(args.metrics), Path(args.plots)
    write_json(budgets(cfg, kept_epochs(Path(args.logs), list(runs), cfg.train.epochs)), metrics / "budgets.json")
    for name in ("joint", "transfer", "transfer_summary", "detailed", "differences"):
        write_json(out[name], metrics / f"{name}.json")
    write_json({"labels": list(cfg.data.labels), "rows": "gold", "columns": "predicted", "runs": out["confusion"]},
               metrics / "confusion_matrices.json")
    write_json(out["learning_curve"], plots / "learning_curve.json")
    write_json(out["transfer_matrix"], plots / "transfer_matrix.json")
    write_json(out["confusion_largest_joint"], plots / "confusion_largest_joint.json")
    write_json(losses, plots / "training_loss.json")
    write_json(dev, plots / "dev_curve.json")
    top = joint_name(cfg.sample.largest)
    out["summary"] |= last_epoch_loss(losses, top, cfg.train.seeds, training_budget(cfg)[top]["steps_per_epoch"])
    # which randomness the seed spread covers: 1 = each seed also drew the new weights (train.fixed_init false)
    out["summary"]["seeds"] = len(cfg.train.seeds)
    out["summary"]["seeds_redraw_new_weights"] = int(not cfg.train.fixed_init)
    figures.learning_curve(pd.DataFrame(out["learning_curve"]), plots / "learning_curve.png")
    figures.transfer_matrix(pd.DataFrame(out["transfer_matrix"]), plots / "transfer_matrix.png")
    figures.training_curves(pd.DataFrame(losses), pd.DataFrame(dev), plots / "training_curves.png")
    figures.confusion_matrices(pd.DataFrame(out["confusion_largest_joint"]), joint_name(cfg.sample.largest),
                               plots / "confusion_largest_joint.png")
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
