"""Model helpers shared by base, train and predict: device and precision, loading, checks, tokenization, inference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crossling.common import DataError
from crossling.config import ConfigError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Written by the base stage: which weights it created (not loaded), so each fine-tuning seed can re-draw them.
INIT_RECORD = "crossling_init.json"


def configure_threads() -> int:
    """Use every core this process may run on (containers often allow fewer than os.cpu_count())."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if os.environ.get("WORLD_SIZE"):  # several training processes share the machine
        n = max(1, n // int(os.environ["WORLD_SIZE"]))
    torch.set_num_threads(n)
    return n


@dataclass(frozen=True)
class DeviceInfo:
    """What the precision choice needs to know about a device."""

    type: str  # cuda, mps or cpu
    name: str = ""
    capability: tuple[int, int] | None = None  # CUDA compute capability
    mps_bf16: bool = False  # macOS >= 14, where torch's MPS backend has bf16


def check_device(requested: str, found: torch.device) -> torch.device:
    """`found` is what the libraries chose; a device asked for by name must be the one they found."""
    if requested not in ("auto", found.type):
        raise ConfigError("train.device", f"{requested} was requested but the libraries found only {found.type} "
                          f"on this machine; use auto or {found.type} (no silent fall-back)")
    return found


def inference_device(device: str, precision: str) -> tuple[torch.device, str]:
    """The device accelerate picks (CUDA, else Apple MPS, else CPU; CPU only when asked), checked against the request,
    and the precision chosen for it: for prediction outside the Trainer, and the train stage's check before it."""
    from accelerate import PartialState

    # cpu without accelerate's process-wide state: its first call would fix the device of every later one
    found = torch.device("cpu") if device == "cpu" else check_device(device, PartialState().device)
    return found, choose_precision(precision, device_info(found))


def device_info(device: torch.device) -> DeviceInfo:
    if device.type == "cuda":
        return DeviceInfo("cuda", torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device))
    if device.type == "mps":
        return DeviceInfo("mps", "Apple MPS", mps_bf16=torch.backends.mps.is_macos_or_newer(14, 0))
    return DeviceInfo(device.type, "CPU" if device.type == "cpu" else device.type)


def choose_precision(requested: str, info: DeviceInfo) -> str:
    """fp32, bf16 or fp16 (mixed precision) for `info`; a request the device cannot serve is an error.

    auto: bf16 where the GPU runs it natively (compute capability >= 8.0; torch.cuda.is_bf16_supported()
    also says yes on T4/V100, where bf16 is emulated and slow), fp16 on older CUDA GPUs, fp32 on Apple
    MPS (as the reference notebook ran; fp16, or bf16 from macOS 14, on request) and on CPU.
    """
    native_bf16 = {"cuda": info.capability is not None and info.capability >= (8, 0),
                   "mps": info.mps_bf16, "cpu": True}.get(info.type, False)
    if requested == "auto":
        if info.type == "cuda":
            return "bf16" if native_bf16 else "fp16"
        return "fp32"  # CPU; and MPS, where mixed precision is the libraries' least-tested path: ask for it
    if requested == "bf16" and not native_bf16:
        why = (f"compute capability {info.capability[0]}.{info.capability[1]} < 8.0, so bf16 is emulated"
               if info.type == "cuda" and info.capability else "needs macOS 14 or newer" if info.type == "mps"
               else "is not supported")
        raise ConfigError("train.precision", f"bf16 on {info.name or info.type} {why}; use fp16, fp32 or auto")
    if requested == "fp16" and info.type not in ("cuda", "mps"):
        raise ConfigError("train.precision", f"fp16 mixed precision needs a CUDA or MPS device, this run is on "
                          f"{info.type}; use fp32, bf16 or auto")
    return requested


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def one_device_per_process(environ: dict, processes: int) -> None:
    """With one process, show it one GPU: the Trainer would otherwise wrap the model in DataParallel over
    every visible GPU and silently multiply the batch. Must run before CUDA is initialized."""
    if processes == 1:
        environ["CUDA_VISIBLE_DEVICES"] = environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]


def quiet_transformers() -> None:
    """No weight-loading/saving bars or load-report tables in stage logs; stages log what matters themselves."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_classifier(path: str | Path, labels: tuple[str, ...] | None = None):
    """A saved classifier (base or fine-tuned) and its tokenizer, checked against `labels` if given."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise DataError(f"no model at {path} (config.json missing); run `dvc repro` or `dvc pull {path}`")
    if not any(path.glob("*.safetensors")):
        raise DataError(f"{path} has no .safetensors weights; only safetensors checkpoints are loaded")
    from safetensors import SafetensorError

    try:  # float32 whatever train.save_dtype stored: every path computes alike; train.precision sets autocast
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True, trust_remote_code=False,
                                                                   dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, SafetensorError) as exc:  # a damaged file: invalid JSON, truncated weights
        raise DataError(f"{path}: cannot be loaded ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}); "
                        f"if it is a DVC output, run `dvc checkout {path}` or `dvc pull {path}`") from None
    # without tokenizer files transformers builds a tokenizer of special tokens only: every word [UNK]
    if not set(tokenizer.get_vocab()) - set(tokenizer.all_special_tokens):
        raise DataError(f"no tokenizer at {path} (a vocabulary of special tokens only: its tokenizer files are "
                        f"missing); run `dvc repro` or `dvc pull {path}`")
    pad = model.config.get_text_config().pad_token_id  # composite configs (Gemma 3) keep it there
    if tokenizer.pad_token_id is None and pad is not None:  # a decoder's, set by the base stage
        tokenizer.pad_token_id = pad
    if tokenizer.pad_token_id is None:  # a decoder from elsewhere: batches cannot be padded
        raise DataError(f"{path}: neither its tokenizer nor its config.json names a pad token; run it through the "
                        "base stage (model.checkpoint), which pads with the end-of-sequence token, or add one")
    if labels is not None:
        check_labels(model.config, labels, str(path))
    return model, tokenizer


def draw_weights(model, names: list[str]) -> None:
    """Draw the parameters `names` anew (from torch's current seed) through the model's own initialization
    (`initialize_weights` visits only what is not flagged initialized, with each architecture's `_init_weights`)."""
    names = set(names)
    for module in model.modules():
        module._is_hf_initialized = False
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        tensor._is_hf_initialized = name not in names
    model.initialize_weights()


def head_modules(model) -> list[str]:
    """The classification head: the model's modules with weights beside its base model."""
    return [name for name, module in model.named_children()
            if name != model.base_model_prefix and any(True for _ in module.parameters())]


def check_labels(config, labels: tuple[str, ...], where: str) -> None:
    """A classification head must have exactly data.labels, by name and in that order."""
    names = tuple(config.id2label[i] for i in range(config.num_labels))
    if config.num_labels != len(labels):
        raise DataError(f"{where} has {config.num_labels} labels {list(names)} but data.labels has {len(labels)} "
                        f"{list(labels)}; use a checkpoint without a classification head or with the same labels")
    if names != labels:
        raise DataError(f"{where} has labels {list(names)} but data.labels is {list(labels)}; its head would be "
                        f"read with the wrong names: set data.labels to {list(names)}")


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Tokenize once, unpadded: padding happens per batch, to that batch's longest text."""
    return tokenizer(texts, truncation=True, max_length=max_length, padding=False,
                     return_attention_mask=False, return_token_type_ids=False)["input_ids"]


def predict_proba(model, tokenizer, texts: list[str], max_length: int, batch_size: int, device: torch.device,
                  precision: str) -> np.ndarray:
    """Class probabilities for `texts`, in their order: a plain loop over batches of texts of similar length, each
    padded by the tokenizer to its longest text (a text's result depends only on its batch)."""
    model.to(device).eval()
    ids = tokenize(tokenizer, texts, max_length)
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(precision),
                                                     enabled=precision in AUTOCAST_DTYPES):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        if not torch.isfinite(logits).all():  # argmax would read a NaN row as the first label
            raise DataError(f"the model gives non-finite logits (NaN or inf) under {precision} for "
                            f"{int((~torch.isfinite(logits)).any(dim=-1).sum())} of {len(idx)} texts in a batch; "
                            f"{FP32_HINT * (precision != 'fp32')}check its training log for a non-finite loss")
        out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


FP32_HINT = ("predict in fp32 (classify --precision fp32; in the pipeline train.precision: fp32, which trains again "
             "too) or ")


def usable_length(model) -> int | None:
    """The longest input the model takes: max_position_embeddings, less the positions that RoBERTa-style
    embeddings reserve (ids start after padding_idx); None where nothing bounds it (T5's relative positions,
    BLOOM's ALiBi: no such entry, or XLNet's -1)."""
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    limit = limit if limit and limit > 0 else None
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            reserved = 0 if module.padding_idx is None else module.padding_idx + 1
            return min(limit or module.num_embeddings, module.num_embeddings) - reserved
    return limit


def check_max_length(model, max_length: int, field: str = "train.max_length") -> None:
    """Longer inputs would fail inside the forward pass, or be cut without a word: refuse them in one line."""
    if max_length < 3:  # below, the tokenizer truncates nothing (0, 1) or keeps no text token (2)
        raise DataError(f"{field}={max_length} is below 3 ([CLS], [SEP] and one text token); use {field} >= 3")
    limit = usable_length(model)
    if limit is not None and max_length > limit:
        raise DataError(f"{field}={max_length} exceeds the {limit} positions the model can take; "
                        f"use {field} <= {limit}")


VERSIONED = ("torch", "transformers", "datasets", "accelerate", "dvc", "dvclive", "pandas", "peft", "crossling")


def provenance(device: torch.device, precision: str, init: dict) -> dict:
    """What produced a run: the device used and its name, the precision, torch's threads on CPU (CPU results differ in
    the last bits between thread counts), the base checkpoint and its resolved commit (or content hash), and the
    versions of the libraries that compute it."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {"device": device.type, "device_name": device_info(device).name, "precision": precision,
            "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
            "checkpoint": init.get("checkpoint", "unknown (base stage of an older crossling)"),
            "checkpoint_commit": init.get("commit"), "versions": {name: installed(name) for name in VERSIONED}}
