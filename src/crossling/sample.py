"""sample: for every size N in sample.sizes, exactly N examples per language, classes balanced, nested.

Each (language, class) pool is put in one seeded random order (a hash of seed and text); the sample of size N takes the first
ceil((N - c) / k) texts of class c (c = its position in data.labels, k = number of classes). That gives
class counts that differ by at most one, no replacement, and every smaller sample is a subset of
every larger one, so learning curves compare like with like. The pool has no dev texts: `combine` carved
the dev split (`sample.dev_size`) out of it first, so no sample overlaps the dev split or a test split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from crossling.combine import EXAMPLE_SCHEMA, class_quota
from crossling.common import DataError, atomic_dir, log, log_params, read_parquet, run_stage, stage_parser, write_parquet
from crossling.config import Config


def ranked(pool: pd.DataFrame, languages: tuple[str, ...], n_classes: int, seed: int) -> pd.DataFrame:
    """The pool with a `rank` column: a seeded random order within each (language, class).

    The order is that of a hash of (seed, text), so a text's place depends on nothing else: adding or
    removing a pool text (another language, a cleaning rule) moves no other text, and samples change by
    that text only.
    """
    parts = []
    for lang in languages:
        for c in range(n_classes):
            part = pool[(pool["language"] == lang) & (pool["label_id"] == c)]
            keys = part["text"].map(lambda t: hashlib.sha256(f"{seed}\0{t}".encode("utf-8")).hexdigest())
            order = np.lexsort((part["text"].to_numpy(), keys.to_numpy()))  # text breaks (impossible) ties
            rank = np.empty(len(part), dtype=np.int64)
            rank[order] = np.arange(len(part))
            parts.append(part.assign(rank=rank))
    return pd.concat(parts, ignore_index=True)


def check_capacity(ranked_pool: pd.DataFrame, largest: int, languages: tuple[str, ...], labels: tuple[str, ...],
                   dev_size: int) -> None:
    for lang in languages:
        for c, name in enumerate(labels):
            need = class_quota(largest, len(labels), c)
            have = int(((ranked_pool["language"] == lang) & (ranked_pool["label_id"] == c)).sum())
            if have < need:
                raise DataError(f"sample.sizes: {largest} per language needs {need} {name!r} texts in {lang}, but "
                                f"its cleaned pool has {have} after {class_quota(dev_size, len(labels), c)} went to "
                                f"the dev split; lower the largest size or sample.dev_size={dev_size}, or drop {lang}")


def draw(ranked_pool: pd.DataFrame, size: int, languages: tuple[str, ...], n_classes: int) -> pd.DataFrame:
    quota = ranked_pool["label_id"].map(lambda c: class_quota(size, n_classes, int(c)))
    picked = ranked_pool[ranked_pool["rank"] < quota]
    order = picked["language"].map({lang: i for i, lang in enumerate(languages)})
    return picked.assign(_lang=order).sort_values(["_lang", "label_id", "rank"]).reset_index(drop=True)


def sample_path(folder: str | Path, size: int, language: str | None = None) -> Path:
    """`sample_<N>.parquet`, or one language's part of it (what that language's monolingual model reads)."""
    return Path(folder) / (f"sample_{size}.parquet" if language is None else f"sample_{size}_{language}.parquet")


def main(args, cfg: Config) -> None:
    log_params("sample", sample={"sizes": cfg.sample.sizes, "seed": cfg.sample.seed, "dev_size": cfg.sample.dev_size},
               data={"languages": cfg.data.languages, "labels": cfg.data.labels})
    pool = read_parquet(args.pool, "training pool")
    languages, labels = cfg.data.languages, cfg.data.labels
    ranked_pool = ranked(pool, languages, len(labels), cfg.sample.seed)
    check_capacity(ranked_pool, cfg.sample.largest, languages, labels, cfg.sample.dev_size)
    with atomic_dir(args.out) as tmp:
        for size in sorted(cfg.sample.sizes):
            sample = draw(ranked_pool, size, languages, len(labels))
            write_parquet(sample, EXAMPLE_SCHEMA, sample_path(tmp, size))
            per_class = sample.groupby(["language", "label"]).size().unstack().to_dict("index")
            log.info("sample %d: %d rows; per language and class: %s", size, len(sample), per_class)
        largest = draw(ranked_pool, cfg.sample.largest, languages, len(labels))
        for lang in languages:  # one file per language, so adding a language leaves the others' files unchanged
            write_parquet(largest[largest["language"] == lang], EXAMPLE_SCHEMA, sample_path(tmp, cfg.sample.largest, lang))


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--pool", default="data/pool.parquet")
    parser.add_argument("--out", default="data/samples")
    run_stage("sample", main, parser, argv)


if __name__ == "__main__":
    cli()
