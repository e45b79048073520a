"""train: fine-tune the base checkpoint on a sample and save the model (the predict stage scores it).

`train_joint@<N>-<seed>` trains on the joint sample of size N (all languages); `train_mono@<L>-<seed>`
(`--language L`) on language L's part of the largest sample; `--seed` sets the fine-tuning seed.
Training uses the transformers Trainer (dynamic padding, length-grouped batches) on the device and in the
precision of `train.device` / `train.precision`, prints its progress, and logs to dvclive at the optimizer
step; with `--dev` it scores the dev split after every epoch. With train.processes > 1 the same command
relaunches itself under torchrun, and the Trainer runs data-parallel (DDP).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

from pathlib import Path

import pandas as pd
import torch

from crossling import devices
from crossling.common import DataError, atomic_dir, log, log_params, read_json, read_parquet, run_stage, stage_parser
from crossling.config import Config, ConfigError, TrainConfig
from crossling.modeling import (INIT_RECORD, check_device, choose_precision, configure_threads, device_info,
                                load_classifier, one_device_per_process, predict_proba, quiet_transformers, tokenize)


SAVE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def training_frame(sample: pd.DataFrame, language: str | None, exclude: str | None = None) -> pd.DataFrame:
    """The sample, or one language's part of it, or every other language's (leave-one-language-out)."""
    if exclude is not None:
        if exclude not in set(sample["language"]):
            raise DataError(f"language {exclude!r} has no rows in the sample; is it in data.languages?")
        return sample[sample["language"] != exclude]
    if language is None:
        return sample
    part = sample[sample["language"] == language]
    if part.empty:
        raise DataError(f"language {language!r} has no rows in the sample; is it in data.languages?")
    return part


def redraw_created_weights(model, base_dir: Path, seed: int) -> str:
    """Draw the weights the base stage created (not loaded) anew from the fine-tuning seed, so seeds cover
    the initialization too: the whole model for scratch, else the new head's linear layers (BERT's init)."""
    if not (base_dir / INIT_RECORD).exists():
        raise DataError(f"{base_dir} has no {INIT_RECORD}; re-run the base stage (dvc repro base)")
    record = read_json(base_dir / INIT_RECORD)
    torch.manual_seed(seed)
    if record["scratch"]:
        model.load_state_dict(type(model)(model.config).state_dict())
        return "all weights"
    modules = sorted({name.rsplit(".", 1)[0] for name in record["created_weights"]})
    for name in modules:
        module = model.get_submodule(name)
        if not isinstance(module, torch.nn.Linear):
            raise DataError(f"{base_dir}: created weight {name} is a {type(module).__name__}, which crossling cannot "
                            "re-draw; set train.fixed_init: true to keep the base stage's weights")
        torch.nn.init.normal_(module.weight, std=model.config.initializer_range)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    return ", ".join(modules) or "nothing (the checkpoint had a head for these labels)"


def device_and_precision(train: TrainConfig):
    """The device the Trainer (through accelerate) picks, checked against train.device, and the precision for it."""
    from transformers import TrainingArguments

    with tempfile.TemporaryDirectory(prefix="crossling-probe-") as probe_dir:
        found = TrainingArguments(output_dir=probe_dir, use_cpu=train.device == "cpu", report_to="none").device
    device = check_device(train.device, found)
    return device, choose_precision(train.precision, device_info(device))


def training_arguments(train: TrainConfig, output_dir: str, steps_per_epoch: int, seed: int, device, precision: str):
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=output_dir, use_cpu=device.type == "cpu", report_to="none",  # DDP backend: accelerate's choice
        num_train_epochs=train.epochs, max_steps=train.max_steps or -1, learning_rate=train.learning_rate,
        per_device_train_batch_size=train.batch_size, weight_decay=train.weight_decay,
        warmup_steps=train.warmup_ratio, lr_scheduler_type="linear", seed=seed, data_seed=seed,
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        length_column_name="length",
        # the classification loss is a mean per example: averaging "tokens" across processes would multiply it
        # (and the gradients) by the number of processes
        average_tokens_across_devices=False,
        logging_strategy="steps", logging_steps=max(1, steps_per_epoch // 4), logging_first_step=True,
        save_strategy="no", eval_strategy="no", disable_tqdm=True,
        bf16=precision == "bf16", fp16=precision == "fp16", dataloader_pin_memory=device.type == "cuda",
    )
    if args.device.type != device.type:
        raise RuntimeError(f"the Trainer chose {args.device}, the probe {device}")  # never expected
    if args.n_gpu > 1:  # CUDA was initialized before one_device_per_process could act
        raise RuntimeError(f"{args.n_gpu} GPUs visible to one process; set CUDA_VISIBLE_DEVICES to one GPU")
    return args


def log_last_step():
    """A callback that logs the loss at the last optimizer step too: logging_steps need not divide the total."""
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == state.max_steps:
                control.should_log = True

    return LogLastStep()


class TrainingMonitor:
    """Progress lines in the stage log and dvclive metrics at the real optimizer step (first process only)."""

    def __init__(self, name: str, live_dir: str, steps_per_epoch: int, dev_scorer=None, every: float = 0.05,
                 min_seconds: float = 5.0):
        from dvclive import Live

        self.name, self.dev_scorer, self.every, self.min_seconds = name, dev_scorer, every, min_seconds
        self.steps_per_epoch = steps_per_epoch
        self.live = Live(live_dir, dvcyaml=False, save_dvc_exp=False)
        self.loss = float("nan")
        self.last_line = 0.0

    def callback(self):
        from transformers import TrainerCallback

        monitor = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                monitor.start, monitor.next_report = time.monotonic(), 0.0

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    monitor.loss = logs["loss"]
                    monitor.log(state.global_step, loss=logs["loss"], learning_rate=logs.get("learning_rate"),
                                epoch=logs.get("epoch"))

            def on_step_end(self, args, state, control, **kwargs):
                done = state.global_step / state.max_steps
                now = time.monotonic()
                if (done >= monitor.next_report and now - monitor.last_line >= monitor.min_seconds
                        or state.global_step == state.max_steps):
                    monitor.next_report, monitor.last_line = done + monitor.every, now
                    monitor.progress(state.global_step, state.max_steps, args.train_batch_size * args.world_size)

            def on_epoch_end(self, args, state, control, model=None, **kwargs):
                if monitor.dev_scorer is not None:
                    scores = monitor.dev_scorer(model, math.ceil(state.epoch))
                    monitor.log(state.global_step, **{f"dev/macro_f1_{lang}": f1 for lang, f1 in scores.items()})

            def on_train_end(self, args, state, control, model=None, **kwargs):
                if monitor.dev_scorer is not None:
                    kept = monitor.dev_scorer.finish(model, math.ceil(state.epoch))
                    per_epoch = monitor.steps_per_epoch
                    monitor.live.summary |= {"selected_epoch": kept,
                                             "selected_step": min(kept * per_epoch, state.global_step),
                                             "optimizer_steps": state.global_step, "steps_per_epoch": per_epoch}
                monitor.live.end()

        return Callback()

    def log(self, step: int, **metrics) -> None:
        self.live.step = step
        for key, value in metrics.items():
            if value is not None:
                self.live.log_metric(key, value)
        self.live.make_summary()

    def progress(self, step: int, total: int, global_batch: int) -> None:
        elapsed = time.monotonic() - self.start
        rate = step / elapsed if elapsed else 0.0
        left = (total - step) / rate if rate else float("nan")
        log.info("%s: step %d/%d (%.0f%%), %.2f steps/s (%.0f examples/s), %s elapsed, %s left, loss %s",
                 self.name, step, total, 100 * step / total, rate, rate * global_batch,
                 _clock(elapsed), _clock(left), "-" if self.loss != self.loss else f"{self.loss:.4f}")


class DevSelector:
    """Scores the dev split of the training languages after each epoch; keeps the best epoch's weights in memory."""

    def __init__(self, tokenizer, dev: pd.DataFrame, train: TrainConfig, n_labels: int, device, precision: str):
        self.tokenizer, self.dev, self.train, self.n_labels = tokenizer, dev, train, n_labels
        self.device, self.precision = device, precision
        self.best_f1, self.best_epoch, self.best_state = -1.0, None, None

    def __call__(self, model, epoch: int) -> dict[str, float]:
        from sklearn.metrics import f1_score

        # the training batch size: train.eval_batch_size belongs to the predict stage, and changing it must not retrain
        probs = predict_proba(model, self.tokenizer, self.dev["text"].tolist(), self.train.max_length,
                              self.train.batch_size, self.device, self.precision)
        model.train()
        pred, gold = probs.argmax(axis=1), self.dev["label_id"].to_numpy()
        scores = {lang: float(f1_score(gold[idx], pred[idx], labels=list(range(self.n_labels)), average="macro",
                                       zero_division=0))
                  for lang, idx in self.dev.groupby("language", sort=False).indices.items()}
        mean = sum(scores.values()) / len(scores)
        log.info("epoch %d: mean dev macro-F1 %.4f (%s)", epoch, mean,
                 ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if self.train.select == "best" and mean > self.best_f1:
            self.best_f1, self.best_epoch = mean, epoch
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return scores | {"mean": mean}

    def finish(self, model, last_epoch: int) -> int:
        """The epoch whose weights the model keeps: the best by mean dev macro-F1 (restored here), or the last."""
        if self.train.select == "last":
            return last_epoch
        model.load_state_dict(self.best_state)
        log.info("kept epoch %d of %d (best mean dev macro-F1 %.4f)", self.best_epoch, last_epoch, self.best_f1)
        return self.best_epoch


def _clock(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def fine_tune(model, tokenizer, frame: pd.DataFrame, train: TrainConfig, name: str, live_dir: str, seed: int,
              device, precision: str, dev_selector: DevSelector | None = None) -> bool:
    """Train `model` in place; returns whether this is the first process (the one that writes outputs)."""
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer

    ids = tokenize(tokenizer, frame["text"].tolist(), train.max_length)["input_ids"]
    dataset = Dataset.from_dict({"input_ids": ids, "labels": frame["label_id"].astype(int).tolist(),
                                 "length": [len(x) for x in ids]})
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps_per_epoch = -(-len(dataset) // (train.batch_size * world))
    with tempfile.TemporaryDirectory(prefix="crossling-trainer-") as scratch_dir:
        args = training_arguments(train, scratch_dir, steps_per_epoch, seed, device, precision)
        first = args.process_index == 0
        log.info("%s: training on %s (%s), precision %s, %d process(es), global batch %d, %d optimizer steps", name,
                 args.device, device_info(args.device).name, precision, args.world_size,
                 args.train_batch_size * args.world_size, train.max_steps or steps_per_epoch * train.epochs)
        # every process: logging gathers the loss across processes
        callbacks = [log_last_step()] + ([TrainingMonitor(name, live_dir, steps_per_epoch, dev_selector).callback()] if first else [])
        trainer = Trainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer), callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)  # it prints every log dict; TrainingMonitor reports progress
        result = trainer.train()
    log.info("%s: trained on %d examples: %s", name, len(dataset),
             {k: round(v, 4) for k, v in result.metrics.items()})
    return first


def check_processes(processes: int, device) -> None:
    """One process per device: refuse what torchrun would only fail at with a traceback per rank."""
    if device.type == "mps":
        raise ConfigError("train.processes", f"{processes} processes, but Apple MPS is one device; use 1")
    if device.type == "cuda" and torch.cuda.device_count() < processes:
        raise ConfigError("train.processes", f"{processes} processes, but {torch.cuda.device_count()} GPU(s) are "
                          "visible; use at most that many (CUDA_VISIBLE_DEVICES)")


def relaunch_distributed(processes: int, argv: list[str]) -> None:
    """Re-run this exact command under torchrun; the Trainer then trains with DDP."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "crossling.train", *argv]
    log.info("train.processes=%d: %s", processes, " ".join(cmd))
    returncode = subprocess.run(cmd, check=False).returncode
    if returncode:
        sys.exit(returncode)


def main(args, cfg: Config) -> None:
    if cfg.train.processes > 1 and "LOCAL_RANK" not in os.environ:
        devices.check_launch(cfg.train)  # found without initializing CUDA here: the launcher holds no GPU
        relaunch_distributed(cfg.train.processes, args.argv)
        return
    devices.claim_for_training(cfg.train, args.live, log)  # one free GPU, pinned before CUDA starts
    one_device_per_process(os.environ, cfg.train.processes)
    device, precision = device_and_precision(cfg.train)  # before any work: a missing device fails at once
    seed = cfg.train.seeds[0] if args.seed is None else args.seed
    log_params(f"train {args.name}", train=asdict(cfg.train) | {"seed": seed}, data={"labels": cfg.data.labels},
               sample={"file": args.sample, "language": args.language, "exclude_language": args.exclude_language})
    threads = configure_threads()
    quiet_transformers()
    frame = training_frame(read_parquet(args.sample, "sample"), args.language, args.exclude_language)
    model, tokenizer = load_classifier(args.base, cfg.data.labels)
    if not cfg.train.fixed_init:
        log.info("%s: drew %s from seed %d", args.name, redraw_created_weights(model, Path(args.base), seed), seed)
    if cfg.train.max_length > model.config.max_position_embeddings:
        raise DataError(f"train.max_length={cfg.train.max_length} exceeds the base model's "
                        f"max_position_embeddings={model.config.max_position_embeddings}")
    log.info("%s: %d training examples (%s), %d threads", args.name, len(frame),
             frame.groupby("language").size().to_dict(), threads)
    selector = None
    if args.dev:
        languages = list(dict.fromkeys(frame["language"]))
        dev = pd.concat([read_parquet(Path(args.dev) / f"{lang}.parquet", f"dev split of {lang}") for lang in languages],
                        ignore_index=True)
        selector = DevSelector(tokenizer, dev, cfg.train, len(cfg.data.labels), device, precision)
    elif cfg.train.select == "best":
        raise DataError("train.select=best needs the dev split (--dev data/dev); use train.select=last")
    if not fine_tune(model, tokenizer, frame, cfg.train, args.name, args.live, seed, device, precision, selector):
        return  # only the first process writes outputs
    save_model(model, tokenizer, args.out, cfg.train.save_dtype)
    log.info("%s: wrote %s (weights as %s)", args.name, args.out, cfg.train.save_dtype)


def save_model(model, tokenizer, out: str | Path, save_dtype: str) -> None:
    """The model directory a training stage writes: weights cast to train.save_dtype (in place), and the tokenizer."""
    with atomic_dir(out) as tmp:
        model.to(SAVE_DTYPES[save_dtype]).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="run name, e.g. joint_2000_seed42 or mono_english_seed42")
    parser.add_argument("--sample", required=True)
    parser.add_argument("--language", default=None, help="train on this language only (monolingual)")
    parser.add_argument("--exclude-language", default=None, help="train on every language but this one (leave one out)")
    parser.add_argument("--seed", type=int, default=None, help="fine-tuning seed (default: first of train.seeds)")
    parser.add_argument("--base", default="models/base")
    parser.add_argument("--dev", default=None, help="directory of <language>.parquet dev splits, scored after every "
                                                    "epoch (train.select=best uses them)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--live", required=True, help="dvclive directory")
    run_stage("train", main, parser, argv)


if __name__ == "__main__":
    cli()
