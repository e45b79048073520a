"""train: fine-tune the base checkpoint on a sample, save the model and its test predictions.

`train_joint@<N>-<seed>` trains on the joint sample of size N (all languages); `train_mono@<L>-<seed>`
(`--language L`) on language L's part of the largest sample; `--seed` sets the fine-tuning seed. Both predict every language's test split in one pass.
Training uses the transformers Trainer (dynamic padding, length-grouped batches, bf16 on GPUs that
support it) and logs to dvclive. With train.processes > 1 the same command relaunches itself under
torchrun, and the Trainer runs data-parallel (DDP).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import asdict

import pandas as pd
import pyarrow as pa
import torch

from crossling.common import DataError, atomic_dir, log, log_params, read_parquet, run_stage, stage_parser, write_parquet
from crossling.config import Config, TrainConfig
from crossling.modeling import configure_threads, load_classifier, predict_proba, tokenize


def prediction_schema(labels: tuple[str, ...]) -> pa.Schema:
    return pa.schema([("language", pa.string()), ("test_row", pa.int32()), ("label_id", pa.int8()),
                      ("pred_id", pa.int8())] + [(f"prob_{name}", pa.float32()) for name in labels])


def training_frame(sample: pd.DataFrame, language: str | None) -> pd.DataFrame:
    if language is None:
        return sample
    part = sample[sample["language"] == language]
    if part.empty:
        raise DataError(f"language {language!r} has no rows in the sample; is it in data.languages?")
    return part


def training_arguments(train: TrainConfig, output_dir: str, steps_per_epoch: int, seed: int):
    from transformers import TrainingArguments

    gpu = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=output_dir, num_train_epochs=train.epochs, learning_rate=train.learning_rate,
        per_device_train_batch_size=train.batch_size, weight_decay=train.weight_decay,
        warmup_steps=train.warmup_ratio, lr_scheduler_type="linear", seed=seed, data_seed=seed,
        train_sampling_strategy="group_by_length", length_column_name="length",
        logging_strategy="steps", logging_steps=max(1, steps_per_epoch // 4), logging_first_step=True,
        save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
        bf16=gpu and torch.cuda.is_bf16_supported(), fp16=gpu and not torch.cuda.is_bf16_supported(),
        dataloader_pin_memory=gpu, use_cpu=not gpu,
        ddp_backend="gloo" if not gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )


def fine_tune(model, tokenizer, frame: pd.DataFrame, train: TrainConfig, live_dir: str, seed: int):
    from datasets import Dataset
    from dvclive import Live
    from transformers import DataCollatorWithPadding, Trainer
    from transformers.integrations import DVCLiveCallback

    ids = tokenize(tokenizer, frame["text"].tolist(), train.max_length)["input_ids"]
    dataset = Dataset.from_dict({"input_ids": ids, "labels": frame["label_id"].astype(int).tolist(),
                                 "length": [len(x) for x in ids]})
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps_per_epoch = -(-len(dataset) // (train.batch_size * world))
    with tempfile.TemporaryDirectory(prefix="crossling-trainer-") as scratch_dir:
        args = training_arguments(train, scratch_dir, steps_per_epoch, seed)
        callbacks = []
        if args.process_index == 0:
            callbacks.append(DVCLiveCallback(live=Live(live_dir, dvcyaml=False, save_dvc_exp=False)))
        trainer = Trainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer), callbacks=callbacks)
        result = trainer.train()
    log.info("trained on %d examples: %s", len(dataset), {k: round(v, 4) for k, v in result.metrics.items()})
    return args.process_index == 0


def predictions(model, tokenizer, test: pd.DataFrame, labels: tuple[str, ...], train: TrainConfig) -> pd.DataFrame:
    probs = predict_proba(model, tokenizer, test["text"].tolist(), train.max_length, train.eval_batch_size)
    out = pd.DataFrame({"language": test["language"].to_numpy(), "test_row": range(len(test)),
                        "label_id": test["label_id"].to_numpy(), "pred_id": probs.argmax(axis=1)})
    for i, name in enumerate(labels):
        out[f"prob_{name}"] = probs[:, i]
    return out


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
        relaunch_distributed(cfg.train.processes, args.argv)
        return
    seed = cfg.train.seeds[0] if args.seed is None else args.seed
    log_params(f"train {args.name}", train=asdict(cfg.train) | {"seed": seed}, data={"labels": cfg.data.labels},
               sample={"file": args.sample, "language": args.language})
    threads = configure_threads()
    frame = training_frame(read_parquet(args.sample, "sample"), args.language)
    test = read_parquet(args.test, "test split")
    model, tokenizer = load_classifier(args.base, cfg.data.labels)
    if cfg.train.max_length > model.config.max_position_embeddings:
        raise DataError(f"train.max_length={cfg.train.max_length} exceeds the base model's "
                        f"max_position_embeddings={model.config.max_position_embeddings}")
    log.info("%s: %d training examples (%s), %d threads", args.name, len(frame),
             frame.groupby("language").size().to_dict(), threads)
    if not fine_tune(model, tokenizer, frame, cfg.train, args.live, seed):
        return  # only the first process writes outputs
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    preds = predictions(model, tokenizer, test, cfg.data.labels, cfg.train)
    write_parquet(preds, prediction_schema(cfg.data.labels), args.predictions)
    acc = (preds["pred_id"] == preds["label_id"]).groupby(preds["language"]).mean().round(4).to_dict()
    log.info("%s: wrote %s and %s; test accuracy %s", args.name, args.out, args.predictions, acc)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="run name, e.g. joint_2000_seed42 or mono_english_seed42")
    parser.add_argument("--sample", required=True)
    parser.add_argument("--language", default=None, help="train on this language only (monolingual)")
    parser.add_argument("--seed", type=int, default=None, help="fine-tuning seed (default: first of train.seeds)")
    parser.add_argument("--base", default="models/base")
    parser.add_argument("--test", default="data/test.parquet")
    parser.add_argument("--out", required=True)
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--live", required=True, help="dvclive directory")
    run_stage("train", main, parser, argv)


if __name__ == "__main__":
    cli()
