"""combine: per language, a clean training pool, a dev split and the test split, and what each holds.

Removed from every split: empty/whitespace texts and labels outside `data.labels`. Removed from the pool only:
repeated texts (one copy kept when all copies agree; every copy dropped when their labels conflict) and
texts that also occur in a test split (leakage): that language's, or another's (joint models train on
every pool and are tested on every test split). The test split is never deduplicated, only counted.

The dev split (`data.dev_split`): `carve` (the reference) pools train and validation and carves a
class-balanced dev split of `sample.dev_size` texts per language from the clean pool (the texts first in a
fixed order given by a hash of the text, so it never depends on `sample.seed`); `validation` keeps the
dataset's own validation split as the dev split (cleaned like the pool; texts also in a test split removed)
and the pool is the train split alone, as in the published UMSAB protocol. Either way, pool texts equal to any
language's dev texts are removed, so no sample can contain a dev text. Every removal is counted per language
in metrics/data.json, with each split's sources (the `source` column), script mix and mean length.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa

from crossling import figures
from crossling.common import (DataError, log, log_params, read_parquet, run_stage, script_shares, stage_parser,
                              write_json, write_parquet)
from crossling.config import Config, DataConfig

EXAMPLE_SCHEMA = pa.schema([("language", pa.string()), ("text", pa.string()), ("label_id", pa.int8()),
                            ("label", pa.string()), ("source", pa.string())])


def _key(texts: pd.Series) -> pd.Series:
    # Texts that differ only in surrounding whitespace count as the same text.
    return texts.str.strip()


def class_quota(size: int, n_classes: int, class_index: int) -> int:
    """How many of `size` examples class `class_index` gets; earlier classes take the remainder."""
    return -(-(size - class_index) // n_classes) if size > class_index else 0


def drop_invalid(df: pd.DataFrame, prefix: str, counts: dict, language: str,
                 labels: tuple[str, ...]) -> pd.DataFrame:
    """Rows with an empty text or a label outside data.labels removed (and counted); the warning names the
    language, and a map for a label that differs from one of `labels` only in case."""
    empty = _key(df["text"]) == ""
    unknown = df["label_id"].isna() & ~empty
    counts[f"{prefix}_empty_text"] = int(empty.sum())
    counts[f"{prefix}_unknown_label"] = int(unknown.sum())
    if unknown.any():
        found = df.loc[unknown, "label"].value_counts().to_dict()
        folded = {name.casefold(): name for name in labels}
        near = {label: folded[label.casefold()] for label in found if label.casefold() in folded}
        hint = ("; if they are the same classes, map them: data.label_map "
                + "{" + ", ".join(f"{k}: {v}" for k, v in near.items()) + "}") if near else ""
        log.warning("%s %s: %d rows with labels outside data.labels dropped: %s%s", language, prefix,
                    int(unknown.sum()), found, hint)
    return df[~(empty | unknown)]


def deduplicate(df: pd.DataFrame, prefix: str, counts: dict) -> pd.DataFrame:
    """One copy of each repeated text whose copies agree; none of a text whose copies' labels conflict."""
    key = _key(df["text"])
    conflicting = df.groupby(key)["label_id"].transform("nunique") > 1
    repeated = key.duplicated(keep="first") & ~conflicting
    counts[f"{prefix}_conflicting_label_rows"] = int(conflicting.sum())
    counts[f"{prefix}_duplicate_rows"] = int(repeated.sum())
    return df[~(conflicting | repeated)]


def clean_language(rows: pd.DataFrame, lang: str, other_test_texts: frozenset[str], pool_splits: tuple[str, ...],
                   labels: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Pool (from `pool_splits`) and test for one language, plus counts of everything removed or found."""
    counts: dict[str, int] = {f"raw_{s}": int((rows["split"] == s).sum()) for s in ("train", "validation", "test")}
    pool_rows, test_rows = rows[rows["split"].isin(pool_splits)], rows[rows["split"] == "test"]
    if pool_rows.empty:  # download refuses a language without train and validation: only dev_split validation gets here
        raise DataError(f"{lang} has no train split in the source, and data.dev_split: validation takes the pool "
                        f"from train only; use data.dev_split: carve or drop {lang}")
    pool = deduplicate(drop_invalid(pool_rows, "pool", counts, lang, labels), "pool", counts)
    test = drop_invalid(test_rows, "test", counts, lang, labels)

    leaked = _key(pool["text"]).isin(set(_key(test["text"])))
    counts["pool_test_overlap_rows"] = int(leaked.sum())
    pool = pool[~leaked]
    leaked_elsewhere = _key(pool["text"]).isin(other_test_texts)
    counts["pool_other_language_test_overlap_rows"] = int(leaked_elsewhere.sum())
    pool = pool[~leaked_elsewhere]

    counts["test_duplicate_rows_kept"] = int(_key(test["text"]).duplicated().sum())
    for part, kept, read in (("pool", pool, pool_rows), ("test", test, test_rows)):
        if kept.empty:  # refused here, not left for the dev split or evaluate to trip on
            unknown = read.loc[read["label_id"].isna(), "label"].value_counts().index[:5].tolist()
            raise DataError(f"the {part} of {lang} is empty once cleaned ({len(read)} rows: "
                            f"{counts[f'{part}_unknown_label']} with labels outside data.labels {unknown}, "
                            f"{counts[f'{part}_empty_text']} with empty text, the rest repeats or test texts); "
                            f"name the labels in data.label_map, or drop {lang} from data.languages")
    return pool, test, counts


def validation_dev(rows: pd.DataFrame, language: str, test_texts: frozenset[str], other_test_texts: frozenset[str],
                   counts: dict, labels: tuple[str, ...]) -> pd.DataFrame:
    """The dataset's own validation split of one language as its dev split, cleaned like the pool; texts of its own
    or another language's test split removed (selecting on them would favour the models tested there)."""
    validation = rows[rows["split"] == "validation"]
    if validation.empty:
        raise DataError(f"data.dev_split: validation needs a validation split, but {language} has none in the "
                        f"source; use data.dev_split: carve or drop {language}")
    dev = deduplicate(drop_invalid(validation, "dev", counts, language, labels), "dev", counts)
    in_test = _key(dev["text"]).isin(test_texts)
    in_other_test = _key(dev["text"]).isin(other_test_texts) & ~in_test
    counts["dev_test_overlap_rows"] = int(in_test.sum())
    counts["dev_other_language_test_overlap_rows"] = int(in_other_test.sum())
    dev = dev[~(in_test | in_other_test)]
    if dev.empty:
        raise DataError(f"data.dev_split: the validation split of {language} is empty once cleaned "
                        f"({counts['raw_validation']} rows, all removed: see metrics/data.json); "
                        f"use data.dev_split: carve or drop {language}")
    return dev


def describe(df: pd.DataFrame) -> dict:
    """Where a split's texts come from and what they look like: sources with counts, script shares, mean length."""
    return {"sources": {src or "unknown": int(n) for src, n in df["source"].value_counts(sort=False).sort_index().items()},
            "scripts": script_shares(df["text"]),
            "mean_chars": round(float(df["text"].str.len().mean()), 1) if len(df) else 0.0}


def count_split(counts: dict, split: str, df: pd.DataFrame, labels: tuple[str, ...]) -> None:
    counts[split] = len(df)
    per_label = df["label_id"].value_counts()
    counts |= {f"{split}_{name}": int(per_label.get(i, 0)) for i, name in enumerate(labels)}


NO_CLASS_FIX = "map a source label to it in data.label_map, remove it from data.labels, or drop {} from data.languages"


def require_every_label(df: pd.DataFrame, language: str, labels: tuple[str, ...]) -> None:
    """Macro-F1 averages over data.labels: a class a test split lacks would score 0 for any model, so a perfect
    one would top out at (k-1)/k."""
    present = set(df["label_id"])
    absent = [name for i, name in enumerate(labels) if i not in present]
    if absent:
        raise DataError(f"the test split of {language} has no {absent[0]!r} texts once cleaned; "
                        f"{NO_CLASS_FIX.format(language)}")


def carve_dev(pool: pd.DataFrame, language: str, dev_size: int, labels: tuple[str, ...]) -> pd.DataFrame:
    """dev_size texts of one language's clean pool, classes balanced, in a fixed hash order."""
    # The order depends on the text alone: not on row order nor on sample.seed, so the dev split is fixed.
    order = _key(pool["text"]).map(lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    parts = []
    for c, name in enumerate(labels):
        need = class_quota(dev_size, len(labels), c)
        part = pool.assign(_order=order)[pool["label_id"] == c].sort_values("_order", kind="stable")
        if part.empty and need:  # no dev_size could help
            raise DataError(f"the cleaned pool of {language} has no {name!r} texts; {NO_CLASS_FIX.format(language)}")
        if len(part) < need:
            raise DataError(f"sample.dev_size: {dev_size} per language needs {need} {name!r} texts in {language} "
                            f"for the dev split, but its cleaned pool has {len(part)}; lower sample.dev_size "
                            f"or drop {language}")
        parts.append(part.head(need))
    return pd.concat(parts).drop(columns="_order")


def combine(raw: pd.DataFrame, data: DataConfig,
            dev_size: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Clean pool (dev texts removed), dev split and test split of every language, and the counts."""
    pools, devs, tests, report = {}, {}, {}, {}
    test_rows = raw[raw["split"] == "test"]
    test_texts = {lang: frozenset(_key(test_rows.loc[test_rows["language"] == lang, "text"])) - {""}
                  for lang in data.languages}
    carve = data.dev_split == "carve"
    for lang in data.languages:
        rows = raw[raw["language"] == lang]
        others = frozenset().union(*(texts for other, texts in test_texts.items() if other != lang))
        pools[lang], tests[lang], report[lang] = clean_language(
            rows, lang, others, ("train", "validation") if carve else ("train",), data.labels)
        require_every_label(tests[lang], lang, data.labels)
        if carve:
            devs[lang] = carve_dev(pools[lang], lang, dev_size, data.labels)
            pools[lang] = pools[lang].drop(index=devs[lang].index)
        else:
            devs[lang] = validation_dev(rows, lang, test_texts[lang], others, report[lang], data.labels)
        count_split(report[lang], "test", tests[lang], data.labels)
    dev_texts = {lang: frozenset(_key(dev["text"])) for lang, dev in devs.items()}
    all_dev_texts = frozenset().union(*dev_texts.values())
    for lang in data.languages:
        pool, counts = pools[lang], report[lang]
        in_own_dev = _key(pool["text"]).isin(dev_texts[lang])  # none when carved: the pool has no repeats
        in_any_dev = _key(pool["text"]).isin(all_dev_texts)
        counts["pool_dev_overlap_rows"] = int(in_own_dev.sum())
        counts["pool_other_language_dev_overlap_rows"] = int((in_any_dev & ~in_own_dev).sum())
        pools[lang] = pool[~in_any_dev]
        count_split(counts, "pool", pools[lang], data.labels)
        count_split(counts, "dev", devs[lang], data.labels)
        for key in ("dev_empty_text", "dev_unknown_label", "dev_duplicate_rows", "dev_conflicting_label_rows",
                    "dev_test_overlap_rows", "dev_other_language_test_overlap_rows"):
            counts.setdefault(key, 0)  # the same names in both modes: nothing is removed from a carved dev split
        described = {"pool": describe(pools[lang]), "dev": describe(devs[lang]), "test": describe(tests[lang])}
        for part in ("sources", "scripts", "mean_chars"):
            counts[part] = {split: d[part] for split, d in described.items()}
    return (pd.concat(pools.values(), ignore_index=True), pd.concat(devs.values(), ignore_index=True),
            pd.concat(tests.values(), ignore_index=True), report)


def label_distribution(report: dict, labels: tuple[str, ...]) -> list[dict]:
    """Rows for the label-distribution plot: language x split x label -> count and share."""
    return [{"language": lang, "split": split, "label": name, "count": counts[f"{split}_{name}"],
             "share": round(counts[f"{split}_{name}"] / counts[split], 6) if counts[split] else 0.0}
            for lang, counts in report.items() for split in ("pool", "test") for name in labels]


def main(args, cfg: Config) -> None:
    log_params("combine", data=asdict(cfg.data), sample={"dev_size": cfg.sample.dev_size})
    if cfg.data.dev_split == "validation":
        log.info("data.dev_split: validation: the dataset's validation split is the dev split "
                 "(sample.dev_size is not used), samples come from train only")
    raw = read_parquet(args.raw, "raw dataset")
    unexpected = sorted(set(raw["language"]) - set(cfg.data.languages))
    if unexpected:
        log.info("ignoring languages not in data.languages: %s", unexpected)
    pool, dev, test, report = combine(raw, cfg.data, cfg.sample.dev_size)
    write_parquet(pool, EXAMPLE_SCHEMA, args.pool)
    for lang in cfg.data.languages:  # a file per language: a model depends only on its languages' dev texts
        write_parquet(dev[dev["language"] == lang], EXAMPLE_SCHEMA, Path(args.dev) / f"{lang}.parquet")
    write_parquet(test, EXAMPLE_SCHEMA, args.test)
    write_json(report, args.metrics)
    dist = label_distribution(report, cfg.data.labels)
    write_json(dist, args.plot_json)
    figures.label_distribution(pd.DataFrame(dist), args.plot_png)
    for lang, counts in report.items():
        log.info("%s: pool %d, dev %d, test %d, removed from pool: %d empty, %d unknown label, %d duplicate, "
                 "%d conflicting label, %d in its test split, %d in another language's, %d in its dev split, "
                 "%d in another's dev split; sources (test) %s, scripts (test) %s",
                 lang, counts["pool"], counts["dev"], counts["test"], counts["pool_empty_text"],
                 counts["pool_unknown_label"], counts["pool_duplicate_rows"], counts["pool_conflicting_label_rows"],
                 counts["pool_test_overlap_rows"], counts["pool_other_language_test_overlap_rows"],
                 counts["pool_dev_overlap_rows"], counts["pool_other_language_dev_overlap_rows"],
                 counts["sources"]["test"], counts["scripts"]["test"])


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "raw", "pool", "dev: directory of <language>.parquet dev splits",
                          "test", "metrics", "plot-json", "plot-png")
    run_stage("combine", main, parser, argv)


if __name__ == "__main__":
    cli()
