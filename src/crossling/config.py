"""The one typed, validated view of `params.yaml` that every stage uses.

`params.yaml` is the only place defaults live (every key must be there), and its comments are the one place a key
is explained; comments here say why a rule exists. The sections are pydantic dataclasses (plain dataclasses too,
so `dataclasses.asdict` works). Any bad value raises `ConfigError`: one line with the dotted field
(`sample.sizes[1]`) and what is allowed.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BeforeValidator, ConfigDict, Discriminator, Field, Strict, StrictBool, StrictInt,
                      StrictStr, StringConstraints, Tag, TypeAdapter, ValidationError, field_validator, model_validator)
from pydantic.dataclasses import dataclass
from ruamel.yaml import YAML, YAMLError

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A bad parameter; the message names the field and what is allowed."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _ids_as_str(value: Any) -> Any:
    """YAML reads `0: negative` with an integer key: the string the data holds; `{1: positive, "1": negative}` would
    keep one of two maps of the same label without a word."""
    if not isinstance(value, dict):
        return value
    keys = [str(key) if type(key) is int else key for key in value]
    twice = next((key for key in keys if keys.count(key) > 1), None)
    if twice is not None:
        raise ValueError(f"maps {twice!r} twice (as a number and as a string); keep one")
    return dict(zip(keys, value.values()))


def _within(low: float, high: float, shown_high: str | None = None, closed: bool = False) -> AfterValidator:
    """The range [low, high) ([low, high] if closed), which pydantic would report as two separate bounds."""
    def check(value):
        if not (low <= value <= high if closed else low <= value < high):
            raise ValueError(f"must be in [{low}, {shown_high or high}{']' if closed else ')'}, got {value}")
        return value
    return AfterValidator(check)


def _distinct(noun: str, allow_empty: bool = False) -> AfterValidator:
    def check(values: tuple) -> tuple:
        if not values and not allow_empty:
            raise ValueError(f"must list at least one {noun}")
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"duplicate {noun}(s) {dupes}; list each {noun} once")
        return values
    return AfterValidator(check)


Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Positive = Annotated[StrictInt, Field(gt=0)]
Seed = Annotated[StrictInt, _within(0, 2**32, "2**32")]
Fraction = Annotated[Number, _within(0, 1)]
# Non-empty, without surrounding spaces (names, paths, ids).
Name = Annotated[StrictStr, StringConstraints(pattern=r"^\S(.*\S)?$")]


def _in_word(char: str) -> bool:
    """A letter or digit (str.isalnum), '_', '-', or a combining mark: the vowel signs and viramas of Devanagari,
    Tamil or Bengali (हिंदी, தமிழ்) and a decomposed accent (macOS file names) are marks, not letters."""
    return char.isalnum() or char in "_-" or unicodedata.category(char).startswith("M")


def _word(value: str) -> str:
    """A language goes unquoted into the stages' commands (--language ${item.lang}), into file and stage names and
    into metric names: a space would split it into two arguments, and the run fail at its first monolingual model."""
    if not (value[:1].isalnum() or value[:1] == "_") or not all(map(_in_word, value)):
        renamed = "".join("".join(run) if keep else "_" for keep, run in groupby(value, _in_word)).strip("_-")
        renamed = renamed[next((i for i, c in enumerate(renamed) if c.isalnum()), len(renamed)):]  # no mark first
        raise ValueError(f"{value!r}: a language name is used in commands, file and stage names; letters, digits, "
                         f"'_' and '-' only (rename its folder or hub config, e.g. {renamed or 'lang'!r})")
    return value


Language = Annotated[Name, AfterValidator(_word)]
ONE_NAME, NAMES = "<name>", "<names>"  # tags of target_modules' name-or-list union, left out of an error's field

SECTION = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=SECTION)
class DataConfig:
    source: Name
    hub_id: Name
    hub_config: Name
    revision: Name
    languages: Annotated[tuple[Language, ...], _distinct("language")]
    labels: Annotated[tuple[Name, ...], _distinct("label")]
    label_map: Annotated[dict[Name, Name], BeforeValidator(_ids_as_str)]
    dev_split: Literal["carve", "validation"]
    source_domains: dict[Name, Name]

    @field_validator("labels")
    @classmethod
    def _label_count(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        if not 2 <= len(labels) <= 127:  # label ids are stored as int8
            raise ValueError(f"needs 2 to 127 label names, got {len(labels)}")
        return labels

    @model_validator(mode="after")
    def _maps_into_labels(self) -> DataConfig:
        for found, name in self.label_map.items():
            if name not in self.labels:
                raise ConfigError(f"label_map.{found}", f"maps to {name!r}, which is not in data.labels "
                                                        f"({', '.join(self.labels)}); use one of those names")
        return self

    @property
    def is_hub(self) -> bool:
        return self.source == "hub"


@dataclass(frozen=True, config=SECTION)
class SampleConfig:
    sizes: Annotated[tuple[Positive, ...], _distinct("size")]
    seed: Seed
    dev_size: Positive
    redraw_per_seed: StrictBool
    leave_one_out: Annotated[tuple[Language, ...], _distinct("language", allow_empty=True)]

    @field_validator("sizes")
    @classmethod
    def _increasing(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if list(sizes) != sorted(sizes):
            raise ValueError(f"must be in increasing order, got {list(sizes)} "
                             "(the monolingual models train on the last, largest size)")
        return sizes

    @property
    def largest(self) -> int:
        return self.sizes[-1]


@dataclass(frozen=True, config=SECTION)
class ScratchConfig:
    """A small DistilBERT trained from nothing, for offline runs."""

    vocab_size: Annotated[StrictInt, Field(ge=100)]
    dim: Positive
    layers: Positive
    heads: Positive
    hidden_dim: Positive
    max_position_embeddings: Positive
    dropout: Fraction

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> ScratchConfig:
        if self.dim % self.heads:
            raise ConfigError("dim", f"{self.dim} is not divisible by model.scratch.heads={self.heads}")
        return self


@dataclass(frozen=True, config=SECTION)
class ModelConfig:
    checkpoint: Name
    revision: Name
    init_seed: Seed
    scratch: ScratchConfig
    head_label_map: dict[Name, Name]

    @model_validator(mode="after")
    def _head_map_distinct(self) -> ModelConfig:
        values = list(self.head_label_map.values())
        if len(set(values)) != len(values):
            raise ConfigError("head_label_map", f"maps two head labels to one name ({values}); map each once")
        return self

    @property
    def is_scratch(self) -> bool:
        return self.checkpoint == "scratch"


@dataclass(frozen=True, config=SECTION)
class LoraConfig:
    rank: Positive
    alpha: Annotated[Number, Field(gt=0)]
    dropout: Fraction
    # validated as a name or a list by the value's kind, so a bad list is reported as a list
    target_modules: Annotated[Annotated[Name, Tag(ONE_NAME)] | Annotated[tuple[Name, ...], _distinct("module"), Tag(NAMES)],
                              Discriminator(lambda value: ONE_NAME if isinstance(value, str) else NAMES)]


@dataclass(frozen=True, config=SECTION)
class TrainConfig:
    epochs: Positive
    max_steps: Annotated[StrictInt, Field(ge=0)]
    learning_rate: Annotated[Number, Field(gt=0)]
    batch_size: Positive
    weight_decay: Annotated[Number, Field(ge=0)]
    warmup_ratio: Fraction
    max_length: Annotated[StrictInt, Field(ge=3)]  # [CLS], [SEP] and at least one text token
    seeds: Annotated[tuple[Seed, ...], _distinct("seed")]
    eval_batch_size: Positive
    processes: Positive
    device: Literal[DEVICES]
    precision: Literal[PRECISIONS]
    select: Literal["last", "best"]
    group_by_length: StrictBool
    fixed_init: StrictBool
    save_dtype: Literal["float32", "bfloat16", "float16"]
    gradient_accumulation_steps: Positive
    gradient_checkpointing: StrictBool
    method: Literal["full", "lora"]
    lora: LoraConfig


@dataclass(frozen=True, config=SECTION)
class EvaluateConfig:
    bootstrap_samples: Annotated[StrictInt, Field(ge=100)]
    confidence: Annotated[Number, _within(0.5, 1)]
    seed: Seed
    correction: Literal["holm", "bh"]
    collapse_share: Annotated[Number, _within(0.5, 1, closed=True)]


def _no_managed_option(options: tuple[str, ...]) -> tuple[str, ...]:
    for option in options:
        if not option.startswith("-"):
            raise ValueError(f"{option!r} is not an sbatch option; write each as --name=value, e.g. --qos=high")
        name = option.split("=", 1)[0]
        # sbatch also takes a long option's unambiguous prefix (--depend), a short one's value attached (-a1-2) and
        # short flags bundled before it (-Ha0-3: --hold --array=0-3)
        if name.startswith("--"):
            managed = next((m for m in SLURM_MANAGED if m.startswith(name) and len(name) > 2), None)
        else:
            letter = next((c for c in name[1:] if c not in SBATCH_FLAGS), "")
            managed = f"-{letter}" if f"-{letter}" in SLURM_MANAGED else None
        if managed:
            raise ValueError(f"{name}{f' ({managed})' if managed != name else ''} is set by crossling.slurm itself; "
                             "use the slurm.* key or command-line option for resources, or leave it out")
    return options


# sbatch options crossling.slurm writes itself: passing them through would contradict its own
SLURM_MANAGED = ("--array", "--dependency", "--output", "--error", "--job-name", "-o", "-e", "-J", "-d", "-a",
                 "--parsable", "--wrap")
SBATCH_FLAGS = "hHOQsuvVW"  # sbatch's short options that take no value (-H: --hold)


def _matches(pattern: str, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{what}, got {value!r}")
        return value
    return AfterValidator(check)


SlurmTime = Annotated[StrictStr, _matches(r"(\d+-)?\d+(:\d{2}){0,2}", "must be minutes, HH:MM:SS or D-HH:MM:SS "
                                                                       "(Slurm's --time), e.g. 04:00:00")]
SlurmMemory = Annotated[StrictStr, _matches(r"\d+[KMGT]?", "must be a number with an optional unit K, M, G or T "
                                                          "(Slurm's --mem), e.g. 16G")]


@dataclass(frozen=True, config=SECTION)
class SlurmConfig:
    """Resources of the Slurm grid (python -m crossling.slurm); its command-line options override them."""

    gpus: Annotated[StrictInt, Field(ge=0)]
    gpu_type: Name | None
    cpus: Positive
    mem: SlurmMemory | None
    time: SlurmTime
    partition: Name | None
    account: Name | None
    max_parallel: Annotated[StrictInt, Field(ge=0)]
    sbatch_options: Annotated[tuple[StrictStr, ...], AfterValidator(_no_managed_option)]
    workdir: Name


@dataclass(frozen=True, config=SECTION)
class Config:
    data: DataConfig
    sample: SampleConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    slurm: SlurmConfig

    @model_validator(mode="after")
    def _fields_agree(self) -> Config:
        if self.sample.dev_size < len(self.data.labels):
            raise ConfigError("sample.dev_size", f"must be at least {len(self.data.labels)} (one text per label), "
                              f"got {self.sample.dev_size}")
        outside = [lang for lang in self.sample.leave_one_out if lang not in self.data.languages]
        if outside:
            raise ConfigError("sample.leave_one_out", f"{', '.join(outside)} not in data.languages "
                              f"({', '.join(self.data.languages)}); hold out only languages of the study")
        if self.sample.leave_one_out and len(self.data.languages) < 2:
            raise ConfigError("sample.leave_one_out", "needs at least two languages in data.languages; use []")
        if self.model.is_scratch and self.model.head_label_map:
            raise ConfigError("model.head_label_map", "the scratch model has no checkpoint head to name; empty the map")
        if self.model.is_scratch and self.train.max_length > self.model.scratch.max_position_embeddings:
            raise ConfigError("train.max_length", f"{self.train.max_length} exceeds model.scratch."
                              f"max_position_embeddings={self.model.scratch.max_position_embeddings}; "
                              "lower one or raise the other")
        return self


_VALIDATOR = TypeAdapter(Config)


def read_yaml(text: str | bytes) -> Any:
    """YAML 1.2, as DVC reads and writes params.yaml: `dvc exp run -S` drops the quotes only YAML 1.1 needs, so a
    1.1 reader (PyYAML) would take `time: 10:00:00` for 36000 and a language `no` for false."""
    return YAML(typ="safe", pure=True).load(text)


def load_config(path: str | Path = "params.yaml") -> Config:
    path = Path(path)
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found; run from the project root or pass --params") from None
    except YAMLError as exc:  # in one line: where and what, e.g. `line 3: found duplicate key "seed"...`
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f"line {mark.line + 1}: {problem}" if mark and problem else str(exc).splitlines()[0]
        raise ConfigError(str(path), f"is not valid YAML ({where})") from None
    return config_from_dict(raw)


def config_from_dict(raw: Any) -> Config:
    try:
        return _VALIDATOR.validate_python(raw)
    except ValidationError as exc:
        raise _one_line(exc) from None


# pydantic's error types -> our one-line messages (ctx values and `got` are filled in).
MESSAGES = {
    "missing": "missing; add it (the repository's params.yaml lists every key with its default)",
    "int_type": "expected an integer, got {got!r}",
    "bool_type": "expected true or false, got {got!r}",
    "float_type": "expected a finite number, got {got!r}",
    "finite_number": "expected a finite number, got {got!r}",
    "string_type": "expected a string, got {got!r}",
    "string_pattern_mismatch": "must not be empty or have surrounding spaces, got {got!r}",
    "tuple_type": "expected a list, got {got!r}",
    "dict_type": "expected a mapping, got {got!r}",
    "dataclass_type": "expected a mapping of keys, got {got!r}",
    "greater_than": "must be > {gt}, got {got}",
    "greater_than_equal": "must be at least {ge}, got {got}",
    "literal_error": "must be one of {expected}, got {got!r}",
    "value_error": "{error}",
}


def _one_line(exc: ValidationError) -> ConfigError:
    """The first problem, a misspelled key before the key it leaves missing."""
    errors = exc.errors(include_url=False)
    error = next((e for e in errors if e["type"] == "unexpected_keyword_argument"), errors[0])
    loc, kind, ctx, got = error["loc"], error["type"], error.get("ctx", {}), error["input"]
    tags = {i for i, p in enumerate(loc) if p in (ONE_NAME, NAMES) and i and loc[i - 1] == "target_modules"}
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for i, p in enumerate(loc)
                    if p != "[key]" and i not in tags).lstrip(".")
    if isinstance(ctx.get("error"), ConfigError):  # a rule between fields, named relative to its section
        return ConfigError(".".join(filter(None, (where, ctx["error"].field))), ctx["error"].message)
    if kind == "unexpected_keyword_argument":
        section = Config
        for name in loc[:-1]:
            section = section.__pydantic_fields__[name].annotation
        allowed = ", ".join(section.__pydantic_fields__)
        return ConfigError(where, f"unknown key (allowed under {'.'.join(loc[:-1]) or 'params'}: {allowed})")
    if kind == "greater_than" and ctx["gt"] == 0 and type(got) is int:
        return ConfigError(where, f"must be a positive integer, got {got}")
    return ConfigError(where or "params", MESSAGES.get(kind, "{msg}").format(got=got, msg=error["msg"], **ctx))
