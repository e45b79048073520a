"""report: reports/results.md, the headline numbers with intervals, figures and data report in one page.

Reads only the tracked metrics JSON (so it always matches `dvc metrics show`) and the params; every score
comes with its model's training examples and optimizer steps (`metrics/budgets.json`), and paired
differences whose interval excludes zero are in bold.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from crossling.common import (DataError, atomic_file, joint_name, log, log_params, mono_name, read_json, run_stage,
                              stage_parser)
from crossling.config import Config
from crossling.evaluate import equal_budget_size


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def with_ci(m: dict, metric: str = "macro_f1") -> str:
    text = f"{m[metric]:.3f} [{m[f'{metric}_ci_low']:.3f}, {m[f'{metric}_ci_high']:.3f}]"
    return text + (f" ±{m['macro_f1_seed_std']:.3f}" if metric == "macro_f1" and m.get("seeds", 1) > 1 else "")


def budget(b: dict) -> str:
    return f"{b['examples']} ex., {b['steps']} steps"


def diff(d: dict, key: str) -> str:
    """A difference with its interval; bold when the interval excludes zero."""
    low, high = d[f"{key}_ci_low"], d[f"{key}_ci_high"]
    text = f"{d[key]:+.3f} [{low:+.3f}, {high:+.3f}]"
    return f"**{text}**" if low > 0 or high < 0 else text


def render(cfg: Config, m: dict, figures: dict[str, str]) -> str:
    langs, sizes, largest = cfg.data.languages, sorted(cfg.sample.sizes), cfg.sample.largest
    joint, transfer, tsum, data, tok = m["joint"], m["transfer"], m["transfer_summary"], m["data"], m["tokenization"]
    d, costs, top = m["differences"], m["budgets"], joint_name(largest)
    mono_cost = budget(costs[mono_name(langs[0])])  # every monolingual model trains on the largest size
    pct = round(cfg.evaluate.confidence * 100)
    seeds = ", ".join(map(str, cfg.train.seeds))
    parts = [
        "# crossling results",
        f"Model `{cfg.model.checkpoint}`, data `{cfg.data.source}`, {cfg.train.epochs} epochs, lr "
        f"{cfg.train.learning_rate:g}, batch {cfg.train.batch_size} x {cfg.train.processes} process(es), max length "
        f"{cfg.train.max_length}, seeds {seeds}. The dev split ({cfg.sample.dev_size} texts per language, classes "
        f"balanced, disjoint from every sample and test split) is scored after every epoch; "
        + ("each model keeps its epoch with the best mean dev macro-F1 (train.select: best)"
           if cfg.train.select == "best" else "each model keeps its last epoch (train.select: last)")
        + f"; choose settings on dev, report test. Every score here is "
        f"macro-F1 on a language's test split with a {pct}% bootstrap interval "
        f"({cfg.evaluate.bootstrap_samples} resamples of the test texts)"
        + (f"; ± is the sample standard deviation (ddof 1) over the {len(cfg.train.seeds)} seeds."
           if len(cfg.train.seeds) > 1 else "; with one seed, seed-to-seed variation is not measured and no spread is reported (set train.seeds "
                "to two or more seeds to measure it).")
        + " Training budgets: `ex.` = training examples, `steps` = optimizer steps = epochs x "
          "ceil(examples / (batch size x processes))"
        + ("; with train.select: best a model keeps the weights of an earlier epoch: the steps to those are in "
           "Training budgets below." if cfg.train.select == "best" else "."),
        "## Headline",
        table(["test language", f"{top} ({budget(costs[top])})", f"monolingual, in-language ({mono_cost})",
               f"zero-shot mean, from the others ({mono_cost} each)", "tokens per word/char"],
              [[lang, with_ci(joint[top][lang]), with_ci(transfer[mono_name(lang)][lang]),
                _zero_shot_into(transfer, lang, langs), tok[lang]["pool_tokens_per_unit"]] for lang in langs]),
        "## Learning curve (joint models)",
        table(["examples per language", "training budget"] + list(langs),
              [[size, budget(costs[joint_name(size)])] + [with_ci(joint[joint_name(size)][lang]) for lang in langs]
               for size in sizes]),
        f"![learning curve]({figures['learning_curve']})",
        "## Zero-shot transfer (train on the row language, test on the column language)",
        table(["train \\ test", "training budget"] + list(langs),
              [[src, budget(costs[mono_name(src)])] + [f"{transfer[mono_name(src)][t]['macro_f1']:.3f}" for t in langs]
               for src in langs]),
        f"![transfer matrix]({figures['transfer_matrix']})",
        "### Transfer summary",
        *_transfer_summary(cfg, tsum, joint, d, costs),
        *_differences(cfg, d, pct),
        "## Training",
        "Training loss and dev macro-F1 per run against epochs (optimizer step / steps per epoch), so models "
        "of every size share one axis from the first step to the last.",
        f"![training curves]({figures['training_curves']})",
        "### Training budgets",
        _budget_table(cfg, costs),
        f"Confusion matrices of {top} per test language (counts summed over the seeds; colour: share of the gold class):",
        f"![confusion matrices]({figures['confusion_largest_joint']})",
        "## Tokenization (base tokenizer)",
        table(["language", "tokens per unit (pool)", "unknown rate (pool)", "truncated (test)", "mean tokens (test)"],
              [[lang, tok[lang]["pool_tokens_per_unit"], f"{tok[lang]['pool_unk_rate']:.4f}",
                f"{tok[lang]['test_truncated_share']:.3f}", tok[lang]["test_mean_tokens"]] for lang in langs]),
        "Units are whitespace words, or characters for japanese and chinese.",
        f"![tokenization]({figures['tokenization']})",
        "## Data",
        table(["language", "train", "validation", "test", "empty", "unknown label", "duplicates",
               "conflicting labels", "in its test split", "in another's test split", "in another's dev split",
               "dev", "pool kept", "test kept"],
              [[lang, d_["raw_train"], d_["raw_validation"], d_["raw_test"], d_["pool_empty_text"] + d_["test_empty_text"],
                d_["pool_unknown_label"] + d_["test_unknown_label"], d_["pool_duplicate_rows"],
                d_["pool_conflicting_label_rows"], d_["pool_test_overlap_rows"],
                d_["pool_other_language_test_overlap_rows"], d_["pool_other_language_dev_overlap_rows"], d_["dev"],
                d_["pool"], d_["test"]]
               for lang, d_ in data.items()]),
        "Removed from the pool only, except empty texts and unknown labels (both splits). The dev split is carved "
        "out of the clean pool before any sample is drawn; the samples come from what is kept. Duplicates inside "
        "the test split are kept and counted in `metrics/data.json` (`test_duplicate_rows_kept`).",
        f"![label distribution]({figures['label_distribution']})",
    ]
    return "\n\n".join(parts) + "\n"


def _transfer_summary(cfg: Config, tsum: dict, joint: dict, d: dict, costs: dict) -> list[str]:
    langs, largest = cfg.data.languages, cfg.sample.largest
    top, equal = joint_name(largest), equal_budget_size(cfg)
    header = ["train language", "in-language", "mean on other languages", "transfer gap", f"{top} on it"]
    rows = [[src, f"{s['in_language_macro_f1']:.3f}", _fmt(s.get("cross_language_mean_macro_f1")),
             _fmt(s.get("transfer_gap")), f"{s['joint_macro_f1']:.3f}"] for src, s in tsum.items()]
    mono_examples = costs[mono_name(langs[0])]["examples"]
    if equal is not None and equal != largest:
        header.append(f"joint_{equal} on it (same examples) minus in-language")
        for row, src in zip(rows, tsum):
            row.append(diff(d, f"joint_{equal}_minus_mono_{src}_on_{src}"))
        note = (f"joint_{equal} trains on {equal} x {len(langs)} = {mono_examples} examples, as many as each "
                f"monolingual model (and as many optimizer steps): the last column compares them at an equal budget.")
    elif equal == largest:
        note = f"With one language, {top} and the monolingual model train on the same {mono_examples} examples."
    else:
        note = (f"No size in sample.sizes gives a joint model the {mono_examples} training examples of a "
                f"monolingual model (that needs {mono_examples} / {len(langs)} = {mono_examples / len(langs):.1f} "
                f"per language), so joint and monolingual models are not compared at an equal budget here: {top} "
                f"trains on {costs[top]['examples']} examples ({costs[top]['examples'] / mono_examples:g} times as many).")
    return [table(header, rows), note]


def _differences(cfg: Config, d: dict, pct: int) -> list[str]:
    langs, sizes, top = cfg.data.languages, sorted(cfg.sample.sizes), joint_name(cfg.sample.largest)
    n = sum(1 for k in d if k.endswith("_ci_low"))

    def matrix(key) -> str:
        return table(["train \\ test"] + list(langs),
                     [[src] + ["—" if src == t else diff(d, key(src, t)) for t in langs] for src in langs])

    out = [
        "## Paired differences",
        f"Differences of seed-averaged macro-F1 with {pct}% percentile intervals over the bootstrap resamples. "
        "Paired: both models are scored on the same resampled test texts, so the interval reflects the "
        "difference itself, not the two scores' separate noise. **Bold**: the interval excludes zero. Each "
        f"interval stands alone ({n} here, no correction for multiple comparisons: about {100 - pct}% of "
        "differences that are truly zero still come out bold), and covers the sampling of test texts only, "
        "not seed-to-seed variation.",
        "### Learning curve: each size minus the previous one (paired, same test texts)",
        table(["step"] + list(langs),
              [[f"{b} − {a}"] + [diff(d, f"joint_{b}_minus_joint_{a}_on_{lang}") for lang in langs]
               for a, b in zip(sizes, sizes[1:])]) if len(sizes) > 1 else "One sample size: no steps.",
        f"### {top} minus the monolingual model of the test language (paired)",
        table(["test language", f"{top} − monolingual"], [[lang, diff(d, f"{top}_minus_mono_{lang}_on_{lang}")]
                                                          for lang in langs]),
    ]
    if len(langs) > 1:
        out += [
            "### Zero-shot cell minus the target language's own monolingual model (paired: target test texts)",
            matrix(lambda src, t: f"mono_{src}_minus_mono_{t}_on_{t}"),
            "### Zero-shot cell minus chance (paired)",
            "Chance: the expected macro-F1 of guessing each label with equal probability (the label prior of the "
            "balanced training samples), computed on the same resamples: "
            + ", ".join(f"{lang} {d[f'chance_macro_f1_on_{lang}']:.3f}" for lang in langs) + ".",
            matrix(lambda src, t: f"mono_{src}_minus_chance_on_{t}"),
            "### Source model: in-language score minus zero-shot cell (not paired)",
            "The two scores are on different test texts (source and target language), so no pairing is possible: "
            "the interval combines independent resamples of the two test splits, so it is usually wider than a "
            "paired one.",
            matrix(lambda src, t: f"mono_{src}_on_{src}_minus_on_{t}"),
        ]
    return out


def _budget_table(cfg: Config, costs: dict) -> str:
    """Every model: examples, steps trained, and per seed the epoch whose weights it kept and the steps to them."""
    seeds = cfg.train.seeds
    return table(["model", "training examples", "optimizer steps trained", "kept epoch (per seed)",
                  "optimizer steps to the kept weights"],
                 [[model, c["examples"], c["steps"], " / ".join(str(c[f"kept_epoch_seed{s}"]) for s in seeds),
                   " / ".join(str(c[f"kept_steps_seed{s}"]) for s in seeds)] for model, c in costs.items()])


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _zero_shot_into(transfer: dict, target: str, langs: tuple[str, ...]) -> str:
    scores = [transfer[mono_name(src)][target]["macro_f1"] for src in langs if src != target]
    return f"{sum(scores) / len(scores):.3f}" if scores else "n/a"


def main(args, cfg: Config) -> None:
    log_params("report", data={"languages": cfg.data.languages},
               sample={"sizes": cfg.sample.sizes, "dev_size": cfg.sample.dev_size}, train=asdict(cfg.train))
    metrics = Path(args.metrics)
    m = {name: read_json(metrics / f"{name}.json")
         for name in ("joint", "transfer", "transfer_summary", "differences", "budgets", "data", "tokenization")}
    out = Path(args.out)
    figures = {name: os.path.relpath(Path(args.plots) / f"{name}.png", out.parent)
               for name in ("learning_curve", "transfer_matrix", "tokenization", "label_distribution",
                            "training_curves", "confusion_largest_joint")}
    try:
        text = render(cfg, m, figures)
    except KeyError as missing:  # evaluate wrote them for another params.yaml
        raise DataError(f"{metrics}/*.json lack {missing}, which params.yaml asks for: they are not evaluate's output "
                        "for these params; re-run evaluate (dvc repro)") from None
    with atomic_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("wrote %s", out)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--plots", default="plots")
    parser.add_argument("--out", default="reports/results.md")
    run_stage("report", main, parser, argv)


if __name__ == "__main__":
    cli()
