"""The one typed, validated view of `params.yaml` that every stage uses.

Every field has the reference experiment's value as its default; `params.yaml`
spells them all out. Unknown keys, wrong types and out-of-range values raise
`ConfigError` with the dotted field name and what is allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The configs of tyqiangz/multilingual-sentiments (and folders of the upstream CSV layout).
KNOWN_LANGUAGES = (
    "arabic", "chinese", "english", "french", "german", "hindi",
    "indonesian", "italian", "japanese", "malay", "portuguese", "spanish",
)
DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# [CLS] + [SEP] + at least one text token.
MIN_MAX_LENGTH = 3


class ConfigError(ValueError):
    """A bad parameter; the message names the field and what is allowed."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class DataConfig:
    # "hub" loads the Hugging Face dataset; anything else is a local directory in the upstream CSV layout.
    source: str = "hub"
    hub_id: str = "tyqiangz/multilingual-sentiments"
    hub_config: str = "all"
    # The script-free Parquet export; pin a commit sha of that branch for bit-exact reruns.
    revision: str = "refs/convert/parquet"
    languages: tuple[str, ...] = ("english", "french", "arabic", "japanese", "hindi", "malay")
    # The one place the label order (label id = position) is declared; names are matched, never ids.
    labels: tuple[str, ...] = ("positive", "neutral", "negative")

    def __post_init__(self) -> None:
        _nonempty("data.source", self.source)
        _nonempty("data.hub_id", self.hub_id)
        _nonempty("data.hub_config", self.hub_config)
        _nonempty("data.revision", self.revision)
        _distinct_nonempty("data.languages", self.languages)
        for lang in self.languages:
            if lang not in KNOWN_LANGUAGES:
                raise ConfigError("data.languages", f"unknown language {lang!r} (allowed: {', '.join(KNOWN_LANGUAGES)})")
        _distinct_nonempty("data.labels", self.labels)
        if not 2 <= len(self.labels) <= 127:  # label ids are stored as int8
            raise ConfigError("data.labels", f"needs 2 to 127 label names, got {len(self.labels)}")
        for name in self.labels:
            if not name or name != name.strip():
                raise ConfigError("data.labels", f"label {name!r} is empty or has surrounding spaces")

    @property
    def is_hub(self) -> bool:
        return self.source == "hub"


@dataclass(frozen=True)
class SampleConfig:
    sizes: tuple[int, ...] = (100, 500, 1000, 1500, 2000)
    seed: int = 42
    # Per language, a fixed class-balanced dev split carved from the pool before any sample is drawn.
    dev_size: int = 150

    def __post_init__(self) -> None:
        _positive("sample.dev_size", self.dev_size)
        if not self.sizes:
            raise ConfigError("sample.sizes", "must list at least one size, e.g. [100, 500]")
        for i, size in enumerate(self.sizes):
            if size <= 0:
                raise ConfigError(f"sample.sizes[{i}]", f"must be a positive integer, got {size}")
        dupes = sorted({s for s in self.sizes if self.sizes.count(s) > 1})
        if dupes:
            raise ConfigError("sample.sizes", f"duplicate size(s) {dupes}; list each size once")
        if list(self.sizes) != sorted(self.sizes):
            raise ConfigError("sample.sizes", f"must be in increasing order, got {list(self.sizes)} "
                              "(the monolingual models train on the last, largest size)")
        _seed("sample.seed", self.seed)

    @property
    def largest(self) -> int:
        return max(self.sizes)


@dataclass(frozen=True)
class ScratchConfig:
    """A small DistilBERT trained from nothing, for offline runs."""

    vocab_size: int = 8000
    dim: int = 128
    layers: int = 2
    heads: int = 2
    hidden_dim: int = 256
    max_position_embeddings: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "layers", "heads", "hidden_dim", "max_position_embeddings"):
            _positive(f"model.scratch.{name}", getattr(self, name))
        if self.vocab_size < 100:
            raise ConfigError("model.scratch.vocab_size", f"must be at least 100, got {self.vocab_size}")
        if self.dim % self.heads:
            raise ConfigError("model.scratch.dim", f"{self.dim} is not divisible by model.scratch.heads={self.heads}")
        if not 0 <= self.dropout < 1:
            raise ConfigError("model.scratch.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ModelConfig:
    # A hub id, a local checkpoint directory, or "scratch".
    checkpoint: str = "distilbert-base-multilingual-cased"
    # Hub revision (branch, tag or commit sha) of a hub checkpoint; ignored for a local directory or scratch.
    revision: str = "main"
    # Seeds the weights the base stage creates: the classification head (or, for scratch, everything).
    init_seed: int = 42
    scratch: ScratchConfig = field(default_factory=ScratchConfig)

    def __post_init__(self) -> None:
        _nonempty("model.checkpoint", self.checkpoint)
        _nonempty("model.revision", self.revision)
        _seed("model.init_seed", self.init_seed)

    @property
    def is_scratch(self) -> bool:
        return self.checkpoint == "scratch"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    learning_rate: float = 2e-5
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    max_length: int = 128
    # One fine-tuning run per seed and model (data order, dropout); results report mean and spread.
    seeds: tuple[int, ...] = (42,)
    eval_batch_size: int = 128
    # Data-parallel processes (torchrun/DDP through the Trainer); 1 = plain single process.
    processes: int = 1
    # Where training and prediction run: auto = CUDA, else Apple MPS, else CPU (chosen by accelerate).
    device: str = "auto"
    # auto = bf16 on GPUs with native bf16, fp16 mixed precision on older CUDA GPUs, fp32 elsewhere.
    precision: str = "auto"

    def __post_init__(self) -> None:
        _choice("train.device", self.device, DEVICES)
        _choice("train.precision", self.precision, PRECISIONS)
        _positive("train.epochs", self.epochs)
        _positive("train.batch_size", self.batch_size)
        _positive("train.eval_batch_size", self.eval_batch_size)
        _positive("train.processes", self.processes)
        if self.learning_rate <= 0:
            raise ConfigError("train.learning_rate", f"must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ConfigError("train.weight_decay", f"must be >= 0, got {self.weight_decay}")
        if not self.seeds:
            raise ConfigError("train.seeds", "must list at least one seed, e.g. [42]")
        dupes = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if dupes:
            raise ConfigError("train.seeds", f"duplicate seed(s) {dupes}; list each seed once")
        for i, seed in enumerate(self.seeds):
            _seed(f"train.seeds[{i}]", seed)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("train.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        if self.max_length < MIN_MAX_LENGTH:
            raise ConfigError(
                "train.max_length",
                f"must be at least {MIN_MAX_LENGTH} ([CLS], [SEP] and one token), got {self.max_length}",
            )


@dataclass(frozen=True)
class EvaluateConfig:
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 42

    def __post_init__(self) -> None:
        if self.bootstrap_samples < 100:
            raise ConfigError("evaluate.bootstrap_samples", f"must be at least 100, got {self.bootstrap_samples}")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError("evaluate.confidence", f"must be in [0.5, 1), got {self.confidence}")
        _seed("evaluate.seed", self.seed)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        if self.sample.dev_size < len(self.data.labels):
            raise ConfigError("sample.dev_size", f"must be at least {len(self.data.labels)} (one text per label), "
                              f"got {self.sample.dev_size}")
        if self.model.is_scratch and self.train.max_length > self.model.scratch.max_position_embeddings:
            raise ConfigError(
                "train.max_length",
                f"{self.train.max_length} exceeds model.scratch.max_position_embeddings="
                f"{self.model.scratch.max_position_embeddings}; lower one or raise the other",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path = "params.yaml") -> Config:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found; run from the project root or pass --params") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"is not valid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_dict(raw or {})


def config_from_dict(raw: Any) -> Config:
    return _build(Config, raw, "")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "params"
    if not isinstance(raw, dict):
        raise ConfigError(where, f"expected a mapping of keys, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown key (allowed under {where}: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in raw.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, name + ".")
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(name, f"expected a list, got {value!r}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(item_tp, v, f"{name}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {tp}")  # pragma: no cover - guards future edits
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `2e-5` (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(name, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(name, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp}")  # pragma: no cover


def _nonempty(name: str, value: str) -> None:
    if not value.strip():
        raise ConfigError(name, "must not be empty")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {value!r}")


def _seed(name: str, value: int) -> None:
    if not 0 <= value < 2**32:
        raise ConfigError(name, f"must be an integer in [0, 2**32), got {value}")


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(name, f"must be a positive integer, got {value}")


def _distinct_nonempty(name: str, values: tuple[str, ...]) -> None:
    if not values:
        raise ConfigError(name, "must list at least one value")
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise ConfigError(name, f"duplicate value(s) {dupes}; list each once")
