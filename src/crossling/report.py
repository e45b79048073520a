"""report: reports/results.md, the headline numbers with intervals, figures and data report in one page.

Reads only the tracked metrics JSON (so it is cheap and always matches `dvc metrics show`).
"""

from __future__ import annotations

import os
from pathlib import Path

from crossling.common import atomic_file, joint_name, log, log_params, mono_name, read_json, run_stage, stage_parser
from crossling.config import Config


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def with_ci(m: dict, metric: str = "macro_f1") -> str:
    text = f"{m[metric]:.3f} [{m[f'{metric}_ci_low']:.3f}, {m[f'{metric}_ci_high']:.3f}]"
    return text + (f" ±{m['macro_f1_seed_std']:.3f}" if metric == "macro_f1" and m.get("seeds", 1) > 1 else "")


def render(cfg: Config, m: dict, figures: dict[str, str]) -> str:
    langs, sizes, largest = cfg.data.languages, sorted(cfg.sample.sizes), cfg.sample.largest
    joint, tsum, data, tok = m["joint"], m["transfer_summary"], m["data"], m["tokenization"]
    transfer = {lang: m["transfer"][mono_name(lang)] for lang in langs}  # by train language
    pct = round(cfg.evaluate.confidence * 100)
    seeds = ", ".join(map(str, cfg.train.seeds))
    parts = [
        "# crossling results",
        f"Model `{cfg.model.checkpoint}`, data `{cfg.data.source}`, {cfg.train.epochs} epochs, lr "
        f"{cfg.train.learning_rate:g}, batch {cfg.train.batch_size}, max length {cfg.train.max_length}, "
        f"seeds {seeds}. Scores are macro-F1 on each language's test split with a {pct}% bootstrap interval "
        f"({cfg.evaluate.bootstrap_samples} resamples of the test texts)"
        + (f"; ± is the standard deviation over the {len(cfg.train.seeds)} seeds." if len(cfg.train.seeds) > 1 else
           "; with one seed, seed-to-seed variation is not included (set train.seeds to measure it)."),
        "## Headline",
        table(["test language", joint_name(largest), "monolingual (in-language)", "zero-shot mean (from others)",
               "tokens per word/char"],
              [[lang, with_ci(joint[joint_name(largest)][lang]), with_ci(transfer[lang][lang]),
                _zero_shot_into(transfer, lang, langs), tok[lang]["pool_tokens_per_unit"]] for lang in langs]),
        "## Learning curve (joint models)",
        table(["examples per language"] + list(langs),
              [[size] + [with_ci(joint[joint_name(size)][lang]) for lang in langs] for size in sizes]),
        f"![learning curve]({figures['learning_curve']})",
        "## Zero-shot transfer (train on the row language, test on the column language)",
        table(["train \\ test"] + list(langs),
              [[src] + [f"{transfer[src][t]['macro_f1']:.3f}" for t in langs] for src in langs]),
        f"![transfer matrix]({figures['transfer_matrix']})",
        "### Transfer summary",
        table(["train language", "in-language", "mean on other languages", "transfer gap",
               f"{joint_name(largest)} on it"],
              [[src, f"{s['in_language_macro_f1']:.3f}", _fmt(s.get("cross_language_mean_macro_f1")),
                _fmt(s.get("transfer_gap")), f"{s['joint_macro_f1']:.3f}"] for src, s in tsum.items()]),
        "## Tokenization (base tokenizer)",
        table(["language", "tokens per unit (pool)", "unknown rate (pool)", "truncated (test)", "mean tokens (test)"],
              [[lang, tok[lang]["pool_tokens_per_unit"], f"{tok[lang]['pool_unk_rate']:.4f}",
                f"{tok[lang]['test_truncated_share']:.3f}", tok[lang]["test_mean_tokens"]] for lang in langs]),
        "Units are whitespace words, or characters for japanese and chinese.",
        f"![tokenization]({figures['tokenization']})",
        "## Data",
        table(["language", "train", "validation", "test", "empty", "unknown label", "duplicates",
               "conflicting labels", "in its test split", "in another's test split", "pool kept", "test kept"],
              [[lang, d["raw_train"], d["raw_validation"], d["raw_test"], d["pool_empty_text"] + d["test_empty_text"],
                d["pool_unknown_label"] + d["test_unknown_label"], d["pool_duplicate_rows"],
                d["pool_conflicting_label_rows"], d["pool_test_overlap_rows"],
                d["pool_other_language_test_overlap_rows"], d["pool"], d["test"]]
               for lang, d in data.items()]),
        "Removed from the pool only, except empty texts and unknown labels (both splits). Duplicates inside "
        "the test split are kept and counted in `metrics/data.json` (`test_duplicate_rows_kept`).",
        f"![label distribution]({figures['label_distribution']})",
    ]
    return "\n\n".join(parts) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _zero_shot_into(transfer: dict, target: str, langs: tuple[str, ...]) -> str:
    scores = [transfer[src][target]["macro_f1"] for src in langs if src != target]
    return f"{sum(scores) / len(scores):.3f}" if scores else "n/a"


def main(args, cfg: Config) -> None:
    log_params("report", data={"languages": cfg.data.languages}, sample={"sizes": cfg.sample.sizes})
    metrics = Path(args.metrics)
    m = {name: read_json(metrics / f"{name}.json")
         for name in ("joint", "transfer", "transfer_summary", "data", "tokenization")}
    out = Path(args.out)
    figures = {name: os.path.relpath(Path(args.plots) / f"{name}.png", out.parent)
               for name in ("learning_curve", "transfer_matrix", "tokenization", "label_distribution")}
    with atomic_file(out) as tmp:
        tmp.write_text(render(cfg, m, figures), encoding="utf-8")
    log.info("wrote %s", out)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--plots", default="plots")
    parser.add_argument("--out", default="reports/results.md")
    run_stage("report", main, parser, argv)


if __name__ == "__main__":
    cli()
