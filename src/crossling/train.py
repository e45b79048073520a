"""train: fine-tune the base checkpoint on a sample and save the model (the predict stage scores it).

`train_joint@<N>-<seed>` trains on the joint sample of size N (all languages); `train_mono@<L>-<seed>`
(`--language L`) on language L's part of the largest sample; `--seed` sets the fine-tuning seed.
The transformers Trainer does the work: dynamic padding, length-grouped batches, gradient accumulation and
checkpointing, the dev split scored after every epoch (`compute_metrics`) and the best epoch kept
(`load_best_model_at_end`), a Trainer checkpoint per epoch under checkpoints/<run> from which an interrupted
run resumes (removed when the stage completes). With train.processes > 1 the same command relaunches
itself under torchrun, and the Trainer runs data-parallel (DDP).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from crossling import devices
from crossling.common import DataError, content_hash, log, log_params, read_json, read_parquet, run_stage, stage_parser
from crossling.config import Config, ConfigError, TrainConfig
from crossling.modeling import (INIT_RECORD, check_max_length, configure_threads, draw_weights, head_modules,
                                inference_device, load_classifier, one_device_per_process, provenance,
                                quiet_transformers, tokenize)

SAVE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Test hook: a training process kills itself (SIGKILL) once its checkpoint of this epoch is saved.
KILL_AFTER_EPOCH = "CROSSLING_TEST_KILL_AFTER_EPOCH"
RUN_RECORD = "crossling_run.json"


def training_frame(sample: pd.DataFrame, language: str | None, exclude: str | None = None) -> pd.DataFrame:
    """The sample, or one language's part of it, or every other language's (leave-one-language-out)."""
    if language is None and exclude is None:
        return sample
    named = language if exclude is None else exclude  # exclude wins (the stage never passes both)
    if named not in set(sample["language"]):
        raise DataError(f"language {named!r} has no rows in the sample; is it in data.languages?")
    keep = sample["language"] == language if exclude is None else sample["language"] != exclude
    return sample[keep]


def init_record(base_dir: Path) -> dict:
    """What the base stage created and from which checkpoint (its crossling_init.json)."""
    if not (base_dir / INIT_RECORD).exists():
        raise DataError(f"{base_dir} has no {INIT_RECORD}; re-run the base stage (dvc repro base)")
    record = read_json(base_dir / INIT_RECORD)
    if "init_seed" not in record:
        raise DataError(f"{base_dir / INIT_RECORD} is an older base stage's (no init_seed); re-run the base stage "
                        "(dvc repro base)")
    return record


def draw_created_weights(model, record: dict, seed: int) -> str:
    """Draw the weights the base stage created (not loaded; its `init_record`) anew from the fine-tuning seed,
    through the model's own initialization (`_init_weights`, whatever the module types), so seeds cover the
    initialization too."""
    torch.manual_seed(seed)
    if record["scratch"]:
        model.load_state_dict(type(model)(model.config).state_dict())
        return "all weights"
    draw_weights(model, record["created_weights"])
    modules = sorted({name.rsplit(".", 1)[0] for name in record["created_weights"]})
    return ", ".join(modules) or "nothing (the checkpoint had a head for these labels)"


def training_arguments(train: TrainConfig, output_dir: str, seed: int, device, precision: str, dev: bool):
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=output_dir, use_cpu=device.type == "cpu", report_to="none",  # DDP backend: accelerate's choice
        num_train_epochs=train.epochs, max_steps=train.max_steps or -1, learning_rate=train.learning_rate,
        per_device_train_batch_size=train.batch_size, weight_decay=train.weight_decay,
        # the training batch size: train.eval_batch_size belongs to the predict stage, and changing it must not retrain
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        activation_checkpointing=train.gradient_checkpointing,
        warmup_steps=train.warmup_ratio, lr_scheduler_type="linear", seed=seed, data_seed=seed,
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        logging_strategy="steps", logging_first_step=True, disable_tqdm=True,
        logging_nan_inf_filter=False,  # by default a NaN/inf step loss is replaced in the log (0.0 if it opens it)
        eval_strategy="epoch" if dev else "no", save_strategy="epoch", save_total_limit=1,
        load_best_model_at_end=train.select == "best", metric_for_best_model="macro_f1_mean",
        bf16=precision == "bf16", fp16=precision == "fp16", dataloader_pin_memory=device.type == "cuda",
    )
    if args.n_gpu > 1:  # CUDA was initialized before one_device_per_process could act
        raise RuntimeError(f"{args.n_gpu} GPUs visible to one process; set CUDA_VISIBLE_DEVICES to one GPU")
    return args


def epochs_begun(state) -> int:
    """The epoch in progress, counted from 1 as the run's summary counts them: train.max_steps can stop mid-epoch."""
    return math.ceil(round(state.epoch, 6))  # the Trainer's epoch is a sum of fractions: 2.0000000001 is epoch 2


def _clock(seconds: float) -> str:
    return "?" if seconds != seconds else str(timedelta(seconds=round(seconds)))  # h:mm:ss; nan: unknown


def callbacks(name: str, live_dir: str, languages: list[str], run_params: dict, first: bool):
    """Trainer callbacks: the loss at every optimizer step's log and dev macro-F1 per epoch into dvclive (replayed
    from the Trainer's log history after a resume), a progress line about every 5%, and the test hook."""
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        """dvclive at the Trainer's optimizer step, under the names evaluate reads (loss, epoch, dev/macro_f1_*).
        Not DVCLiveCallback: its step counts log calls; a resumed run loses what came before (a test shows both)."""

        def on_train_begin(self, args, state, control, **kwargs):
            from dvclive import Live

            self.next_report, self.loss = 0.0, float("nan")  # nan: no loss logged yet (a replay may log one)
            self.live = Live(live_dir, dvcyaml=False, save_dvc_exp=False)
            self.live.log_params(run_params)
            for entry in state.log_history:  # resumed: DVC removed the logs with the stage's outputs
                self.on_log(args, state, control, logs=entry, replay=True)
            self.start, self.done_before = time.monotonic(), state.global_step

        def on_log(self, args, state, control, logs=None, replay=False, **kwargs):
            self.live.step = logs["step"] if replay else state.global_step
            if "loss" in logs:
                self.loss = logs["loss"]
                for key in ("loss", "learning_rate", "epoch"):
                    if logs.get(key) is not None:
                        self.live.log_metric(key, logs[key])
            for key, value in logs.items():
                if key.startswith("eval_macro_f1_"):
                    self.live.log_metric(f"dev/{key.removeprefix('eval_')}", value)
            self.live.make_summary()

        def on_step_end(self, args, state, control, **kwargs):
            done, total = state.global_step, state.max_steps
            if done / total >= self.next_report or done == total:
                self.next_report = done / total + 0.05
                elapsed = time.monotonic() - self.start
                rate = (done - self.done_before) / elapsed if elapsed else 0.0
                left = (total - done) / rate if rate else float("nan")
                log.info("%s: step %d/%d (%.0f%%), %.2f steps/s (%.0f examples/s), %s elapsed, %s left, loss %s",
                         name, done, total, 100 * done / total, rate, rate * run_params["global_batch"],
                         _clock(elapsed), _clock(left),
                         "-" if self.loss != self.loss else f"{self.loss:.4f}")

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            log.info("epoch %d: mean dev macro-F1 %.4f (%s)", epochs_begun(state), metrics["eval_macro_f1_mean"],
                     ", ".join(f"{lang} {metrics[f'eval_macro_f1_{lang}']:.4f}" for lang in languages))

    class LogEpochEnds(TrainerCallback):
        """The loss at every epoch's end (the last optimizer step's too): the Trainer logs every logging_steps only (a
        test shows it), and a log spanning an epoch's checkpoint would average only its later steps once resumed."""

        def on_epoch_end(self, args, state, control, **kwargs):
            control.should_log = True  # on every process: the log gathers the loss across processes

    class FiniteLoss(TrainerCallback):
        """Stops at a logged loss that is NaN or infinite: under fp32/bf16 the weights are already poisoned. Under fp16
        the gradient scaler skips an overflowed step: one such log is reported; a second in a row, or non-finite
        weights, stop the run."""

        non_finite_logs = 0  # in a row

        def on_train_begin(self, args, state, control, **kwargs):
            for entry in state.log_history:  # resumed: the count goes on from the checkpoint's logs
                self.count(entry.get("loss"))

        def count(self, loss: float | None) -> None:
            if loss is not None:
                self.non_finite_logs = 0 if math.isfinite(loss) else self.non_finite_logs + 1

        def on_log(self, args, state, control, logs=None, model=None, **kwargs):
            loss = (logs or {}).get("loss")
            self.count(loss)
            if loss is None or not self.non_finite_logs:
                return
            if args.fp16 and self.non_finite_logs == 1 and all(bool(p.isfinite().all()) for p in model.parameters()):
                log.warning("%s: the training loss is %s at optimizer step %d: an fp16 overflow, whose step the "
                            "gradient scaler skipped; the run goes on, and stops if the next log is not finite either",
                            name, loss, state.global_step)
                return
            raise DataError(f"{name}: the training loss is {loss} at optimizer step {state.global_step}; lower "
                            f"train.learning_rate (now {args.learning_rate:g}), or train on fp32/bf16 if "
                            f"train.precision gave fp16")

    class KillAfterEpoch(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if round(state.epoch) >= int(os.environ[KILL_AFTER_EPOCH]):
                os.kill(os.getpid(), signal.SIGKILL)

    return ([LogEpochEnds(), FiniteLoss()] + ([Metrics()] if first else [])
            + ([KillAfterEpoch()] if os.environ.get(KILL_AFTER_EPOCH) else []))


def dev_metrics(languages: np.ndarray, n_labels: int):
    """compute_metrics: macro-F1 per dev language and their mean (the Trainer prefixes eval_)."""
    from sklearn.metrics import f1_score

    def compute(pred) -> dict[str, float]:
        # argmax of the probabilities, as the predict stage takes it (softmax can round near-ties to ties)
        guess = torch.softmax(torch.from_numpy(pred.predictions).float(), dim=-1).numpy().argmax(axis=1)
        scores = {f"macro_f1_{lang}": float(f1_score(pred.label_ids[languages == lang], guess[languages == lang],
                                                     labels=list(range(n_labels)), average="macro", zero_division=0))
                  for lang in dict.fromkeys(languages)}
        return scores | {"macro_f1_mean": sum(scores.values()) / len(scores)}

    return compute


def logits_only(output, labels):
    """preprocess_logits_for_metrics: only the logits gathered over the dev split, where encoder-decoders (T5) also
    return their encoder's states, which would be kept on the device for nothing."""
    return output[0] if isinstance(output, tuple) else output


def dataset(tokenizer, frame: pd.DataFrame, max_length: int):
    from datasets import Dataset

    ids = tokenize(tokenizer, frame["text"].tolist(), max_length)
    return Dataset.from_dict({"input_ids": ids, "labels": frame["label_id"].astype(int).tolist()})


def with_lora(model, lora, created: list[str]) -> torch.nn.Module:
    """Low-rank adapters on `lora.target_modules`; the classification head (every module beside the base model)
    and the modules of other weights the base stage created (BERT's pooler, absent from an MLM checkpoint) trained
    fully."""
    from peft import LoraConfig, get_peft_model

    head = head_modules(model)
    drawn = sorted({name.rsplit(".", 1)[0] for name in created if name.split(".")[0] not in head})
    trained_in_full = head + drawn
    targets = lora.target_modules
    if targets != "all-linear":  # module names: peft would take one name as a pattern, and skip a list's unknown names
        targets = [targets] if isinstance(targets, str) else list(targets)
        # peft skips a name found only in modules_to_save
        modules = {name: m for name, m in model.named_modules()
                   if not any(name == s or name.startswith(f"{s}.") for s in trained_in_full)}
        unknown = [t for t in targets if not any(m == t or m.endswith(f".{t}") for m in modules)]
        if unknown:
            linear = sorted({name.rsplit(".", 1)[-1] for name, m in modules.items() if isinstance(m, torch.nn.Linear)})
            raise ConfigError("train.lora.target_modules", f"{type(model).__name__} has no module {unknown[0]!r} "
                              "outside its classification head (trained in full); "
                              f"name its modules (linear: {', '.join(linear)}) or use all-linear")
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                        modules_to_save=trained_in_full, task_type="SEQ_CLS")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError("train.lora.target_modules", f"{str(exc).splitlines()[0][:300]}; name modules of "
                          f"{type(model).__name__} or use all-linear") from None


def run_fingerprint(cfg: Config, args, seed: int, run_params: dict, languages: list[str]) -> dict[str, str]:
    """What a Trainer checkpoint was made from, part by part: a checkpoint of other parts is never resumed from (the
    result would not be an uninterrupted run's). Files are hashed whole (same-size weights can differ)."""
    def text(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()

    # the params the training stages declare: not the seed list (the run's seed is here) nor predict's batch size
    params = {k: v for k, v in asdict(cfg.train).items() if k not in ("seeds", "eval_batch_size")}
    code = {Path(__file__)} | {Path(m.__file__) for name, m in list(sys.modules.items())
                               if name.startswith("crossling.") and getattr(m, "__file__", None)}
    base = Path(args.base)
    return {"params": text([params, list(cfg.data.labels), seed, args.language, args.exclude_language]),
            "setup": text(run_params), "sample": content_hash([Path(args.sample)]),
            "base": content_hash(sorted(p for p in base.rglob("*") if p.is_file()), base),
            "dev": content_hash([Path(args.dev) / f"{lang}.parquet" for lang in languages]) if args.dev else "",
            "code": content_hash(sorted(code, key=lambda p: p.name))}


def complete(checkpoint: Path, processes: int) -> bool:
    """The Trainer saves trainer_state.json after the weights, optimizer and RNG states, but not atomically, and
    under DDP with no barrier after the other processes' RNG states."""
    rng = ["rng_state.pth"] if processes == 1 else [f"rng_state_{i}.pth" for i in range(processes)]
    try:
        read_json(checkpoint / "trainer_state.json")
    except (OSError, ValueError):
        return False
    return all((checkpoint / name).is_file() for name in rng)


def resume_point(checkpoints: Path, parts: dict[str, str], processes: int) -> str | None:
    """On the first process: the last complete checkpoint of an interrupted run made from the same parts, else None
    and a clean directory; the decision is recorded for the other processes."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints

    record, resume = checkpoints / RUN_RECORD, None
    # emptied below: never a folder of anything else (--checkpoints ~/work, --name ..)
    foreign = sorted(p.name for p in (checkpoints.iterdir() if checkpoints.is_dir() else [])
                     if p.name != RUN_RECORD and not re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-\d+", p.name))
    if foreign:
        raise DataError(f"{checkpoints} holds {', '.join(foreign[:3])}, not only Trainer checkpoints; a run empties "
                        "its checkpoint folder: give --checkpoints a new or empty folder")
    try:
        made = read_json(record).get("parts")
    except (OSError, ValueError):
        made = None
    if made == parts:
        for last in reversed(sort_checkpoints(str(checkpoints))):
            if complete(Path(last), processes):
                resume = last
                break
            shutil.rmtree(last, ignore_errors=True)  # cut off while it was saved: never complete
    elif made:
        log.info("%s: not resumed: made from other %s; training afresh", checkpoints,
                 ", ".join(k for k in parts if made.get(k) != parts[k]))
    if resume is None:
        shutil.rmtree(checkpoints, ignore_errors=True)
        checkpoints.mkdir(parents=True)
    record.write_text(json.dumps({"parts": parts, "resume": resume}) + "\n")
    return resume


def fine_tune(model, tokenizer, frame: pd.DataFrame, dev: pd.DataFrame | None, cfg: Config, args, seed: int,
              device, precision: str, init: dict):
    """Train `model`; returns the trained model (LoRA merged) on the first process, None on the others."""
    from transformers import PrinterCallback, Trainer

    train = cfg.train
    # A classification head returns the batch's mean loss and ignores num_items_in_batch; a forward taking **kwargs
    # makes the Trainer take the loss as already normalized over the accumulated batches and every process: it would
    # neither divide it by the batches nor keep it from being multiplied by the processes (test_train.py's
    # test_accumulated_batches_train_on_the_mean_loss_of_one_batch_of_them_all, test_data_parallel_training_...).
    model.accepts_loss_kwargs = False
    if train.method == "lora":
        # peft draws the adapters from torch's generator: under fixed_init the same for every seed, as the new head
        # (from the base's record: model.init_seed is no param of this stage); else draw_created_weights has just
        # seeded it with the run's seed
        if train.fixed_init:
            torch.manual_seed(init["init_seed"])
        model = with_lora(model, train.lora, init["created_weights"])
    trainable, total = model.num_parameters(only_trainable=True), model.num_parameters()
    checkpoints = Path(args.checkpoints or f"checkpoints/{args.name}")
    targs = training_arguments(train, str(checkpoints), seed, device, precision, dev is not None)
    first = targs.process_index == 0
    run_params = provenance(targs.device, precision, init) | {
        "processes": targs.world_size, "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "global_batch": targs.train_batch_size * train.gradient_accumulation_steps * targs.world_size,
        "method": train.method, "seed": seed, "max_length": train.max_length}
    languages = list(dict.fromkeys(dev["language"])) if dev is not None else []
    with targs.main_process_first(local=False, desc="resume point"):  # the first decides: others' setups may differ
        resume = (resume_point(checkpoints, run_fingerprint(cfg, args, seed, run_params, languages), targs.world_size)
                  if first else read_json(checkpoints / RUN_RECORD)["resume"])
    dev_set, metrics = None, None
    if dev is not None:  # sorted by length: the batches (and so the scores) predict_proba would make
        dev_set = dataset(tokenizer, dev, train.max_length)
        order = np.argsort([len(x) for x in dev_set["input_ids"]], kind="stable")
        dev_set, metrics = dev_set.select(order), dev_metrics(dev["language"].to_numpy()[order], len(cfg.data.labels))
    class DevInOrder(Trainer):
        """train_sampling_strategy=group_by_length shuffles the evaluation batches too (a test shows it); the dev
        scores per language need the dev split in its (length-sorted) order."""

        def _get_eval_sampler(self, eval_dataset):
            return torch.utils.data.SequentialSampler(eval_dataset)

    trainer = DevInOrder(model=model, args=targs, train_dataset=dataset(tokenizer, frame, train.max_length),
                         eval_dataset=dev_set, compute_metrics=metrics, preprocess_logits_for_metrics=logits_only,
                         processing_class=tokenizer,
                         callbacks=callbacks(args.name, args.live, languages, run_params, first))
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the progress line reports
    # the Trainer's own count of optimizer steps per epoch (batches, accumulation, processes)
    planned = trainer.set_initial_training_values(targs, trainer.get_train_dataloader())
    per_epoch = planned[1]
    targs.logging_steps = max(1, per_epoch // 4)
    log.info("%s: training on %s (%s), precision %s, %d process(es), global batch %d, %d optimizer steps, %s "
             "fine-tuning, %d of %d parameters trained%s", args.name, targs.device, run_params["device_name"],
             precision, targs.world_size, run_params["global_batch"], planned[-1], train.method, trainable, total,
             f", resuming from {resume}" if resume else "")
    result = trainer.train(resume_from_checkpoint=resume)
    state = trainer.state
    if not first:
        return None
    kept_step = state.best_global_step if train.select == "best" else state.global_step
    kept = -(-kept_step // per_epoch)
    if train.select == "best":
        log.info("kept epoch %d of %d (best mean dev macro-F1 %.4f)", kept, -(-state.global_step // per_epoch),
                 state.best_metric)
    metrics_cb = next(c for c in trainer.callback_handler.callbacks if type(c).__name__ == "Metrics")
    metrics_cb.live.summary |= {"selected_epoch": kept, "selected_step": kept_step,
                                "optimizer_steps": state.global_step, "steps_per_epoch": per_epoch,
                                "train_examples": len(frame), "trainable_parameters": trainable,
                                "total_parameters": total}
    metrics_cb.live.end()
    log.info("%s: trained on %d examples: %s", args.name, len(frame),
             {k: round(v, 4) for k, v in result.metrics.items()})
    model = trainer.model
    if train.method == "lora":
        model = model.merge_and_unload()
    return model, checkpoints, run_params


def save_model(model, tokenizer, out: str | Path, save_dtype: str) -> None:
    """The model in train.save_dtype (cast in place) and its tokenizer: what predict and classify load."""
    model.to(SAVE_DTYPES[save_dtype]).save_pretrained(out)
    tokenizer.save_pretrained(out)


def relaunch_distributed(processes: int, argv: list[str]) -> None:
    """Re-run this exact command under torchrun; the Trainer then trains with DDP."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "crossling.train", *argv]
    log.info("train.processes=%d: %s", processes, " ".join(cmd))
    if returncode := subprocess.run(cmd, check=False).returncode:
        sys.exit(returncode)


def main(args, cfg: Config) -> None:
    if cfg.train.processes > 1 and "LOCAL_RANK" not in os.environ:
        devices.check_launch(cfg.train)  # found without initializing CUDA here: the launcher holds no GPU
        relaunch_distributed(cfg.train.processes, args.argv)
        return
    devices.claim_for_training(cfg.train, log)  # one free GPU, pinned before CUDA starts
    one_device_per_process(os.environ, cfg.train.processes)
    device, precision = inference_device(cfg.train.device, cfg.train.precision)  # a missing device fails at once
    devices.check_no_gpu_left_out(cfg.train.device, device)
    seed = cfg.train.seeds[0] if args.seed is None else args.seed
    log_params(f"train {args.name}", train=asdict(cfg.train) | {"seed": seed}, data={"labels": cfg.data.labels},
               sample={"file": args.sample, "language": args.language, "exclude_language": args.exclude_language})
    threads = configure_threads()
    quiet_transformers()
    frame = training_frame(read_parquet(args.sample, "sample"), args.language, args.exclude_language)
    model, tokenizer = load_classifier(args.base, cfg.data.labels)  # a base not there (not pulled) is named first
    init = init_record(Path(args.base))  # before any training: a base without it is refused with or without fixed_init
    if not cfg.train.fixed_init:
        log.info("%s: drew %s from seed %d", args.name, draw_created_weights(model, init, seed), seed)
    check_max_length(model, cfg.train.max_length)
    log.info("%s: %d training examples (%s), %d threads", args.name, len(frame),
             frame.groupby("language").size().to_dict(), threads)
    dev = None
    if args.dev:
        dev = pd.concat([read_parquet(Path(args.dev) / f"{lang}.parquet", f"dev split of {lang}")
                         for lang in dict.fromkeys(frame["language"])], ignore_index=True)
    elif cfg.train.select == "best":
        raise DataError("train.select=best needs the dev split (--dev data/dev); use train.select=last")
    trained = fine_tune(model, tokenizer, frame, dev, cfg, args, seed, device, precision, init)
    if trained is None:
        return  # only the first process writes outputs
    model, checkpoints, run_params = trained
    model.config.crossling = run_params  # provenance: predict copies it into the predictions' metadata
    # the model's first forward with labels sets it: a run resumed from its final checkpoint makes none
    model.config.problem_type = "single_label_classification"
    save_model(model, tokenizer, args.out, cfg.train.save_dtype)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the stage completed: nothing to resume
    log.info("%s: wrote %s (weights as %s)", args.name, args.out, cfg.train.save_dtype)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "name: run name, e.g. joint_2000_seed42", "sample", "base", "out",
                           "live: dvclive directory")
    parser.add_argument("--language", default=None, help="train on this language only (monolingual)")
    parser.add_argument("--exclude-language", default=None, help="train on every language but this one (leave one out)")
    parser.add_argument("--seed", type=int, default=None, help="fine-tuning seed (default: first of train.seeds)")
    parser.add_argument("--dev", default=None, help="directory of <language>.parquet dev splits, scored after every "
                                                    "epoch (train.select=best uses them)")
    parser.add_argument("--checkpoints", default=None, help="Trainer checkpoints to resume from (default: "
                                                            "checkpoints/<name>; removed when training completes; a "
                                                            "folder holding anything else is refused)")
    run_stage("train", main, parser, argv)


if __name__ == "__main__":
    cli()
