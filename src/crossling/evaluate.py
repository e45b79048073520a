"""evaluate: metrics, intervals, paired differences and plots from saved predictions (no model is loaded).

Per training run (model x seed) and test language: accuracy, macro precision/recall/F1, per-class F1,
support (`metrics/detailed.json`), the confusion matrix and the share of the most predicted class. Per model
and test language, over its seeds: mean accuracy and macro-F1, the sample standard deviation between seeds
(with two or more seeds), and a seeded bootstrap interval (`metrics/joint.json`, `metrics/transfer.json`). The
bootstrap has two levels: each resample draws test texts and, with several seeds, seeds (with replacement), so
the interval covers test-set and seed-to-seed variation (and, with `sample.redraw_per_seed`, which texts were
drawn for training). Every model is scored on the same resamples, so `metrics/differences.json` gives paired
intervals and p-values of differences between models, adjusted for multiple comparisons
(`evaluate.correction`); only significant differences between non-degenerate models are findings.

Degenerate runs (`metrics/health.json`): predictions on a language the run was trained on that put
`evaluate.collapse_share` of the texts in one class (`collapsed_on`), a dev macro-F1 that never rises above the
level of predicting one class, or an in-language test macro-F1 not above chance; a collapse on a zero-shot language
marks those cells.
`metrics/headline.json` holds the headline numbers under names that do not depend on sizes or seeds;
`metrics/transfer_normalized.json` each zero-shot cell minus the target language's own in-language score.
Training and dev curves and `metrics/budgets.json` (examples, optimizer steps, kept epoch) come from the
dvclive logs. Only the runs the params name are read; predictions and logs of other runs (a seed, size or
language taken out) are removed, so the inputs equal a fresh clone's.
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import confusion_matrix

from crossling import figures, stats
from crossling.common import (EQUAL_BUDGET, PROVENANCE_KEY, DataError, domains_of, joint_name, log, log_params, loo_name,
                              mono_name, read_json, read_parquet, run_name, run_stage, stage_parser, write_json)
from crossling.config import Config, read_yaml


def model_names(cfg: Config) -> list[str]:
    return list(training_examples(cfg))


def training_languages(model: str, languages: tuple[str, ...]) -> tuple[str, ...]:
    if model.startswith("mono_"):
        return (model.removeprefix("mono_"),)
    if model.startswith("loo_"):
        return tuple(lang for lang in languages if lang != model.removeprefix("loo_"))
    return languages


def training_examples(cfg: Config) -> dict[str, int]:
    """Training examples of every model: N per language (joint), the largest size (monolingual and the
    equal-budget joint model), or the largest size of every other language (leave one out)."""
    n_langs, largest = len(cfg.data.languages), cfg.sample.largest
    examples = {joint_name(s): s * n_langs for s in cfg.sample.sizes} | {EQUAL_BUDGET: largest}
    examples |= {mono_name(lang): largest for lang in cfg.data.languages}
    return examples | {loo_name(lang): largest * (n_langs - 1) for lang in cfg.sample.leave_one_out}


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
                   seed_idx: np.ndarray, cfg: Config) -> tuple[dict, dict, dict, dict]:
    """Seed-aggregated scores, per-run scores, per-run confusion matrices and the macro-F1 of every bootstrap
    resample (two levels: texts and seeds), per test language."""
    labels, ev = cfg.data.labels, cfg.evaluate
    aggregate, resampled = {}, {}
    detailed, confusions = {name: {} for name in runs}, {name: {} for name in runs}
    for lang in cfg.data.languages:
        preds = {name: run[run["language"] == lang].sort_values("test_row")["pred_id"].to_numpy()
                 for name, run in runs.items()}
        for name, pred in preds.items():
            detailed[name][lang] = stats.scores(gold[lang], pred, labels) | {
                "top_class_share": round(float(np.bincount(pred, minlength=len(labels)).max() / len(pred)), 6)}
            confusions[name][lang] = confusion_matrix(gold[lang], pred, labels=list(range(len(labels)))).tolist()
        f1 = [detailed[name][lang]["macro_f1"] for name in runs]
        acc = [detailed[name][lang]["accuracy"] for name in runs]
        means = stats.resampled_means(gold[lang], list(preds.values()), idx[lang], len(labels), seed_idx)
        resampled[lang] = means["macro_f1"]
        cell = {"accuracy": round(float(np.mean(acc)), 6), "macro_f1": round(float(np.mean(f1)), 6)}
        for metric in ("accuracy", "macro_f1"):
            cell[f"{metric}_ci_low"], cell[f"{metric}_ci_high"] = stats.interval(means[metric], ev.confidence)
        if len(runs) > 1:  # a spread needs two seeds; with one it is left out, never 0 or NaN
            cell["macro_f1_seed_std"] = round(float(np.std(f1, ddof=1)), 6)
        aggregate[lang] = cell | {"seeds": len(runs)}
    return aggregate, detailed, confusions, resampled


def differences(scores: dict, resampled: dict, chance: dict, cfg: Config) -> dict[str, dict]:
    """Paired differences of seed-averaged macro-F1 (the same resampled test texts and seeds on both sides),
    each with its interval, p-value and the two models it compares (`models`, dropped before writing).

    Each learning-curve step; the largest and the equal-budget joint model vs the monolingual model of the
    test language (with two or more languages: with one, all three train on the same texts with the same seeds);
    each zero-shot cell vs the target language's own monolingual model (normalized transfer); each zero-shot cell
    vs a uniform random guesser; each leave-one-out model vs the held-out language's own monolingual model.
    """
    langs, sizes, conf = cfg.data.languages, cfg.sample.sizes, cfg.evaluate.confidence
    out = {}

    def paired(a: str, b: str, lang: str) -> None:
        point = scores[a][lang]["macro_f1"] - scores[b][lang]["macro_f1"]
        out[f"{a}_minus_{b}_on_{lang}"] = (stats.difference(point, resampled[a][lang] - resampled[b][lang], conf)
                                           | {"models": (a, b), "on": lang})

    for lang in langs:
        for smaller, larger in zip(sizes, sizes[1:]):
            paired(joint_name(larger), joint_name(smaller), lang)
        for joint in (joint_name(cfg.sample.largest), EQUAL_BUDGET) if len(langs) > 1 else ():
            paired(joint, mono_name(lang), lang)
    for src in langs:
        for tgt in (t for t in langs if t != src):
            model = mono_name(src)
            paired(model, mono_name(tgt), tgt)
            point = scores[model][tgt]["macro_f1"] - chance[tgt][0]
            out[f"{model}_minus_chance_on_{tgt}"] = (stats.difference(point, resampled[model][tgt] - chance[tgt][1], conf)
                                                     | {"models": (model,), "on": tgt})
    for lang in cfg.sample.leave_one_out:
        paired(loo_name(lang), mono_name(lang), lang)
    return out


def mark_findings(diffs: dict[str, dict], degenerate: set[str], collapsed_cells: set[tuple[str, str]],
                  cfg: Config) -> dict[str, dict]:
    """Adjust the p-values of every difference together; a finding is significant after the correction and
    involves no degenerate model and no collapsed (model, test language) cell."""
    adjusted = stats.adjust({name: d["p"] for name, d in diffs.items()}, cfg.evaluate.correction)
    alpha, out = stats.significance_level(cfg.evaluate.confidence), {}
    for name, d in diffs.items():
        involves = int(any(model in degenerate or (model, d["on"]) in collapsed_cells for model in d["models"]))
        out[name] = {k: v for k, v in d.items() if k not in ("models", "on")} | {
            "p_adjusted": adjusted[name], "degenerate_model": involves,
            "finding": int(adjusted[name] < alpha and not involves)}
    return out


def normalized_transfer(diffs: dict, cfg: Config) -> dict[str, dict[str, dict]]:
    """Each zero-shot cell (and leave-one-out model) minus the target language's own monolingual model, on the
    target's test texts: what a model loses by not seeing the target language."""
    langs = cfg.data.languages
    out = {src: {tgt: diffs[f"{mono_name(src)}_minus_{mono_name(tgt)}_on_{tgt}"] for tgt in langs if tgt != src}
           for src in langs}
    if cfg.sample.leave_one_out:
        out["leave_one_out"] = {lang: diffs[f"{loo_name(lang)}_minus_{mono_name(lang)}_on_{lang}"]
                                for lang in cfg.sample.leave_one_out}
    return out


def transfer_summary(joint: dict, transfer: dict, loo: dict, chance: dict, cfg: Config) -> dict:
    """Per language: its in-language score, the mean of its model elsewhere (raw: other test sets), the mean
    normalized transfer out of it and into it, the largest joint model's score and chance."""
    langs, out = cfg.data.languages, {}
    for lang in langs:
        own = transfer[mono_name(lang)]
        others = [t for t in langs if t != lang]
        entry = {"in_language_macro_f1": own[lang]["macro_f1"],
                 "joint_macro_f1": joint[joint_name(cfg.sample.largest)][lang]["macro_f1"],
                 "chance_macro_f1": chance[lang][0]}
        if others:
            entry |= {"zero_shot_out_raw_mean_macro_f1": float(np.mean([own[t]["macro_f1"] for t in others])),
                      "normalized_transfer_out_mean": float(np.mean(
                          [own[t]["macro_f1"] - transfer[mono_name(t)][t]["macro_f1"] for t in others])),
                      "zero_shot_into_mean_macro_f1": float(np.mean([transfer[mono_name(s)][lang]["macro_f1"]
                                                                     for s in others])),
                      "normalized_transfer_into_mean": float(np.mean(
                          [transfer[mono_name(s)][lang]["macro_f1"] - own[lang]["macro_f1"] for s in others]))}
        if lang in loo:
            entry["leave_one_out_macro_f1"] = loo[lang][lang]["macro_f1"]
        out[lang] = {k: round(v, 6) for k, v in entry.items()}
    return out


def headline(joint: dict, transfer: dict, loo: dict, diffs: dict, normalized: dict, tsum: dict, cfg: Config) -> dict:
    """The numbers `dvc exp show` lists, named by role: the same names whatever the sizes and seeds; the
    per-language figures have one name per language."""
    langs, top = cfg.data.languages, joint[joint_name(cfg.sample.largest)]
    out = {"joint_largest_mean_macro_f1": np.mean([top[lang]["macro_f1"] for lang in langs]),
           "joint_equal_budget_mean_macro_f1": np.mean([joint[EQUAL_BUDGET][lang]["macro_f1"] for lang in langs]),
           "mono_in_language_mean_macro_f1": np.mean([transfer[mono_name(lang)][lang]["macro_f1"] for lang in langs])}
    cross = [(s, t) for s in langs for t in langs if s != t]
    if cross:
        out["joint_equal_budget_minus_mono_mean"] = np.mean(
            [diffs[f"{EQUAL_BUDGET}_minus_{mono_name(lang)}_on_{lang}"]["difference"] for lang in langs])
        out["zero_shot_mean_macro_f1"] = np.mean([transfer[mono_name(s)][t]["macro_f1"] for s, t in cross])
        out["normalized_transfer_mean"] = np.mean([normalized[s][t]["difference"] for s, t in cross])
    if loo:
        out["leave_one_out_mean_macro_f1"] = np.mean([loo[lang][lang]["macro_f1"] for lang in loo])
        out["leave_one_out_normalized_mean"] = np.mean([d["difference"] for d in normalized["leave_one_out"].values()])
    for lang in langs:
        out[f"joint_largest_macro_f1_{lang}"] = top[lang]["macro_f1"]
        out[f"mono_macro_f1_{lang}"] = transfer[mono_name(lang)][lang]["macro_f1"]
        if cross:
            out[f"normalized_transfer_into_{lang}"] = tsum[lang]["normalized_transfer_into_mean"]
    return {k: round(float(v), 6) for k, v in out.items()}


def read_metric_log(path: Path) -> pd.DataFrame:
    """A dvclive metric history: `step` and the metric, in a column named like the file (loss.tsv: loss)."""
    if not path.exists():
        raise DataError(f"{path} not found: the training stage that writes it did not finish; {rerun(path)}")
    table = pd.read_csv(path, sep="\t")
    if not {"step", path.stem} <= set(table.columns):
        raise DataError(f"{path}: expected columns step and {path.stem}, found {', '.join(table.columns)}")
    if table.empty:
        raise DataError(f"{path} has no rows: the training stage that writes it did not finish; {rerun(path)}")
    return table


def rerun(path: Path) -> str:
    """How to re-run the stage that writes `path`, named by DVC from dvc.yaml (-s: without it, -f forces every
    stage upstream too: download, sample, base)."""
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            stage = repo.find_outs_by_path(str(path), strict=False)[0].stage.addressing
    except Exception:  # only a hint: outside the DVC project, or not an output of it, the error still stands
        return "re-run the stage that writes it (`dvc stage list` names it): dvc repro -f -s <stage>, then dvc repro"
    return f"re-run it (dvc repro -f -s {stage}, then dvc repro)"


def run_budget(log_dir: Path, model: str, seed: int, cfg: Config) -> dict[str, int]:
    """What a run trained, from its dvclive summary: optimizer steps, steps per epoch, and the epoch (and
    step) whose weights it kept; checked against the params."""
    path = log_dir / run_name(model, seed) / "metrics.json"
    if not path.exists():
        raise DataError(f"{path} not found: the training stage that writes it did not finish; {rerun(path)}")
    summary = read_json(path)
    missing = [k for k in ("selected_epoch", "selected_step", "optimizer_steps", "steps_per_epoch") if k not in summary]
    if missing:  # dvclive writes them when training ends
        raise DataError(f"{path} has no {missing[0]}: its training did not finish, or an older version of the stage "
                        f"wrote it; {rerun(path)}")
    budget = {k: int(summary[k]) for k in ("optimizer_steps", "steps_per_epoch", "selected_epoch", "selected_step")}
    max_steps = cfg.train.max_steps
    expected = max_steps or cfg.train.epochs * budget["steps_per_epoch"]
    if budget["optimizer_steps"] != expected:
        asked = f"train.max_steps is {max_steps}" if max_steps else f"train.epochs ({cfg.train.epochs}) gives {expected}"
        raise DataError(f"{path}: {budget['optimizer_steps']} optimizer steps, but {asked}: these logs are not of a "
                        f"run with the current params; {rerun(path)}")
    epochs = -(-budget["optimizer_steps"] // budget["steps_per_epoch"])
    if not 1 <= budget["selected_epoch"] <= epochs:
        raise DataError(f"{path}: selected_epoch {budget['selected_epoch']}, but the run trained {epochs} epochs: "
                        f"these logs are not of a run with the current params; {rerun(path)}")
    return budget


def training_curves(log_dir: Path, runs: dict[str, tuple[str, int]], budgets: dict[str, dict],
                    cfg: Config) -> tuple[list[dict], list[dict]]:
    """Training loss and dev macro-F1 of every run (run name -> (model, seed)), against optimizer step and
    epoch = step / steps per epoch, so models of different sizes share one axis."""
    losses, dev = [], []
    for run, (model, _) in runs.items():
        metrics, budget = log_dir / run / "plots" / "metrics", budgets[run]
        per_epoch = budget["steps_per_epoch"]
        loss = read_metric_log(metrics / "loss.tsv")
        epochs = read_metric_log(metrics / "epoch.tsv")
        # the Trainer counts epochs in batches: with A accumulated batches per step a step's epoch runs ahead of
        # step / steps per epoch, by less than (A - 1) / (A x steps per epoch); an epoch's end is exact
        accumulated, ahead = cfg.train.gradient_accumulation_steps, epochs["epoch"] - epochs["step"] / per_epoch
        off = ((ahead < -1e-4) | (ahead > (accumulated - 1) / (accumulated * per_epoch) + 1e-4)
               | ((epochs["step"] % per_epoch == 0) & (ahead.abs() > 1e-4)))
        if off.any():
            row = epochs[off].iloc[0]
            raise DataError(f"{metrics / 'epoch.tsv'}: epoch {row['epoch']} logged at optimizer step {int(row['step'])}, "
                            f"but the run's summary gives {per_epoch} steps per epoch: the logs are not of one run; "
                            f"{rerun(log_dir / run)}")
        if loss["step"].iloc[-1] != budget["optimizer_steps"]:  # the last optimizer step is always logged
            raise DataError(f"{metrics / 'loss.tsv'}: the loss ends at optimizer step {int(loss['step'].iloc[-1])}, "
                            f"but the run's summary gives {budget['optimizer_steps']} steps: the logs are not of one "
                            f"run; {rerun(log_dir / run)}")
        losses += [{"model": run, "step": int(r.step), "epoch": round(r.step / per_epoch, 4),  # null: not finite
                    "loss": round(float(r.loss), 6) if np.isfinite(r.loss) else None} for r in loss.itertuples()]
        for lang in training_languages(model, cfg.data.languages):
            scores = read_metric_log(metrics / "dev" / f"macro_f1_{lang}.tsv")
            dev += [{"model": run, "language": lang, "step": int(step), "epoch": round(step / per_epoch, 4),
                     "macro_f1": round(float(f1), 6)} for step, f1 in zip(scores["step"], scores[f"macro_f1_{lang}"])]
    return losses, dev


def last_epoch_loss(losses: list[dict], runs: list[str], per_epoch: dict[str, int]) -> float | None:
    """Training loss over the last epoch, averaged over the runs (seeds) of one model.

    Each logged loss is the mean over the steps since the previous log; those means are weighted by how many of
    their steps fall in the last epoch, so the figure does not depend on where logging_steps put the last log.
    """
    values = []
    for run in runs:
        # in step order; never empty: training_curves refuses a run whose loss.tsv has no rows
        step, loss = np.array([(r["step"], r["loss"]) for r in losses if r["model"] == run], dtype=float).T
        weight = np.diff(np.maximum(np.r_[0, step], step[-1] - per_epoch[run]))  # each log's steps in it
        kept = (weight > 0) & np.isfinite(loss)  # not finite: an fp16 step the gradient scaler skipped
        if kept.any():
            values.append(sum(weight[kept] * loss[kept]) / weight[kept].sum())
        else:
            log.warning("%s: no finite training loss logged in its last epoch; left out of the last-epoch loss", run)
    return round(float(np.mean(values)), 6) if values else None


def at_chance(resampled: dict, chance: dict, cfg: Config) -> set[str]:
    """Models whose in-language test macro-F1 is not above chance on any language they were trained on: the
    interval of (macro-F1 - chance), seeds and test texts resampled together, reaches 0 on every one."""
    return {model for model in model_names(cfg)
            if all(stats.interval(resampled[model][lang] - chance[lang][1], cfg.evaluate.confidence)[0] <= 0
                   for lang in training_languages(model, cfg.data.languages))}


def collapsed_on(scores: dict, confusions: dict, share: float) -> list[str]:
    """The test languages whose predictions collapsed: evaluate.collapse_share of them in one class, predicted at
    least halfway from how often the class occurs to every text, or at a macro-F1 no more than 0.01 above predicting
    one class. A good model on a split that class dominates predicts it about as often as it occurs; where the class
    holds at most 2 collapse_share - 1 of the texts (every split of the reference data), the share alone decides."""
    out = []
    for lang, s in scores.items():
        matrix = np.asarray(confusions[lang])  # rows gold, columns predicted
        gold = matrix.sum(axis=1)
        top = int(matrix.sum(axis=0).argmax())
        halfway = 2 * int(matrix[:, top].sum()) >= int(gold.sum()) + int(gold[top])  # exact, in counts
        if s["top_class_share"] >= share and (halfway or s["macro_f1"] <= stats.single_class_macro_f1(gold) + 0.01):
            out.append(lang)
    return out


def health(detailed: dict, confusions: dict, dev: list[dict], runs: dict[str, tuple[str, int]], data_counts: dict,
           chance_level: set[str], cfg: Config) -> dict:
    """Per run: the test languages its predictions collapsed on (`collapsed_on`), its best mean dev macro-F1 over
    epochs and the level of predicting a single class there, whether its model is at chance in-language
    (`at_chance`), and whether it is degenerate: collapsed on a language it was trained on, never above the
    single-class level on dev, or at chance. A collapse on a zero-shot language only marks that cell (the model
    does not transfer there; `collapsed_on_<lang>`), not the run."""
    labels, out = cfg.data.labels, {}
    level = {lang: stats.single_class_macro_f1([data_counts[lang][f"dev_{name}"] for name in labels])
             for lang in cfg.data.languages}
    dev_frame = pd.DataFrame(dev)
    for run, (model, _) in runs.items():
        collapsed = collapsed_on(detailed[run], confusions[run], cfg.evaluate.collapse_share)
        langs = training_languages(model, cfg.data.languages)
        best = float(dev_frame[dev_frame["model"] == run].groupby("step")["macro_f1"].mean().max())
        single = float(np.mean([level[lang] for lang in langs]))
        at_level = best <= single + 0.01  # no epoch did better than predicting one class
        chance_model = model in chance_level
        out[run] = {"collapsed_test_languages": len(collapsed), "best_dev_macro_f1": round(best, 6),
                    "single_class_dev_macro_f1": round(single, 6), "dev_at_single_class_level": int(at_level),
                    "in_language_at_chance": int(chance_model),
                    "degenerate": int(bool(set(collapsed) & set(langs)) or at_level or chance_model)}
        out[run] |= {f"collapsed_on_{lang}": 1 for lang in collapsed}
    return out


def confusion_rows(confusions: dict, runs: list[str], labels: tuple[str, ...]) -> list[dict]:
    """Confusion counts of the given runs summed (one model's seeds), per test language, with row shares."""
    rows = []
    for lang in confusions[runs[0]]:
        matrix = np.sum([confusions[run][lang] for run in runs], axis=0)
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)  # a gold class without texts: 0
        rows += [{"language": lang, "actual": labels[i], "predicted": labels[j], "count": int(count),
                  "share": round(float(shares[i, j]), 6)} for (i, j), count in np.ndenumerate(matrix)]
    return rows


def remove_leftovers(pred_dir: Path, log_dir: Path, expected: set[str]) -> list[str]:
    """Remove predictions and logs of runs that no stage writes with the current params (a seed, size or
    language taken out): they stay in the DVC cache and in git history, and without them the inputs this
    stage records equal those of a fresh clone."""
    found = sorted([p for p in pred_dir.glob("*.parquet") if p.stem not in expected]
                   + [p for p in (log_dir.iterdir() if log_dir.is_dir() else []) if p.is_dir() and p.name not in expected])
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return [str(p) for p in found]


def run_provenance(pred_path: Path, log_dir: Path) -> dict:
    """What produced a run: the training stage's record (dvclive params: device, precision, versions, checkpoint
    commit) and the predict stage's (its Parquet metadata)."""
    params, meta = log_dir / "params.yaml", pq.read_schema(pred_path).metadata or {}
    return {"train": read_yaml(params.read_text(encoding="utf-8")) if params.exists() else {},
            "predict": json.loads(meta[PROVENANCE_KEY]) if PROVENANCE_KEY in meta else {}}


def evaluate(pred_dir: Path, cfg: Config) -> dict:
    """Scores, intervals and differences of every model the params name, from its predictions."""
    predictions = {model: {run_name(model, seed): read_parquet(pred_dir / f"{run_name(model, seed)}.parquet",
                                                               f"predictions of {run_name(model, seed)}")
                           for seed in cfg.train.seeds} for model in model_names(cfg)}
    ev, langs = cfg.evaluate, cfg.data.languages
    gold = gold_labels({run: preds for runs in predictions.values() for run, preds in runs.items()}, langs)
    idx = {lang: stats.resample_indices(len(gold[lang]), ev.bootstrap_samples, [ev.seed, zlib.crc32(lang.encode())])
           for lang in langs}
    seed_idx = stats.resample_indices(len(cfg.train.seeds), ev.bootstrap_samples, [ev.seed, zlib.crc32(b"seeds")])
    aggregate, detailed, confusions, resampled = {}, {}, {}, {}
    for model, runs in predictions.items():
        aggregate[model], per_run, conf, resampled[model] = evaluate_model(runs, gold, idx, seed_idx, cfg)
        detailed |= per_run
        confusions |= conf
    chance = {lang: stats.chance_macro_f1(gold[lang], idx[lang], len(cfg.data.labels)) for lang in langs}
    joint = {name: aggregate[name] for name in model_names(cfg) if name.startswith("joint_")}
    transfer = {mono_name(lang): aggregate[mono_name(lang)] for lang in langs}
    loo = {lang: aggregate[loo_name(lang)] for lang in cfg.sample.leave_one_out}
    return {"joint": joint, "transfer": transfer, "leave_one_out": loo, "detailed": detailed, "confusion": confusions,
            "differences": differences(aggregate, resampled, chance, cfg),
            "at_chance": at_chance(resampled, chance, cfg),
            "transfer_summary": transfer_summary(joint, transfer, loo, chance, cfg),
            "learning_curve": [{"size": size, "language": lang, **joint[joint_name(size)][lang]}
                               for size in cfg.sample.sizes for lang in langs]}


def main(args, cfg: Config) -> None:
    log_params("evaluate", data={"languages": cfg.data.languages, "labels": cfg.data.labels},
               sample={"sizes": cfg.sample.sizes, "leave_one_out": cfg.sample.leave_one_out},
               evaluate=asdict(cfg.evaluate), train={"seeds": cfg.train.seeds, "epochs": cfg.train.epochs})
    pred_dir, logs, metrics, plots = Path(args.predictions), Path(args.logs), Path(args.metrics), Path(args.plots)
    runs = {run_name(model, seed): (model, seed) for model in model_names(cfg) for seed in cfg.train.seeds}
    removed = remove_leftovers(pred_dir, logs, set(runs))
    if removed:
        log.info("removed the outputs of runs no stage writes with these params (in the DVC cache and git "
                 "history still): %s", ", ".join(removed))
    data_counts = read_json(args.data)
    budgets = {run: run_budget(logs, model, seed, cfg) for run, (model, seed) in runs.items()}
    out = evaluate(pred_dir, cfg)
    losses, dev = training_curves(logs, runs, budgets, cfg)
    run_health = health(out["detailed"], out["confusion"], dev, runs, data_counts, out["at_chance"], cfg)
    degenerate = {model for run, (model, _) in runs.items() if run_health[run]["degenerate"]}
    collapsed_cells = {(model, key.removeprefix("collapsed_on_")) for run, (model, _) in runs.items()
                       for key in run_health[run] if key.startswith("collapsed_on_")}
    diffs = mark_findings(out["differences"], degenerate, collapsed_cells, cfg)
    normalized = normalized_transfer(diffs, cfg)
    domains = domains_of(data_counts, cfg)
    # training_examples lists the models of model_names in the same order (the JSON's key order)
    budget_table = {model: {"examples": examples} | {f"seed{s}": budgets[run_name(model, s)] for s in cfg.train.seeds}
                    for model, examples in training_examples(cfg).items()}
    top = joint_name(cfg.sample.largest)
    top_runs = [run_name(top, s) for s in cfg.train.seeds]
    summary = headline(out["joint"], out["transfer"], out["leave_one_out"], diffs, normalized,
                       out["transfer_summary"], cfg)
    summary["joint_largest_last_epoch_train_loss"] = last_epoch_loss(
        losses, top_runs, {run: b["steps_per_epoch"] for run, b in budgets.items()})
    summary["degenerate_runs"] = sum(h["degenerate"] for h in run_health.values())
    for name, data in (("joint", out["joint"]), ("transfer", out["transfer"]), ("leave_one_out", out["leave_one_out"]),
                       ("transfer_summary", out["transfer_summary"]), ("detailed", out["detailed"]),
                       ("differences", diffs), ("transfer_normalized", normalized), ("health", run_health),
                       ("budgets", budget_table)):
        write_json(data, metrics / f"{name}.json")
    write_json({"labels": list(cfg.data.labels), "rows": "gold", "columns": "predicted", "runs": out["confusion"]},
               metrics / "confusion_matrices.json")
    matrix = [{"train_language": src, "test_language": tgt, "train_domain": domains[src], "test_domain": domains[tgt],
               **out["transfer"][mono_name(src)][tgt]} for src in cfg.data.languages for tgt in cfg.data.languages]
    norm_rows = [{"train_language": src, "test_language": tgt, "train_domain": domains.get(src, "several"),
                  "test_domain": domains[tgt], "normalized_macro_f1": d["difference"], "ci_low": d["ci_low"],
                  "ci_high": d["ci_high"], "finding": d["finding"], "degenerate": d["degenerate_model"],
                  "test_order": cfg.data.languages.index(tgt)}  # the plot's columns in the rows' order
                 for src, row in normalized.items() for tgt, d in row.items()]
    confusion = confusion_rows(out["confusion"], top_runs, cfg.data.labels)
    for name, rows in (("learning_curve", out["learning_curve"]), ("transfer_matrix", matrix),
                       ("transfer_normalized", norm_rows), ("confusion_largest_joint", confusion),
                       ("training_loss", losses), ("dev_curve", dev)):
        write_json(rows, plots / f"{name}.json")
    figures.learning_curve(pd.DataFrame(out["learning_curve"]), plots / "learning_curve.png")
    figures.transfer_matrix(pd.DataFrame(matrix), plots / "transfer_matrix.png")
    figures.transfer_normalized(pd.DataFrame(norm_rows), plots / "transfer_normalized.png")
    figures.training_curves(pd.DataFrame(losses), pd.DataFrame(dev), plots / "training_curves.png")
    figures.confusion_matrices(pd.DataFrame(confusion), top, plots / "confusion_largest_joint.png")
    write_json({"data": read_json(args.source), "runs": {run: run_provenance(pred_dir / f"{run}.parquet", logs / run)
                                                         for run in runs}}, metrics / "provenance.json")
    write_json(summary, metrics / "headline.json")
    log.info("headline: %s", summary)
    bad = [run for run, h in run_health.items() if h["degenerate"]]
    if bad:
        log.warning("degenerate runs (predictions collapsed on a training language, dev macro-F1 at the single-class "
                    "level, or in-language test macro-F1 at chance): %s; their differences are not findings "
                    "(metrics/health.json)", ", ".join(bad))


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "predictions", "logs: dvclive directories, one per run",
                           "data: the combine stage's counts and sources", "source: the download stage's provenance",
                           "metrics", "plots")
    run_stage("evaluate", main, parser, argv)


if __name__ == "__main__":
    cli()
