"""Small data that the tests write themselves, in the upstream CSV layout and the hub Parquet layout."""

from __future__ import annotations

import csv
import random
import shlex
from pathlib import Path

import pytest
import yaml

from crossling.config import Config, config_from_dict

ROOT = Path(__file__).resolve().parents[1]

# pytest-xdist (--dist loadfile) hands whole files to its workers in collection order: the longest first (minutes
# of one worker in CI), so the two end-to-end chains run side by side and the short files fill in after them.
LONGEST_FIRST = ("test_pipeline.py", "test_pipeline_growth.py", "test_docs.py", "test_slurm.py", "test_benchmarks.py",
                 "test_train.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    renamed = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).exists()]
    if renamed:
        raise pytest.UsageError(f"tests/conftest.py LONGEST_FIRST names missing files {renamed}; rename them there")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


LABELS = ("positive", "neutral", "negative")
WORDS = {
    "positive": ["great", "love", "wonderful", "happy", "excellent"],
    "neutral": ["today", "maybe", "report", "table", "window"],
    "negative": ["awful", "hate", "terrible", "sad", "broken"],
}
FILLER = ["the", "a", "this", "that", "really", "quite", "day", "film", "food", "phone", "book", "song"]


def synthetic_rows(language: str, split: str, per_class: int, seed: int = 0) -> list[dict]:
    """Texts whose label is learnable from a sentiment word; unique per (language, split)."""
    rng = random.Random(f"{language}-{split}-{seed}")
    rows = []
    for label in LABELS:
        for i in range(per_class):
            words = rng.sample(FILLER, 3) + [rng.choice(WORDS[label])]
            rng.shuffle(words)
            rows.append({"text": f"{language[:2]} {' '.join(words)} {split}{i}", "label": label,
                         "source": f"synthetic_{language}"})
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[dict], fieldnames=("text", "label", "source")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_csv_source(root: Path, languages=("english", "french"), pool_per_class=30, test_per_class=10,
                    valid_only=()) -> Path:
    """A local source in the upstream layout: <language>/{train,valid,test}.csv."""
    for lang in languages:
        if lang not in valid_only:
            write_csv(root / lang / "train.csv", synthetic_rows(lang, "train", pool_per_class - pool_per_class // 3))
        valid_n = pool_per_class if lang in valid_only else pool_per_class // 3
        write_csv(root / lang / "valid.csv", synthetic_rows(lang, "valid", valid_n))
        write_csv(root / lang / "test.csv", synthetic_rows(lang, "test", test_per_class))
    return root


def with_defaults(partial: dict) -> dict:
    """`partial` merged over the repository's params.yaml, the only place defaults live."""
    def merge(base, over):
        if not (isinstance(base, dict) and isinstance(over, dict)):
            return over
        return base | {key: merge(base.get(key), value) for key, value in over.items()}
    return merge(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")), partial)


def make_config(partial: dict | None = None) -> Config:
    return config_from_dict(with_defaults(partial or {}))


def tiny_params(source: str | Path, languages=("english", "french"), sizes=(6, 12), **overrides) -> dict:
    """Complete params (params.yaml's defaults) for a tiny, fast run on `source`."""
    params = {
        "data": {"source": str(source), "languages": list(languages)},
        "sample": {"sizes": list(sizes), "seed": 7, "dev_size": 15},
        "model": {"checkpoint": "scratch",
                  "scratch": {"vocab_size": 200, "dim": 16, "layers": 1, "heads": 2, "hidden_dim": 32,
                              "max_position_embeddings": 32}},
        "train": {"epochs": 2, "learning_rate": 3e-3, "batch_size": 8, "max_length": 32, "eval_batch_size": 64},
    }
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        params.setdefault(section, {})[key] = value
    return with_defaults(params)


def headless_bert(path: Path, tok=None) -> Path:
    """What a downloaded pretrained checkpoint looks like: a BertModel, no classification head, and its tokenizer."""
    from transformers import BertConfig, BertModel

    from crossling.base import train_tokenizer

    if tok is None:
        texts = [r["text"] for lang in ("english", "french", "german") for r in synthetic_rows(lang, "train", 20)]
        tok = train_tokenizer(texts, vocab_size=300)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def readme_keep_command() -> list[str]:
    """docs/workflow.md's `git add` of a kept experiment (From idea to merged result, step 3), split as a shell
    would."""
    line = next(line for line in (Path(__file__).resolve().parents[1] / "docs" / "workflow.md").read_text().splitlines()
                if line.strip().startswith("git add dvc"))
    return shlex.split(line, comments=True)


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def csv_source(tmp_path: Path) -> Path:
    return make_csv_source(tmp_path / "source")


@pytest.fixture(scope="session", autouse=True)
def _offline(tmp_path_factory):
    """Tests never reach the network, and keep the Hugging Face caches out of the home directory.

    Session scope, so these are set before any module-scoped fixture runs: huggingface_hub reads them once, when
    it is first imported, and a module fixture that builds a tokenizer imports it (set per test, the library kept
    whatever the first importer saw, and hub tests later in that process went online, order-dependently)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("HF_DATASETS_OFFLINE", "1")
        env.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf_home"))
        env.setenv("DVC_NO_ANALYTICS", "1")
        # Subprocesses (the torchrun relaunch of train) import this checkout's code, not an installed copy.
        env.setenv("PYTHONPATH", str(ROOT / "src"))
        yield


@pytest.fixture(autouse=True)
def _in_tmp_path(monkeypatch, tmp_path):
    # Relative paths in a test land under tmp_path, never in the checkout (module fixtures run in the launch
    # directory, so they write only to absolute paths).
    monkeypatch.chdir(tmp_path)


def run_download(params: Path, out: Path) -> None:
    """The download stage, its provenance beside its output."""
    from crossling import download

    download.cli(["--params", str(params), "--out", str(out), "--provenance", f"{out}.provenance.json"])


def stage_error(stderr: str) -> str:
    """The one error line a failing stage prints (log lines may precede it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("crossling.") and ": error: " in line]
    assert len(lines) == 1, stderr
    assert stderr.rstrip().endswith(lines[0])  # nothing (no traceback) after it
    return lines[0]
