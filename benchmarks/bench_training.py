"""Benchmark: crossling's training and inference against the reference notebook's recipe.

Both sides fine-tune the same scratch DistilBERT (one base checkpoint, identical starting weights)
on the same joint sample of the real data, with the same learning rate, warmup, epochs, seed and
torch threads, and predict the same test texts:

- reference: max_length padding, the Trainer's random sampler, then language by language
  `trainer.predict` with the default eval batch size (8);
- crossling: `crossling.train.fine_tune` and `crossling.predict.predictions`, as the train and predict stages run them.

Every phase (train, predict) of each side runs in a fresh process, so its peak resident memory is its
own. Timings include tokenization on both sides. Run it on a quiet machine:

    python benchmarks/bench_training.py --data <local copy of the data>

Not part of the test suite; `--size 100 --epochs 1` is a quick smoke run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"  # the defaults, as the pipeline has them


def committed_params_file(workdir: Path, script: str) -> tuple[Path, str]:
    """params.yaml as committed at HEAD, written into `workdir` as it is, and the commit: `dvc exp run -S` (make
    smoke, make umsab) leaves its overrides in the workspace's params.yaml, which the figures must not measure."""
    from pretrained_run import committed_params_text, git

    commit = git("rev-parse", "HEAD").strip()
    path = workdir / "params.yaml"
    path.write_text(committed_params_text(commit, script), encoding="utf-8")
    return path, commit


SIDES = ("reference", "crossling")
PHASES = ("train", "predict")
MAX_LENGTH = 128
REFERENCE_BATCH_SIZE = 32
WEIGHT_DECAY = 0.01
SEED = 42
# crossling / reference; macro-F1 must not be lower.
TARGETS = {"training_speedup": 2.5, "inference_speedup": 3.0}


@dataclass(frozen=True)
class Recipe:
    """What both sides share; everything else is each side's own default."""

    learning_rate: float
    warmup_ratio: float
    epochs: int
    params: Path = PARAMS  # labels, data, sample and the train section's other values


def quiet() -> None:
    """Progress bars and a CPU-only pin_memory warning would bury the figures; the work done is unchanged."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true.*")


# ---------------------------------------------------------------- data and base model (parent process)

# distilbert-base-multilingual-cased's shape, randomly initialized: GPU speed and memory at the reference's size.
MULTILINGUAL_SHAPE = {"vocab_size": 119547, "dim": 768, "layers": 6, "heads": 12, "hidden_dim": 3072,
                      "max_position_embeddings": 512}
# The reference grid: 5 joint samples (100..2000 per language), the equal-budget joint model (2000 in all) and
# 6 monolingual models of 2000, 5 epochs.
GRID_TRAINING_EXAMPLES = (sum((100, 500, 1000, 1500, 2000)) * 6 + 2000 + 6 * 2000) * 5
GRID_MODELS = 12


def prepare(data_dir: Path, size: int, workdir: Path, shape: str = "scratch", params: Path = PARAMS) -> dict:
    """Sample, test split and scratch base checkpoint, built by the package's own functions, under workdir."""
    from crossling.base import scratch_model, train_tokenizer
    from crossling.combine import EXAMPLE_SCHEMA, combine
    from crossling.common import write_json, write_parquet
    from crossling.modeling import INIT_RECORD
    from crossling.config import load_config
    from crossling.download import load_local, normalize
    from crossling.sample import check_capacity, draw, ranked

    quiet()
    cfg = load_config(params)
    data = replace(cfg.data, source=str(data_dir))
    raw = normalize(load_local(data_dir, data), data)
    pool, dev, test, _ = combine(raw, data, cfg.sample.dev_size)  # the dev texts are never sampled, as in the pipeline
    ranked_pool = ranked(pool, data.languages, len(data.labels), cfg.sample.seed)
    check_capacity(ranked_pool, size, data.languages, data.labels, cfg.sample.dev_size)
    sample = draw(ranked_pool, size, data.languages, len(data.labels))
    write_parquet(sample, EXAMPLE_SCHEMA, workdir / "sample.parquet")
    write_parquet(test, EXAMPLE_SCHEMA, workdir / "test.parquet")
    write_parquet(dev, EXAMPLE_SCHEMA, workdir / "dev.parquet")

    scratch = cfg.model.scratch
    tokenizer = train_tokenizer(pool["text"].tolist(), scratch.vocab_size)
    if shape == "distilbert-multilingual":  # the small tokenizer uses the first ids; the cost is the shape's
        scratch = replace(scratch, **MULTILINGUAL_SHAPE)
    model = scratch_model(scratch, max(len(tokenizer), scratch.vocab_size), tokenizer.pad_token_id, data.labels)
    model.save_pretrained(workdir / "base")
    tokenizer.save_pretrained(workdir / "base")
    write_json({"scratch": True, "created_weights": [], "init_seed": cfg.model.init_seed},  # as the base stage does
               workdir / "base" / INIT_RECORD)
    return {"languages": list(data.languages), "labels": list(data.labels), "train_examples": len(sample),
            "test_texts": len(test), "dev_texts": len(dev), "test_per_language": test.groupby("language", sort=False).size().to_dict(),
            "model_parameters": model.num_parameters(), "vocabulary": len(tokenizer)}


# ---------------------------------------------------------------- one phase of one side (child process)

def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_phase(side: str, phase: str, workdir: str, recipe: Recipe) -> dict:
    """Load inputs (untimed), run the phase (timed), save what the next phase needs (untimed)."""
    os.chdir(workdir)  # dvclive and the Trainer write relative paths; keep them out of the repository
    from crossling.common import read_parquet
    from crossling.config import load_config
    from crossling.modeling import configure_threads, load_classifier

    quiet()
    threads = configure_threads()
    labels = load_config(recipe.params).data.labels
    model_dir = "base" if phase == "train" else f"trained_{side}"
    model, tokenizer = load_classifier(model_dir, labels)
    frame = read_parquet("sample.parquet" if phase == "train" else "test.parquet", phase)
    run = {("reference", "train"): reference_train, ("reference", "predict"): reference_predict,
           ("crossling", "train"): crossling_train, ("crossling", "predict"): crossling_predict}[(side, phase)]

    import torch

    rss_before = peak_rss_mib()
    start = time.perf_counter()
    out = run(model, tokenizer, frame, recipe, labels)  # train: the trained model; predict: the predictions
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rss_peak = peak_rss_mib()
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None

    if phase == "train":
        out.save_pretrained(f"trained_{side}")
        tokenizer.save_pretrained(f"trained_{side}")
    result = {"seconds": seconds, "examples": len(frame), "threads": threads,
              "peak_rss_mib": rss_peak, "rss_before_phase_mib": rss_before, "peak_gpu_mib": gpu_peak,
              "device": str(next(model.parameters()).device),
              "precision": "fp32" if side == "reference" else crossling_precision(recipe)}
    if phase == "predict":
        result.update(language=frame["language"].tolist(), gold=frame["label_id"].astype(int).tolist(),
                      pred=[int(p) for p in out])
    return result


def reference_dataset(frame, tokenizer):
    from datasets import Dataset

    ds = Dataset.from_pandas(frame[["text"]].assign(label=frame["label_id"].astype(int)), preserve_index=False)
    return ds.map(lambda batch: tokenizer(batch["text"], padding="max_length", truncation=True,
                                          max_length=MAX_LENGTH), batched=True)


def reference_arguments(recipe: Recipe | None = None):
    from transformers import TrainingArguments

    common = {"output_dir": tempfile.mkdtemp(prefix="reference-", dir="."), "report_to": "none",
              "save_strategy": "no", "seed": SEED, "disable_tqdm": True}  # progress bars off, as in quiet()
    if recipe is None:  # prediction only
        return TrainingArguments(**common)
    return TrainingArguments(**common, num_train_epochs=recipe.epochs, learning_rate=recipe.learning_rate,
                             warmup_steps=recipe.warmup_ratio, per_device_train_batch_size=REFERENCE_BATCH_SIZE,
                             weight_decay=WEIGHT_DECAY)


def reference_train(model, tokenizer, frame, recipe: Recipe, labels):
    from transformers import Trainer

    # The reference re-tokenizes for every run, so tokenization belongs to the timed phase.
    train_ds = reference_dataset(frame, tokenizer)
    trainer = Trainer(model=model, args=reference_arguments(recipe), train_dataset=train_ds,
                      processing_class=tokenizer)
    trainer.train()
    return trainer.model


def reference_predict(model, tokenizer, frame, recipe: Recipe, labels):
    import numpy as np
    from transformers import Trainer

    # Building a Trainer takes milliseconds; the notebook reuses its training one.
    trainer = Trainer(model=model, args=reference_arguments(), processing_class=tokenizer)
    preds = np.empty(len(frame), dtype=np.int64)
    for lang in frame["language"].unique():
        rows = np.flatnonzero(frame["language"].to_numpy() == lang)
        output = trainer.predict(reference_dataset(frame.iloc[rows], tokenizer))
        preds[rows] = output.predictions.argmax(axis=-1)
    return preds


def crossling_config(recipe: Recipe):
    """The params' train section with the recipe's values. select=last: no dev split is scored (the reference
    recipe scores none), so the last epoch is kept whatever train.select says."""
    from crossling.config import load_config

    return replace(load_config(recipe.params).train, learning_rate=recipe.learning_rate,
                   warmup_ratio=recipe.warmup_ratio, epochs=recipe.epochs, select="last")


def crossling_precision(recipe: Recipe) -> str:
    from crossling.modeling import inference_device

    train = crossling_config(recipe)
    return inference_device(train.device, train.precision)[1]


def crossling_fine_tune(model, tokenizer, frame, train, name: str, seed: int, params: Path = PARAMS):
    """The train stage's fine_tune (the Trainer, its arguments and callbacks) in the cwd, without the dev split it
    scores after every epoch; returns the trained model (LoRA merged). Its Trainer checkpoints are removed."""
    from types import SimpleNamespace

    from crossling.common import read_json
    from crossling.config import load_config
    from crossling.modeling import INIT_RECORD, inference_device
    from crossling.train import fine_tune

    cfg = replace(load_config(params), train=train)
    device, precision = inference_device(train.device, train.precision)
    args = SimpleNamespace(name=name, live=tempfile.mkdtemp(prefix="live-", dir="."),
                           checkpoints=tempfile.mkdtemp(prefix="checkpoints-", dir="."), sample="sample.parquet",
                           base="base", dev=None, language=None, exclude_language=None)
    trained, checkpoints, _ = fine_tune(model, tokenizer, frame, None, cfg, args, seed, device, precision,
                                        read_json(Path("base") / INIT_RECORD))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return trained


def crossling_train(model, tokenizer, frame, recipe: Recipe, labels):
    return crossling_fine_tune(model, tokenizer, frame, crossling_config(recipe), "crossling", SEED, recipe.params)


def crossling_predict(model, tokenizer, frame, recipe: Recipe, labels):
    from crossling.modeling import inference_device
    from crossling.predict import predictions

    train = crossling_config(recipe)
    device, precision = inference_device(train.device, train.precision)
    return predictions(model, tokenizer, frame, labels, train, device, precision)["pred_id"].to_numpy()


def isolated(side: str, phase: str, workdir: Path, recipe: Recipe) -> dict:
    """Run one phase in a fresh interpreter, so ru_maxrss is that phase's alone."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_phase, side, phase, str(workdir), recipe).result()


# ---------------------------------------------------------------- figures, table, JSON

def macro_f1(gold, pred, n_labels: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, labels=list(range(n_labels)), average="macro", zero_division=0))


def side_figures(train: dict, predict: dict, epochs: int, languages: list[str], n_labels: int) -> dict:
    import numpy as np

    lang, gold, pred = (np.asarray(predict[k]) for k in ("language", "gold", "pred"))
    per_language = {name: macro_f1(gold[lang == name], pred[lang == name], n_labels) for name in languages}
    return {
        "train_seconds": train["seconds"],
        "train_examples_per_s": train["examples"] * epochs / train["seconds"],
        "train_peak_rss_mib": train["peak_rss_mib"],
        "train_peak_rise_mib": train["peak_rss_mib"] - train["rss_before_phase_mib"],
        "predict_seconds": predict["seconds"],
        "predict_examples_per_s": predict["examples"] / predict["seconds"],
        "predict_peak_rss_mib": predict["peak_rss_mib"],
        "predict_peak_rise_mib": predict["peak_rss_mib"] - predict["rss_before_phase_mib"],
        "macro_f1": macro_f1(gold, pred, n_labels),
        "mean_language_macro_f1": float(np.mean(list(per_language.values()))),
        "macro_f1_per_language": per_language,
        "accuracy": float((gold == pred).mean()),
        "threads": train["threads"],
        "device": train["device"],
        "precision": train["precision"],
        "train_peak_gpu_mib": train["peak_gpu_mib"],
        "predict_peak_gpu_mib": predict["peak_gpu_mib"],
        # a projection from the measured rates, not a measurement
        "projected_reference_grid_hours": (GRID_TRAINING_EXAMPLES / (train["examples"] * epochs / train["seconds"])
                                           + GRID_MODELS * predict["examples"] / (predict["examples"] / predict["seconds"]))
                                          / 3600,
    }


def comparison(ref: dict, new: dict) -> dict:
    train_x = new["train_examples_per_s"] / ref["train_examples_per_s"]
    predict_x = new["predict_examples_per_s"] / ref["predict_examples_per_s"]
    f1_diff = new["macro_f1"] - ref["macro_f1"]
    return {
        "training_speedup": {"value": train_x, "target": f">= {TARGETS['training_speedup']}",
                             "pass": train_x >= TARGETS["training_speedup"]},
        "inference_speedup": {"value": predict_x, "target": f">= {TARGETS['inference_speedup']}",
                              "pass": predict_x >= TARGETS["inference_speedup"]},
        "macro_f1_difference": {"value": f1_diff, "target": ">= 0", "pass": f1_diff >= 0},
    }


def print_report(report: dict) -> None:
    ref, new = report["sides"]["reference"], report["sides"]["crossling"]
    s = report["setup"]
    print(f"\n{s['train_examples']} training examples x {s['epochs']} epochs, {s['test_texts']} test texts, "
          f"{ref['threads']} torch threads, lr {s['learning_rate']}, warmup ratio {s['warmup_ratio']}\n")
    rows = [("training examples/s", "train_examples_per_s", "{:.1f}"),
            ("training wall s", "train_seconds", "{:.1f}"),
            ("training peak RSS MiB", "train_peak_rss_mib", "{:.0f}"),
            ("  rise during the phase MiB", "train_peak_rise_mib", "{:.0f}"),
            ("inference examples/s", "predict_examples_per_s", "{:.1f}"),
            ("inference wall s", "predict_seconds", "{:.1f}"),
            ("inference peak RSS MiB", "predict_peak_rss_mib", "{:.0f}"),
            ("  rise during the phase MiB", "predict_peak_rise_mib", "{:.0f}"),
            ("projected reference grid h", "projected_reference_grid_hours", "{:.2f}"),
            ("accuracy", "accuracy", "{:.4f}"),
            ("macro-F1 (all texts)", "macro_f1", "{:.4f}"),
            ("macro-F1 (mean of languages)", "mean_language_macro_f1", "{:.4f}")]
    rows = [(label, fmt.format(ref[key]), fmt.format(new[key])) for label, key, fmt in rows]
    rows += [(f"  macro-F1 {lang}", f"{ref['macro_f1_per_language'][lang]:.4f}",
              f"{new['macro_f1_per_language'][lang]:.4f}") for lang in s["languages"]]
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'reference':>12}  {'crossling':>12}")
    for label, a, b in rows:
        print(f"{label:{width}}  {a:>12}  {b:>12}")
    print()
    for name, check in report["comparison"].items():
        value = f"{check['value']:+.4f}" if name == "macro_f1_difference" else f"{check['value']:.2f}x"
        verdict = "PASS" if check["pass"] else "FAIL"
        print(f"{name:{width}}  {value:>12}  target {check['target']:<7} {verdict}")


# ---------------------------------------------------------------- entry point

def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="local copy of the data in the upstream CSV layout (<language>/{train,valid,test}.csv)")
    parser.add_argument("--size", type=positive_int, default=2000, help="training examples per language (default 2000)")
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate (default 3e-4, the offline scratch rate)")
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--shape", choices=("scratch", "distilbert-multilingual"), default="scratch",
                        help="model size: the offline scratch model, or distilbert-base-multilingual-cased's shape "
                             "(random init; for GPU figures)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--params", type=Path, help="params file (default: params.yaml as committed at HEAD)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "DVC_NO_ANALYTICS"):
        os.environ.setdefault(name, "1")  # inherited by the phase processes
    os.environ.pop("WORLD_SIZE", None)  # fine_tune would split threads and batches across ranks
    out = args.out.resolve()

    with tempfile.TemporaryDirectory(prefix="crossling-bench-") as tmp:
        workdir = Path(tmp)
        if args.params:
            params, commit = args.params.resolve(), None
        else:
            params, commit = committed_params_file(workdir, "bench")
        recipe = Recipe(learning_rate=args.lr, warmup_ratio=args.warmup_ratio, epochs=args.epochs, params=params)
        print(f"preparing data from {args.data} and the scratch base model in {workdir}", flush=True)
        setup = prepare(args.data.resolve(), args.size, workdir, args.shape, recipe.params)
        raw = {}
        for side in SIDES:
            for phase in PHASES:
                print(f"--- {side}: {phase}", flush=True)
                raw[side, phase] = isolated(side, phase, workdir, recipe)

    import torch
    import transformers

    sides = {side: side_figures(raw[side, "train"], raw[side, "predict"], args.epochs, setup["languages"],
                                len(setup["labels"])) for side in SIDES}
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "torch": torch.__version__, "transformers": transformers.__version__},
        "setup": {"data": str(args.data), "size_per_language": args.size, "shape": args.shape,
                  **asdict(recipe) | {"params": str(args.params) if args.params else f"params.yaml at {commit}"},
                  **setup},
        "sides": sides,
        "comparison": comparison(sides["reference"], sides["crossling"]),
    }
    print_report(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


def cli() -> None:
    from crossling.common import DataError
    from crossling.config import ConfigError

    try:
        sys.exit(main())
    except (ConfigError, DataError) as exc:  # bad --data or --size: one line, no traceback
        sys.exit(f"bench_training: error: {exc}")


if __name__ == "__main__":
    cli()
