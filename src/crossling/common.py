"""What the stages share: errors, logging, argument parsing, writing, run names, each language's domain, the
scripts of its texts and the unit its tokens are counted per."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crossling.config import Config, ConfigError, load_config

log = logging.getLogger("crossling")


class DataError(ValueError):
    """Input data that cannot be used as it is; the message says which file/language and what to do."""


PROVENANCE_KEY = b"crossling.provenance"  # schema metadata of the predictions (predict writes, evaluate reads)


# The names of models and runs (dvc.yaml spells the same: joint_${item.size}_seed${item.seed}).
EQUAL_BUDGET = "joint_equal"  # the joint model with as many training examples as a monolingual one


def joint_name(size: int | str) -> str:
    return f"joint_{size}"


def mono_name(language: str) -> str:
    return f"mono_{language}"


def loo_name(language: str) -> str:
    """The model trained on every language but `language` (leave one out)."""
    return f"loo_{language}"


def run_name(model: str, seed: int | str) -> str:
    """One training run of a model: its model directory, predictions and log share this name."""
    return f"{model}_seed{seed}"


def domains_of(data_counts: dict, cfg: Config) -> dict[str, str]:
    """Each language's domain: its test sources' domains (data.source_domains), or the source names."""
    return {lang: " + ".join(dict.fromkeys(cfg.data.source_domains.get(src, src)
                                           for src in data_counts[lang]["sources"]["test"]))
            for lang in cfg.data.languages}


# Unicode character-name prefixes that are not the script's own name
SCRIPT_ALIASES = {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana", "HALFWIDTH": None, "FULLWIDTH": None,
                  "MODIFIER": "Other", "MATHEMATICAL": "Other", "MASCULINE": "Latin", "FEMININE": "Latin",
                  "KATAKANA-HIRAGANA": "Kana", "IDEOGRAPHIC": "Han"}


@cache
def script_of(char: str) -> str | None:
    """The script of a letter (Latin, Arabic, Devanagari, Han, Kana, Hangul, ...); None for anything else.

    Read off the character's Unicode name (Python has no script property): its first word is the script
    for letters, except for the names SCRIPT_ALIASES lists.
    """
    if not unicodedata.category(char).startswith("L"):
        return None
    words = unicodedata.name(char, "OTHER").split()
    first = words[0]
    if first in SCRIPT_ALIASES and SCRIPT_ALIASES[first] is None and len(words) > 1:  # FULLWIDTH LATIN ...
        first = words[1]
    return SCRIPT_ALIASES.get(first) or first.capitalize()


def script_shares(texts) -> dict[str, float]:
    """The share of the texts' letters in each script, most common first (no letters: empty)."""
    letters = Counter(filter(None, map(script_of, chain.from_iterable(texts))))  # no copy of all the text
    total = letters.total()
    return {script: round(n / total, 4) for script, n in letters.most_common()}


# Scripts (script_of's names) written without spaces between words: a language whose letters are mostly in
# them has its tokens counted per (non-space) character, whatever data.languages calls it (japanese, ja, zh, th).
NO_SPACE_SCRIPTS = frozenset({"Han", "Kana", "Thai", "Lao", "Khmer", "Myanmar"})


def unit_of(scripts: dict[str, float]) -> str:
    """The unit the tokenization stage counts tokens per: "character" when at least half of a language's letters
    are in NO_SPACE_SCRIPTS, else "word". `scripts`: the share of its training pool's letters per script, as
    combine writes them (metrics/data.json: `scripts`, `pool`), so the report names the unit the stage used."""
    return "character" if sum(v for script, v in scripts.items() if script in NO_SPACE_SCRIPTS) >= 0.5 else "word"


class StageParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as every other error of a stage
        self.exit(2, f"{self.prog}: error: {message} (the stage's cmd in dvc.yaml passes every path; see --help)\n")


def stage_parser(description: str, *paths: str) -> argparse.ArgumentParser:
    """--params, and a required option per path the stage reads or writes (`name` or `name: help`): the stage's
    cmd in dvc.yaml is the one place paths are spelled."""
    parser = StageParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    for path in paths:
        name, _, text = path.partition(": ")
        parser.add_argument(f"--{name}", required=True, help=text or None)
    return parser


def run_stage(name: str, main: Callable[[argparse.Namespace, Config], None], parser: argparse.ArgumentParser,
              argv: list[str] | None = None) -> None:
    """Parse args, load the config, run `main`; known failures become one line on stderr and exit code 2."""
    setup_logging(name)
    parser.prog = f"crossling.{name}"
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # lets a stage relaunch itself (torchrun)
    try:
        cfg = load_config(args.params)
        main(args, cfg)
    except (ConfigError, DataError) as exc:
        print(f"crossling.{name}: error: {in_params(exc, args.params) if isinstance(exc, ConfigError) else exc}",
              file=sys.stderr)
        sys.exit(2)


def in_params(exc: ConfigError, params: str | Path) -> str:
    """A bad parameter, named with its file (once: a missing or unreadable file is the field itself)."""
    return str(exc) if Path(exc.field) == Path(params) else f"{params}: {exc}"


def setup_logging(stage: str) -> None:
    """INFO lines of our own logger on stderr, tagged with the stage name."""
    log.setLevel(logging.INFO)
    for handler in [h for h in log.handlers if getattr(h, "crossling", False)]:
        log.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.crossling = True
    handler.setFormatter(logging.Formatter(f"%(asctime)s {stage} %(levelname)s %(message)s"))
    log.addHandler(handler)


def log_params(stage: str, **sections: Any) -> None:
    """Print the parameters a stage uses, so every log says what produced its outputs."""
    log.info("%s params: %s", stage, json.dumps(sections, sort_keys=True, default=str))


def _parent(path: str | Path) -> Path:
    """`path`, its folder created. No temporary files: DVC removes a stage's outputs before it runs and never records
    a failed stage, so a half-written output is never taken for a result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_parquet(df: pd.DataFrame, schema: pa.Schema, path: str | Path, metadata: dict | None = None) -> None:
    """Write with an explicit schema (no pandas index/metadata; only `metadata`) so equal frames give equal bytes."""
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    table = table.replace_schema_metadata(metadata)
    pq.write_table(table, _parent(path), compression="zstd")


def read_parquet(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found at {path}; run the stage that writes it (dvc repro)")
    return pq.read_table(path).to_pandas()


def write_json(data: Any, path: str | Path) -> None:
    _parent(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def content_hash(files: list[Path], root: Path | None = None) -> str:
    """The sha256 of files' names (relative to `root`, else the bare name) and contents, read in chunks: a local
    checkpoint's identity, and what a training run's checkpoints were made from."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root) if root else path.name).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()
