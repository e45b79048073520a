"""combine: per language, a clean training pool (train + validation) and the test split kept apart.

Removed from both: empty/whitespace texts and labels outside `data.labels`. Removed from the pool only:
repeated texts (one copy kept when all copies agree; every copy dropped when their labels conflict) and
texts that also occur in a test split (leakage): that language's, or another's (joint models train on
every pool and are tested on every test split). The test split is never deduplicated, only counted.
Every removal is counted per language in metrics/data.json.

Then, per language, a class-balanced dev split of `sample.dev_size` texts is carved from the clean pool
(the texts first in a fixed order given by a hash of the text, so it never depends on `sample.seed`);
data/pool.parquet is what is left, so no sample can ever contain a dev text. Pool texts equal to another
language's dev texts are removed too (joint models train on every pool and are selected on every dev split).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa

from crossling import figures
from crossling.common import (DataError, atomic_dir, log, log_params, read_parquet, run_stage, stage_parser, write_json,
                              write_parquet)
from crossling.config import Config, DataConfig

EXAMPLE_SCHEMA = pa.schema([
    ("language", pa.string()),
    ("text", pa.string()),
    ("label_id", pa.int8()),
    ("label", pa.string()),
    ("source", pa.string()),
])


def _key(texts: pd.Series) -> pd.Series:
    # Texts that differ only in surrounding whitespace count as the same text.
    return texts.str.strip()


def class_quota(size: int, n_classes: int, class_index: int) -> int:
    """How many of `size` examples class `class_index` gets; earlier classes take the remainder."""
    return -(-(size - class_index) // n_classes) if size > class_index else 0


def drop_invalid(df: pd.DataFrame, prefix: str, counts: dict) -> pd.DataFrame:
    empty = _key(df["text"]) == ""
    unknown = df["label_id"].isna() & ~empty
    counts[f"{prefix}_empty_text"] = int(empty.sum())
    counts[f"{prefix}_unknown_label"] = int(unknown.sum())
    if unknown.any():
        log.warning("%s: %d rows with labels outside data.labels dropped: %s",
                    prefix, int(unknown.sum()), df.loc[unknown, "label"].value_counts().to_dict())
    return df[~(empty | unknown)]


def clean_language(rows: pd.DataFrame, labels: tuple[str, ...],
                   other_test_texts: frozenset[str] = frozenset()) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Pool and test for one language, plus counts of everything that was removed or found."""
    counts: dict[str, int] = {f"raw_{s}": int((rows["split"] == s).sum()) for s in ("train", "validation", "test")}
    pool = drop_invalid(rows[rows["split"] != "test"], "pool", counts)
    test = drop_invalid(rows[rows["split"] == "test"], "test", counts)

    key = _key(pool["text"])
    labels_per_text = pool.groupby(key)["label_id"].nunique()
    conflicting = key.map(labels_per_text) > 1
    repeated = key.duplicated(keep="first") & ~conflicting
    counts["pool_conflicting_label_rows"] = int(conflicting.sum())
    counts["pool_duplicate_rows"] = int(repeated.sum())
    pool = pool[~(conflicting | repeated)]

    leaked = _key(pool["text"]).isin(set(_key(test["text"])))
    counts["pool_test_overlap_rows"] = int(leaked.sum())
    pool = pool[~leaked]
    leaked_elsewhere = _key(pool["text"]).isin(other_test_texts)
    counts["pool_other_language_test_overlap_rows"] = int(leaked_elsewhere.sum())
    pool = pool[~leaked_elsewhere]

    counts["test_duplicate_rows_kept"] = int(_key(test["text"]).duplicated().sum())
    return pool, test, counts


def count_split(counts: dict, split: str, df: pd.DataFrame, labels: tuple[str, ...]) -> None:
    counts[split] = len(df)
    per_label = df["label_id"].value_counts()
    for i, name in enumerate(labels):
        counts[f"{split}_{name}"] = int(per_label.get(i, 0))


def carve_dev(pool: pd.DataFrame, language: str, dev_size: int, labels: tuple[str, ...]) -> pd.DataFrame:
    """dev_size texts of one language's clean pool, classes balanced, in a fixed hash order."""
    # The order depends on the text alone: not on row order nor on sample.seed, so the dev split is fixed.
    order = _key(pool["text"]).map(lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    parts = []
    for c, name in enumerate(labels):
        need = class_quota(dev_size, len(labels), c)
        part = pool.assign(_order=order)[pool["label_id"] == c].sort_values("_order", kind="stable")
        if len(part) < need:
            raise DataError(f"sample.dev_size: {dev_size} per language needs {need} {name!r} texts in {language} "
                            f"for the dev split, but its cleaned pool has {len(part)}; lower sample.dev_size "
                            f"or drop {language}")
        parts.append(part.head(need))
    return pd.concat(parts).drop(columns="_order")


def combine(raw: pd.DataFrame, data: DataConfig,
            dev_size: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Clean pool (dev texts removed), dev split and test split of every language, and the counts."""
    pools, devs, tests, report = {}, {}, [], {}
    test_rows = raw[raw["split"] == "test"]
    test_texts = {lang: frozenset(_key(test_rows.loc[test_rows["language"] == lang, "text"])) - {""}
                  for lang in data.languages}
    for lang in data.languages:
        others = frozenset().union(*(texts for other, texts in test_texts.items() if other != lang))
        pools[lang], test, report[lang] = clean_language(raw[raw["language"] == lang], data.labels, others)
        devs[lang] = carve_dev(pools[lang], lang, dev_size, data.labels)
        tests.append(test)
        count_split(report[lang], "test", test, data.labels)
    dev_texts = {lang: frozenset(_key(dev["text"])) for lang, dev in devs.items()}
    for lang in data.languages:
        pool = pools[lang].drop(index=devs[lang].index)
        others = frozenset().union(*(texts for other, texts in dev_texts.items() if other != lang))
        in_other_dev = _key(pool["text"]).isin(others)
        report[lang]["pool_other_language_dev_overlap_rows"] = int(in_other_dev.sum())
        pools[lang] = pool[~in_other_dev]
        count_split(report[lang], "pool", pools[lang], data.labels)
        count_split(report[lang], "dev", devs[lang], data.labels)
    return (pd.concat(pools.values(), ignore_index=True), pd.concat(devs.values(), ignore_index=True),
            pd.concat(tests, ignore_index=True), report)


def label_distribution(report: dict, labels: tuple[str, ...]) -> list[dict]:
    """Rows for the label-distribution plot: language x split x label -> count and share."""
    rows = []
    for lang, counts in report.items():
        for split in ("pool", "test"):
            for name in labels:
                n = counts[f"{split}_{name}"]
                rows.append({"language": lang, "split": split, "label": name, "count": n,
                             "share": round(n / counts[split], 6) if counts[split] else 0.0})
    return rows


def main(args, cfg: Config) -> None:
    log_params("combine", data=asdict(cfg.data), sample={"dev_size": cfg.sample.dev_size})
    raw = read_parquet(args.raw, "raw dataset")
    unexpected = sorted(set(raw["language"]) - set(cfg.data.languages))
    if unexpected:
        log.info("ignoring languages not in data.languages: %s", unexpected)
    pool, dev, test, report = combine(raw, cfg.data, cfg.sample.dev_size)
    write_parquet(pool, EXAMPLE_SCHEMA, args.pool)
    with atomic_dir(args.dev) as tmp:  # a file per language: a model depends only on its languages' dev texts
        for lang in cfg.data.languages:
            write_parquet(dev[dev["language"] == lang], EXAMPLE_SCHEMA, Path(tmp) / f"{lang}.parquet")
    write_parquet(test, EXAMPLE_SCHEMA, args.test)
    write_json(report, args.metrics)
    dist = label_distribution(report, cfg.data.labels)
    write_json(dist, args.plot_json)
    figures.label_distribution(pd.DataFrame(dist), args.plot_png)
    for lang, counts in report.items():
        log.info("%s: pool %d, dev %d, test %d, removed from pool: %d empty, %d unknown label, %d duplicate, "
                 "%d conflicting label, %d in its test split, %d in another language's, %d in another's dev split",
                 lang, counts["pool"], counts["dev"], counts["test"], counts["pool_empty_text"],
                 counts["pool_unknown_label"], counts["pool_duplicate_rows"], counts["pool_conflicting_label_rows"],
                 counts["pool_test_overlap_rows"], counts["pool_other_language_test_overlap_rows"],
                 counts["pool_other_language_dev_overlap_rows"])


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--raw", default="data/raw/dataset.parquet")
    parser.add_argument("--pool", default="data/pool.parquet")
    parser.add_argument("--dev", default="data/dev", help="directory of <language>.parquet dev splits")
    parser.add_argument("--test", default="data/test.parquet")
    parser.add_argument("--metrics", default="metrics/data.json")
    parser.add_argument("--plot-json", default="plots/label_distribution.json")
    parser.add_argument("--plot-png", default="plots/label_distribution.png")
    run_stage("combine", main, parser, argv)


if __name__ == "__main__":
    cli()
