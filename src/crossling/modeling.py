"""Model helpers shared by base, train and predict: loading, checks, tokenization and fast inference."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from crossling.common import DataError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def configure_threads() -> int:
    """Use every core this process may run on (containers often allow fewer than os.cpu_count())."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if os.environ.get("WORLD_SIZE"):  # several training processes share the machine
        n = max(1, n // int(os.environ["WORLD_SIZE"]))
    torch.set_num_threads(n)
    return n


def device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def load_classifier(path: str | Path, labels: tuple[str, ...]):
    """A saved classifier (base or fine-tuned) and its tokenizer, checked against data.labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise DataError(f"no model at {path} (config.json missing); run `dvc repro` or `dvc pull {path}`")
    weights = list(path.glob("*.safetensors"))
    if not weights:
        raise DataError(f"{path} has no .safetensors weights; only safetensors checkpoints are loaded")
    model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    check_labels(model.config, labels, str(path))
    return model, tokenizer


def check_labels(config, labels: tuple[str, ...], where: str) -> None:
    """A classification head must have exactly data.labels, in that order (generic LABEL_i names excepted)."""
    names = tuple(config.id2label[i] for i in range(config.num_labels))
    if config.num_labels != len(labels):
        raise DataError(f"{where} has {config.num_labels} labels {list(names)} but data.labels has {len(labels)} "
                        f"{list(labels)}; use a checkpoint without a classification head or with the same labels")
    generic = names == tuple(f"LABEL_{i}" for i in range(len(names)))
    if names != labels and not generic:
        raise DataError(f"{where} has labels {list(names)} but data.labels is {list(labels)}; its head would be "
                        "read with the wrong names: make data.labels match the checkpoint exactly")


def tokenize(tokenizer, texts: list[str], max_length: int) -> dict[str, list[list[int]]]:
    """Tokenize once, unpadded: padding happens per batch, to that batch's longest text."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False,
                    return_attention_mask=False, return_token_type_ids=False)
    return {"input_ids": enc["input_ids"]}


def predict_proba(model, tokenizer, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    """Class probabilities for `texts`, in their order; batches hold texts of similar length.

    On CPU the batches run in parallel, one per core with one intra-op thread each: for a model this
    small that beats one stream using every core (measured in benchmarks/). Each text's result
    depends only on its batch, so the output is the same whatever order the batches finish in.
    """
    dev = device()
    model.to(dev).eval()
    ids = tokenize(tokenizer, texts, max_length)["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)

    def run(idx: np.ndarray) -> None:
        longest = max(len(ids[i]) for i in idx)
        batch = torch.full((len(idx), longest), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), longest), dtype=torch.long)
        for row, i in enumerate(idx):
            batch[row, :len(ids[i])] = torch.tensor(ids[i])
            mask[row, :len(ids[i])] = 1
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = model(input_ids=batch.to(dev), attention_mask=mask.to(dev)).logits
            out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()

    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    threads = torch.get_num_threads()
    if dev.type != "cpu" or threads == 1:
        for idx in batches:
            run(idx)
        return out
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, batches))
    finally:
        torch.set_num_threads(threads)
    return out
