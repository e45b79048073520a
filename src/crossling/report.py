"""report: reports/results.md, the headline numbers with intervals, figures and data report in one page.

Reads only the tracked metrics JSON (so it always matches `dvc metrics show`) and the params. It opens with
the runs that are degenerate (collapsed predictions, dev macro-F1 at the single-class level), says which
sources of variance the intervals cover and which multiple-comparison correction decides the findings
(bold), names each language's source and domain wherever a transfer cell is shown, and gives every score
with its model's training examples and optimizer steps.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from crossling import stats
from crossling.common import (EQUAL_BUDGET, DataError, _parent, domains_of, joint_name, log, log_params, mono_name,
                              read_json, run_stage, stage_parser, unit_of)
from crossling.config import Config

CORRECTIONS = {"holm": "Holm's step-down correction (family-wise error rate)",
               "bh": "the Benjamini-Hochberg correction (false discovery rate)"}
METRIC_FILES = ("headline", "joint", "transfer", "leave_one_out", "transfer_summary", "transfer_normalized",
                "differences", "health", "budgets", "data", "tokenization", "provenance")


def table(header: list[str], rows: list[list], left: int = 1) -> str:
    """A Markdown table whose first `left` columns are left-aligned, the others (numbers) right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def with_ci(m: dict) -> str:
    text = f"{m['macro_f1']:.3f} [{m['macro_f1_ci_low']:.3f}, {m['macro_f1_ci_high']:.3f}]"
    return text + (f" ±{m['macro_f1_seed_std']:.3f}" if m.get("seeds", 1) > 1 else "")


def diff(d: dict, marked: str = "finding") -> str:
    """A difference with its interval: bold when `marked` (a finding: significant after the correction, no
    degenerate model, no collapsed cell), ⚠ when it involves a degenerate model or a collapsed zero-shot cell."""
    text = f"{d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
    if d["degenerate_model"]:
        return text + " ⚠"
    return f"**{text}**" if d[marked] else text


def budget(model_budget: dict) -> str:
    steps = sorted({v["optimizer_steps"] for k, v in model_budget.items() if k.startswith("seed")})
    return f"{model_budget['examples']} ex., {'/'.join(map(str, steps))} steps"


def collapsed_on(h: dict) -> list[str]:
    return sorted(k.removeprefix("collapsed_on_") for k in h if k.startswith("collapsed_on_"))


def degenerate_note(health: dict, collapse_share: float) -> str:
    bad = {run: h for run, h in health.items() if h["degenerate"]}
    cells = {run: collapsed_on(h) for run, h in health.items() if not h["degenerate"] and collapsed_on(h)}
    if not bad:
        lines = ["No degenerate run: no run's predictions collapsed on a language it was trained on, every run's "
                 "dev macro-F1 rose above the level of predicting a single class, and every model's in-language test "
                 "macro-F1 is above chance on at least one of its training languages."]
    else:
        lines = [f"**⚠ {len(bad)} degenerate run(s)**: their scores are in the tables, but no difference involving "
                 "their model is a finding (marked ⚠). A collapsed or at-chance run is a failed run to fix (learning "
                 "rate, steps, precision), not a result."]
    for run, h in bad.items():
        why = []
        if collapsed_on(h):
            why.append(f"predictions collapsed (≥{collapse_share:.0%} one class) on {', '.join(collapsed_on(h))}")
        if h["dev_at_single_class_level"]:
            why.append(f"best dev macro-F1 {h['best_dev_macro_f1']:.3f}, at the single-class level "
                       f"{h['single_class_dev_macro_f1']:.3f}")
        if h.get("in_language_at_chance"):
            # a flag of the model (its seeds averaged), given to each of its runs: a run of it may score well alone
            why.append("its model's in-language test macro-F1 (its seeds averaged) not above chance on any training "
                       "language (interval reaches it)")
        lines.append(f"- `{run}`: {'; '.join(why)}")
    if cells:
        lines += ["", f"Zero-shot predictions collapsed (≥{collapse_share:.0%} one class) in these cells: the model "
                  "does not transfer there; differences on these cells are marked ⚠, the runs' other cells stand."]
        lines += [f"- `{run}` on {', '.join(langs)}" for run, langs in cells.items()]
    return "\n".join(lines)


def variance_note(cfg: Config) -> str:
    seeds = len(cfg.train.seeds)
    covered = ["which test texts (bootstrap over each language's test split)"]
    if seeds > 1:
        what = "initialization of new weights, data order, dropout" if not cfg.train.fixed_init else "data order, dropout"
        covered.append(f"which seed ({seeds} seeds resampled with replacement: {what}"
                       + (", and which training texts were drawn (sample.redraw_per_seed)" if cfg.sample.redraw_per_seed
                          else "; every seed trains on the same sample draw") + ")")
        level = "a two-level bootstrap"
    else:
        level = "a bootstrap"
        covered.append("nothing else: with one seed, neither seed-to-seed variation nor the sample draw is measured "
                       "(set train.seeds to several seeds, and sample.redraw_per_seed: true to cover the draw)")
    ev = cfg.evaluate
    return (f"Intervals are {ev.confidence * 100:.10g}% percentile intervals of {level} ({ev.bootstrap_samples} "
            f"resamples) and cover {'; '.join(covered)}. "
            + (f"The ± after one is the sample standard deviation (n−1) of macro-F1 over the {seeds} seeds. "
               if seeds > 1 else "")
            + "Differences are paired: both models are scored on the same "
            "resamples. Their p-values (two-sided, from the bootstrap standard error) are adjusted together for "
            f"multiple comparisons with {CORRECTIONS[ev.correction]}; **bold** marks the differences whose adjusted "
            f"p-value is below {stats.significance_level(ev.confidence):.10g} and that involve no degenerate run and "
            "no collapsed zero-shot cell. Intervals are not adjusted.")


def domain_note(langs: tuple[str, ...], data: dict, domains: dict[str, str], source_domains: dict[str, str]) -> str:
    test = {lang: data[lang]["sources"]["test"] for lang in langs}
    unnamed = [lang for lang in langs if "unknown" in test[lang]]  # combine's name for no source
    if all(set(names) <= {"unknown"} for names in test.values()):
        return ("The data names no source for its test texts (no `source` column, or a blank one), so the report "
                "cannot tell the languages' domains apart: a transfer cell may cross domains unmarked.")
    unlisted = sorted({src for names in test.values() for src in names} - set(source_domains) - {"unknown"})
    return " ".join(filter(None, (
        _domains_compared(langs, {lang: ", ".join(names) for lang, names in test.items()}, domains),
        unlisted and (f"data.source_domains gives no domain for {', '.join(unlisted)}: each source stands for a "
                      "domain of its own here; name its domain there to compare it with the others."),
        unnamed and (f"The data names no source for (some of) the test texts of {', '.join(unnamed)} (no `source` "
                     "column, or a blank one): their domain is unknown, and a cell into them may cross domains."))))


def _domains_compared(langs: tuple[str, ...], sources: dict[str, str], domains: dict[str, str]) -> str:
    kinds = sorted(set(domains.values()))
    listing = "; ".join(f"{lang}: {sources[lang]} ({domains[lang]})" for lang in langs)
    if len(langs) == 1:
        return f"The test split comes from {sources[langs[0]]} ({domains[langs[0]]})."
    if len(set(sources.values())) == 1:  # one name, several collections: SemEval-2017's subtasks per language
        return (f"Every language's test split comes from a source of the same name ({listing}); its languages can "
                "still be separate datasets, so a transfer cell may also cross datasets (annotation guidelines, "
                "collection period).")
    if len(kinds) == 1:
        return (f"The languages come from different datasets of one domain ({kinds[0]}): {listing}. A transfer cell "
                "between two of them also crosses datasets (annotation guidelines, collection period).")
    return (f"**The languages come from different sources and domains** ({', '.join(kinds)}): {listing}. A "
            "transfer cell between languages of different domains (marked †; a leave-one-out cell when a language "
            "it trained on is of another domain than the held-out one) measures a change of language and of "
            "domain at once; compare cells within a domain to see the language alone.")


def render(cfg: Config, m: dict, figures: dict[str, str]) -> str:
    langs, sizes, largest = cfg.data.languages, cfg.sample.sizes, cfg.sample.largest
    joint, transfer, tsum, data, tok = m["joint"], m["transfer"], m["transfer_summary"], m["data"], m["tokenization"]
    costs, top, norm, loo = m["budgets"], joint_name(largest), m["transfer_normalized"], m["leave_one_out"]
    domains = domains_of(data, cfg)
    t = cfg.train
    length = f"{t.max_steps} optimizer steps for every model" if t.max_steps else f"{t.epochs} epoch{'s' * (t.epochs != 1)}"
    method = (f"LoRA fine-tuning (rank {t.lora.rank}, alpha {t.lora.alpha:g}, on {t.lora.target_modules}; the head in "
              "full)" if t.method == "lora" else "full fine-tuning")
    dev = ("the dataset's own validation split (data.dev_split: validation)" if cfg.data.dev_split == "validation"
           else f"{cfg.sample.dev_size} texts per language carved from train + validation, classes balanced")

    mixed = len(set(domains.values())) > 1

    def cross(src: str, tgt: str) -> str:  # the leave-one-out model trains on every language but the target
        sources = [lang for lang in langs if lang != tgt] if src == "leave_one_out" else [src]
        return "†" if any(domains[lang] != domains[tgt] for lang in sources) else ""

    head_cols = ["test language", "source (domain)", f"{top} ({budget(costs[top])})",
                 f"{EQUAL_BUDGET}, equal budget ({budget(costs[EQUAL_BUDGET])})",
                 f"monolingual, in-language ({budget(costs[mono_name(langs[0])])})"]
    if len(langs) > 1:
        head_cols += ["zero-shot mean into it", "normalized transfer into it"]
    if loo:
        head_cols.append("leave-one-out")
    head_cols.append("chance")
    head_rows = []
    for lang in langs:
        row = [lang, f"{', '.join(data[lang]['sources']['test'])} ({domains[lang]})", with_ci(joint[top][lang]),
               with_ci(joint[EQUAL_BUDGET][lang]), with_ci(transfer[mono_name(lang)][lang])]
        if len(langs) > 1:
            row += [f"{tsum[lang]['zero_shot_into_mean_macro_f1']:.3f}", f"{tsum[lang]['normalized_transfer_into_mean']:+.3f}"]
        if loo:
            row.append(with_ci(loo[lang][lang]) + cross("leave_one_out", lang) if lang in loo else "—")
        row.append(f"{tsum[lang]['chance_macro_f1']:.3f}")
        head_rows.append(row)

    parts = [
        "# crossling results",
        degenerate_note(m["health"], cfg.evaluate.collapse_share),
        f"Model `{cfg.model.checkpoint}`, data "
        + (f"`{cfg.data.hub_id}` (hub)" if cfg.data.is_hub else f"`{cfg.data.source}`")
        + f", {method}, {length}, lr {t.learning_rate:g}, "
        f"batch {t.batch_size}"
        + (f" x {t.gradient_accumulation_steps} accumulated" if t.gradient_accumulation_steps > 1 else "")
        + f" x {t.processes} process(es), max length {t.max_length}, weights saved as "
        f"{t.save_dtype}, seeds "
        f"{', '.join(map(str, t.seeds))}. Dev split: {dev}; it is disjoint from every sample and test split and scored "
        "after every epoch; "
        + ("each model keeps its epoch with the best mean dev macro-F1 (train.select: best)" if t.select == "best"
           else "each model keeps its last epoch (train.select: last)")
        + "; choose settings on dev, report test. Every score is macro-F1 on a language's test split.",
        variance_note(cfg),
        "## Headline",
        table(head_cols, head_rows),
        f"{EQUAL_BUDGET} trains on as many examples in total as one monolingual model ({costs[EQUAL_BUDGET]['examples']}),"
        f" spread over the {len(langs)} languages: the joint-vs-monolingual comparison at an equal budget. Normalized "
        "transfer: a zero-shot cell minus the target language's own in-language score (what a model loses by not "
        "seeing the target language; 0 = nothing lost), on the target's test texts." if len(langs) > 1 else
        f"One language (data.languages): {top}, {EQUAL_BUDGET} and the monolingual model train on the same "
        f"{largest} {langs[0]} texts with the same seeds and settings, so they repeat one training run (their scores "
        "differ only by run-to-run nondeterminism, none on CPU) and are not compared; there is no transfer to measure.",
        domain_note(langs, data, domains, cfg.data.source_domains),
        "## Learning curve (joint models)",
        table(["examples per language", "training budget"] + list(langs),
              [[size, budget(costs[joint_name(size)])] + [with_ci(joint[joint_name(size)][lang]) for lang in langs]
               for size in sizes]),
        "With a fixed number of epochs a larger sample also gets more optimizer steps: the curve then measures data "
        "and compute together; `train.max_steps` gives every model the same steps." if not t.max_steps else
        f"Every model trained {t.max_steps} optimizer steps (train.max_steps): the curve measures data alone.",
        f"![learning curve]({figures['learning_curve']})",
    ]
    if len(langs) > 1:
        parts += [
            "## Zero-shot transfer (train on the row language, test on the column language)",
            table(["train \\ test", "training budget"] + [f"{lang} ({domains[lang]})" for lang in langs],
                  [[src, budget(costs[mono_name(src)])]
                   + [f"{transfer[mono_name(src)][tgt]['macro_f1']:.3f}{cross(src, tgt)}" for tgt in langs]
                   for src in langs]),
            f"![transfer matrix]({figures['transfer_matrix']})",
            ("† the two languages' test splits come from different domains. Raw cells compare different test sets "
             "(domain, size, class prior)" if mixed else "Raw cells compare different test sets (size, class prior)")
            + ": read the normalized matrix below for transfer.",
            "### Normalized transfer (paired: zero-shot cell minus the target's own monolingual model)",
            table(["train \\ test"] + list(langs),
                  [[src if src != "leave_one_out" else "leave one out (all others)"]
                   + [diff(row[tgt]) + cross(src, tgt) if tgt in row else "—"
                      for tgt in langs] for src, row in norm.items()])
            + ("\n\nWith two languages, leaving one out trains on the other alone: each cell of the leave-one-out row "
               "repeats the other language's zero-shot cell above (loo_X is mono_Y: the same texts, dev split and "
               "seeds)." if loo and len(langs) == 2 else ""),
            f"![normalized transfer]({figures['transfer_normalized']})",
            "### Transfer summary",
            table(["language", "in-language", "its model elsewhere (raw mean)", "normalized transfer out (mean)",
                   "zero-shot into it (mean)", "normalized transfer into it (mean)", f"{top} on it"],
                  [[lang, f"{s['in_language_macro_f1']:.3f}", f"{s['zero_shot_out_raw_mean_macro_f1']:.3f}",
                    f"{s['normalized_transfer_out_mean']:+.3f}", f"{s['zero_shot_into_mean_macro_f1']:.3f}",
                    f"{s['normalized_transfer_into_mean']:+.3f}", f"{s['joint_macro_f1']:.3f}"] for lang, s in tsum.items()]),
        ]
    parts += _differences(cfg, m["differences"])
    parts += [
        "## Training",
        "Training loss and dev macro-F1 per run against epochs (optimizer step / steps per epoch), so models "
        "of every size share one axis from the first step to the last.",
        f"![training curves]({figures['training_curves']})",
        "### Training budgets",
        table(["model", "training examples", "optimizer steps", "steps per epoch", "kept epoch (per seed)",
               "steps to the kept weights (per seed)"],
              [[model, c["examples"]] + [" / ".join(str(c[f"seed{s}"][k]) for s in t.seeds)
                                         for k in ("optimizer_steps", "steps_per_epoch", "selected_epoch", "selected_step")]
               for model, c in costs.items()]),
        "Global batch = train.batch_size x processes (x gradient accumulation); steps are what the Trainer ran, read "
        "from each run's dvclive summary.",
        f"Confusion matrices of {top} per test language (counts summed over the seeds; colour: share of the gold class):",
        f"![confusion matrices]({figures['confusion_largest_joint']})",
        "## Tokenization (base tokenizer)",
        table(["language", "unit", "tokens per unit (pool)", "unknown rate (pool)", "truncated (test)",
               "mean tokens (test)"],
              [[lang, unit_of(data[lang]["scripts"]["pool"]), tok[lang]["pool_tokens_per_unit"],
                f"{tok[lang]['pool_unk_rate']:.4f}", f"{tok[lang]['test_truncated_share']:.3f}",
                tok[lang]["test_mean_tokens"]] for lang in langs], left=2),
        "Units are whitespace words, or characters (spaces left out) for a language whose pool letters are mostly "
        "in scripts written without spaces between words (Han, Kana, Thai, Lao, Khmer, Myanmar).",
        f"![tokenization]({figures['tokenization']})",
        *_data(cfg, data, domains),
        f"![label distribution]({figures['label_distribution']})",
        *_provenance(m["provenance"]),
    ]
    return "\n\n".join(parts) + "\n"


def _provenance(prov: dict) -> list[str]:
    """What produced the tables: the data's identity, and one row per distinct setup of the training and prediction
    runs (a study that mixes devices, precisions or library versions shows several rows)."""
    data = prov["data"]
    if data.get("source") == "hub" and data.get("commit"):
        where = f"hub `{data['hub_id']}`, revision `{data.get('revision')}`, commit `{data['commit']}`"
    elif data.get("source") == "hub" and data.get("content_md5"):  # data.hub_id is a directory: no revision applied
        where = (f"a local copy of the hub export, `{data['hub_id']}`: {data['files']} files, content md5 "
                 f"`{data['content_md5']}`")
    elif data.get("source") == "hub":  # recorded by an older crossling
        where = f"a local copy of the hub export, `{data.get('hub_id')}` (no commit or content hash recorded)"
    else:
        where = (f"local `{data.get('path', '?')}`: {data.get('files', '?')} files, content md5 "
                 f"`{data.get('content_md5', '?')}`")
    setups: dict[tuple, list[str]] = {}
    for run, record in prov["runs"].items():
        for phase in ("train", "predict"):
            r = record.get(phase) or {}
            versions = r.get("versions") or {}
            checkpoint = (r.get("checkpoint") or "?") + (f" @ {r['checkpoint_commit'][:12]}"
                                                         if r.get("checkpoint_commit") else "")
            key = (phase, f"{r.get('device') or '?'} ({r.get('device_name') or '?'})", r.get("precision") or "?",
                   checkpoint, *(versions.get(name) or "?" for name in ("torch", "transformers", "crossling")))
            setups.setdefault(key, []).append(run)
    rows = [[*key, str(len(runs))] for key, runs in setups.items()]
    recorded = "?" not in where and all("?" not in cell for row in rows for cell in row)
    unknown = "" if recorded else "? = not recorded (by an older crossling). "
    return ["## Provenance", f"Data: {where}.",
            table(["phase", "device", "precision", "checkpoint", "torch", "transformers", "crossling", "runs"], rows),
            f"{unknown}Every run's record, with the versions of the whole pinned stack: `metrics/provenance.json`; "
            "`python -m crossling.compare` sets two experiments' records side by side."]


def _differences(cfg: Config, d: dict) -> list[str]:
    langs, sizes, top = cfg.data.languages, cfg.sample.sizes, joint_name(cfg.sample.largest)
    findings = sum(v["finding"] for v in d.values())
    out = [
        "## Paired differences",
        f"{len(d)} difference{'s' * (len(d) != 1)}, {findings} of them findings after "
        f"{CORRECTIONS[cfg.evaluate.correction]} (bold); ⚠ = involves a degenerate run or collapsed zero-shot predictions, never a finding. All p-values "
        "are in `metrics/differences.json`.",
        "### Learning curve: each size minus the previous one",
        table(["step"] + list(langs),
              [[f"{b} − {a}"] + [diff(d[f"joint_{b}_minus_joint_{a}_on_{lang}"]) for lang in langs]
               for a, b in zip(sizes, sizes[1:])]) if len(sizes) > 1 else "One sample size: no steps.",
    ]
    if len(langs) > 1:
        out += [
            "### Joint minus the monolingual model of the test language",
            table(["test language", f"{top} − monolingual", f"{EQUAL_BUDGET} − monolingual (equal budget)"],
                  [[lang, diff(d[f"{top}_minus_mono_{lang}_on_{lang}"]),
                    diff(d[f"{EQUAL_BUDGET}_minus_mono_{lang}_on_{lang}"])] for lang in langs]),
            "### Zero-shot cell minus chance",
            "Chance: the expected macro-F1 of guessing each label with equal probability (the label prior of the "
            "balanced training samples), on the same resamples.",
            table(["train \\ test"] + list(langs),
                  [[src] + ["—" if src == tgt else diff(d[f"mono_{src}_minus_chance_on_{tgt}"]) for tgt in langs]
                   for src in langs]),
        ]
    return out


def _data(cfg: Config, data: dict, domains: dict[str, str]) -> list[str]:
    langs = cfg.data.languages

    def sources(counts: dict) -> str:
        return ", ".join(f"{src} {n}" for src, n in counts.items()) or "—"

    def scripts(shares: dict) -> str:
        shown = [f"{script} {share:.0%}" for script, share in shares.items() if share >= 0.005]
        return ", ".join(shown) or "no letters"

    return [
        "## Data",
        table(["language", "train", "validation", "test", "empty", "unknown label", "duplicates",
               "conflicting labels", "in its test split", "in another's test split", "in a dev split",
               "dev", "pool kept", "test kept"],
              [[lang, c["raw_train"], c["raw_validation"], c["raw_test"],
                c["pool_empty_text"] + c["test_empty_text"] + c["dev_empty_text"],
                c["pool_unknown_label"] + c["test_unknown_label"] + c["dev_unknown_label"],
                c["pool_duplicate_rows"] + c["dev_duplicate_rows"],
                c["pool_conflicting_label_rows"] + c["dev_conflicting_label_rows"],
                c["pool_test_overlap_rows"] + c["dev_test_overlap_rows"],
                c["pool_other_language_test_overlap_rows"] + c["dev_other_language_test_overlap_rows"],
                c["pool_dev_overlap_rows"] + c["pool_other_language_dev_overlap_rows"], c["dev"], c["pool"], c["test"]]
               for lang, c in data.items()]),
        ("The dev split is the dataset's own validation split (data.dev_split: validation), cleaned like the pool; "
         "the pool is the train split alone. " if cfg.data.dev_split == "validation" else
         "The dev split is carved out of the clean pool (train + validation) before any sample is drawn. ")
        + "Duplicates inside the test split are kept and counted in `metrics/data.json` (`test_duplicate_rows_kept`).",
        "### Where each split comes from",
        table(["language", "domain", "split", "sources (texts)", "script of the letters", "mean length (characters)"],
              [[lang, domains[lang], split, sources(data[lang]["sources"][split]), scripts(data[lang]["scripts"][split]),
                data[lang]["mean_chars"][split]] for lang in langs for split in ("pool", "dev", "test")]),
        "Domains come from `data.source_domains` (params.yaml); scripts from the Unicode names of the letters.",
    ]


def main(args, cfg: Config) -> None:
    log_params("report", data={"languages": cfg.data.languages},
               sample={"sizes": cfg.sample.sizes, "dev_size": cfg.sample.dev_size}, train=asdict(cfg.train))
    metrics = Path(args.metrics)
    m = {name: read_json(metrics / f"{name}.json") for name in METRIC_FILES}
    out = Path(args.out)
    figures = {name: os.path.relpath(Path(args.plots) / f"{name}.png", out.parent)
               for name in ("learning_curve", "transfer_matrix", "transfer_normalized", "tokenization",
                            "label_distribution", "training_curves", "confusion_largest_joint")}
    try:
        text = render(cfg, m, figures)
    except KeyError as missing:  # evaluate wrote them for another params.yaml
        raise DataError(f"{metrics}/*.json lack {missing}, which params.yaml asks for: they are not evaluate's output "
                        "for these params; re-run evaluate (dvc repro)") from None
    _parent(out).write_text(text, encoding="utf-8")
    log.info("wrote %s", out)


def cli(argv: list[str] | None = None) -> None:
    run_stage("report", main, stage_parser(__doc__.splitlines()[0], "metrics", "plots", "out"), argv)


if __name__ == "__main__":
    cli()
