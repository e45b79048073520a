"""sample: for every size N in sample.sizes, exactly N examples per language, classes balanced, nested.

Each (language, class) pool is put in one seeded random order (a hash of seed and text); the sample of size N takes the first
ceil((N - c) / k) texts of class c (c = its position in data.labels, k = number of classes). That gives
class counts that differ by at most one, no replacement, and every smaller sample is a subset of
every larger one, so learning curves compare like with like. The pool has no dev texts: `combine` removed
them first, so no sample overlaps the dev split or a test split.

Also drawn: each language's part of the largest sample (the monolingual models' data), and the
equal-budget sample: as many examples in total as a monolingual model gets (the largest size), spread
evenly over the languages, nested in the largest sample, for a joint model compared at an equal budget.
The files of training seed S are in `seed<S>/`: the same draw for every seed (`sample.seed`), or, with
`sample.redraw_per_seed`, a draw of its own, so that the spread between seeds covers which texts were drawn.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from crossling.combine import EXAMPLE_SCHEMA, NO_CLASS_FIX, class_quota
from crossling.common import DataError, log, log_params, read_parquet, run_stage, stage_parser, write_parquet
from crossling.config import Config


def ranked(pool: pd.DataFrame, languages: tuple[str, ...], n_classes: int, seed: int | str) -> pd.DataFrame:
    """The pool with a `rank` column: a seeded random order within each (language, class).

    The order is that of a hash of (seed, text), so a text's place depends on nothing else: adding or
    removing a pool text (another language, a cleaning rule) moves no other text, and samples change by
    that text only.
    """
    asked = pool[pool["language"].isin(languages) & pool["label_id"].isin(range(n_classes))]
    keys = asked["text"].map(lambda t: hashlib.sha256(f"{seed}\0{t}".encode("utf-8")).hexdigest())
    # text breaks (impossible) ties; rank: each row's place in its (language, class) in that order
    ordered = asked.assign(_key=keys).sort_values(["language", "label_id", "_key", "text"], ignore_index=True)
    return ordered.assign(rank=ordered.groupby(["language", "label_id"]).cumcount()).drop(columns="_key")


def check_capacity(ranked_pool: pd.DataFrame, largest: int, languages: tuple[str, ...], labels: tuple[str, ...],
                   dev_size: int | None) -> None:
    """Refuse a largest size that some language's pool cannot fill; dev_size None: the dev split is the
    dataset's validation split (data.dev_split: validation), so nothing was carved from the pool."""
    for lang in languages:
        for c, name in enumerate(labels):
            need = class_quota(largest, len(labels), c)
            have = int(((ranked_pool["language"] == lang) & (ranked_pool["label_id"] == c)).sum())
            if have == 0 < need and dev_size is not None:  # combine refuses a class the pool lacks before carving
                raise DataError(f"sample.dev_size: the dev split ({dev_size} per language) took every {name!r} text "
                                f"of {lang}'s cleaned pool ({class_quota(dev_size, len(labels), c)}), and "
                                f"sample.sizes: {largest} per language needs {need}; lower sample.dev_size (the "
                                f"pool must hold dev_size + the largest size per language) or drop {lang}")
            if have == 0 < need:  # no size could help
                raise DataError(f"the cleaned pool of {lang} has no {name!r} texts; {NO_CLASS_FIX.format(lang)}")
            if have < need and dev_size is None:
                raise DataError(f"sample.sizes: {largest} per language needs {need} {name!r} texts in {lang}, but "
                                f"its cleaned train split has {have} (data.dev_split: validation); lower the largest "
                                f"size or drop {lang}")
            if have < need:
                raise DataError(f"sample.sizes: {largest} per language needs {need} {name!r} texts in {lang}, but "
                                f"its cleaned pool has {have} after {class_quota(dev_size, len(labels), c)} went to "
                                f"the dev split; lower the largest size or sample.dev_size={dev_size}, or drop {lang}")


def draw(ranked_pool: pd.DataFrame, size: int | dict[str, int], languages: tuple[str, ...],
         n_classes: int) -> pd.DataFrame:
    """`size` examples of every language (or size[language] of each), classes balanced, first in rank order."""
    sizes = size if isinstance(size, dict) else dict.fromkeys(languages, size)
    quota = [class_quota(sizes[lang], n_classes, int(c)) for lang, c in zip(ranked_pool["language"], ranked_pool["label_id"])]
    picked = ranked_pool[ranked_pool["rank"] < quota]
    order = picked["language"].map({lang: i for i, lang in enumerate(languages)})
    return picked.assign(_lang=order).sort_values(["_lang", "label_id", "rank"], ignore_index=True)


def equal_budget_sizes(total: int, languages: tuple[str, ...]) -> dict[str, int]:
    """`total` examples spread over the languages as evenly as possible (earlier languages take the remainder)."""
    return {lang: class_quota(total, len(languages), i) for i, lang in enumerate(languages)}


def sample_path(folder: str | Path, seed: int, size: int | str, language: str | None = None) -> Path:
    """`seed<S>/sample_<N>.parquet`, or one language's part of it (what that language's monolingual model reads);
    size "equal" is the equal-budget sample."""
    name = f"sample_{size}.parquet" if language is None else f"sample_{size}_{language}.parquet"
    return Path(folder) / f"seed{seed}" / name


def write_samples(folder: Path, ranked_pool: pd.DataFrame, cfg: Config, seed: int) -> None:
    """Every sample one training seed reads, in folder/seed<seed>/."""
    languages, n_classes, largest = cfg.data.languages, len(cfg.data.labels), cfg.sample.largest
    for size in cfg.sample.sizes:  # in increasing order: config.py refuses any other
        sample = draw(ranked_pool, size, languages, n_classes)
        write_parquet(sample, EXAMPLE_SCHEMA, sample_path(folder, seed, size))
        per_class = sample.groupby(["language", "label"]).size().unstack().to_dict("index")
        log.info("seed %d, sample %d: %d rows; per language and class: %s", seed, size, len(sample), per_class)
    full = draw(ranked_pool, largest, languages, n_classes)
    for lang in languages:  # one file per language, so adding a language leaves the others' files unchanged
        write_parquet(full[full["language"] == lang], EXAMPLE_SCHEMA, sample_path(folder, seed, largest, lang))
    equal = draw(ranked_pool, equal_budget_sizes(largest, languages), languages, n_classes)
    write_parquet(equal, EXAMPLE_SCHEMA, sample_path(folder, seed, "equal"))
    log.info("seed %d, equal-budget sample: %d rows (%s)", seed, len(equal), equal.groupby("language").size().to_dict())


def main(args, cfg: Config) -> None:
    log_params("sample", sample={k: getattr(cfg.sample, k) for k in ("sizes", "seed", "dev_size", "redraw_per_seed")},
               data={"languages": cfg.data.languages, "labels": cfg.data.labels}, train={"seeds": cfg.train.seeds})
    pool = read_parquet(args.pool, "training pool")
    languages, labels = cfg.data.languages, cfg.data.labels
    for seed in cfg.train.seeds:
        # What orders the pool for a training seed's samples: sample.seed alone, or with the training seed.
        draw_seed = f"{cfg.sample.seed}/{seed}" if cfg.sample.redraw_per_seed else str(cfg.sample.seed)
        ranked_pool = ranked(pool, languages, len(labels), draw_seed)
        check_capacity(ranked_pool, cfg.sample.largest, languages, labels,
                       cfg.sample.dev_size if cfg.data.dev_split == "carve" else None)
        write_samples(Path(args.out), ranked_pool, cfg, seed)


def cli(argv: list[str] | None = None) -> None:
    run_stage("sample", main, stage_parser(__doc__.splitlines()[0], "pool", "out"), argv)


if __name__ == "__main__":
    cli()
