"""predict: one trained model's class probabilities for every test text, in one length-sorted pass.

`predict_joint@<N>-<seed>` and `predict_mono@<L>-<seed>` read only the saved model and the test split, so
changing `train.eval_batch_size` or the test split re-runs prediction and evaluation, never training.
It runs on the device and in the precision of `train.device` / `train.precision`, from the weights as
saved (`train.save_dtype`): the predictions are those of the versioned model.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from crossling.common import PROVENANCE_KEY, log, log_params, read_parquet, run_stage, stage_parser, write_parquet
from crossling.config import Config, TrainConfig
from crossling.devices import check_no_gpu_left_out
from crossling.modeling import (check_max_length, configure_threads, inference_device, load_classifier, predict_proba,
                                provenance, quiet_transformers)


def prediction_schema(labels: tuple[str, ...]) -> pa.Schema:
    return pa.schema([("language", pa.string()), ("test_row", pa.int32()), ("label_id", pa.int8()),
                      ("pred_id", pa.int8())] + [(f"prob_{name}", pa.float32()) for name in labels])


def predictions(model, tokenizer, test: pd.DataFrame, labels: tuple[str, ...], train: TrainConfig,
                device, precision: str) -> pd.DataFrame:
    probs = predict_proba(model, tokenizer, test["text"].tolist(), train.max_length, train.eval_batch_size,
                          device, precision)
    return pd.DataFrame({"language": test["language"].to_numpy(), "test_row": range(len(test)),
                         "label_id": test["label_id"].to_numpy(), "pred_id": probs.argmax(axis=1),
                         **{f"prob_{name}": probs[:, i] for i, name in enumerate(labels)}})


def main(args, cfg: Config) -> None:
    log_params(f"predict {args.model}", data={"labels": cfg.data.labels},
               train={k: getattr(cfg.train, k) for k in ("max_length", "eval_batch_size", "device", "precision")})
    device, precision = inference_device(cfg.train.device, cfg.train.precision)
    check_no_gpu_left_out(cfg.train.device, device)
    configure_threads()
    quiet_transformers()
    test = read_parquet(args.test, "test split")
    model, tokenizer = load_classifier(args.model, cfg.data.labels)
    check_max_length(model, cfg.train.max_length)
    preds = predictions(model, tokenizer, test, cfg.data.labels, cfg.train, device, precision)
    made = getattr(model.config, "crossling", {})  # the training run's provenance, saved in the model's config
    origin = provenance(device, precision, {"checkpoint": made.get("checkpoint"), "commit": made.get("checkpoint_commit")})
    origin |= {"model": args.model, "batch_size": cfg.train.eval_batch_size, "trained_with": made}
    write_parquet(preds, prediction_schema(cfg.data.labels), args.out,
                  {PROVENANCE_KEY: json.dumps(origin, sort_keys=True).encode()})
    acc = (preds["pred_id"] == preds["label_id"]).groupby(preds["language"], sort=False).mean().round(4).to_dict()
    log.info("%s on %s (%s): wrote %s; test accuracy %s", args.model, device, precision, args.out, acc)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "model: a trained model directory", "test", "out")
    run_stage("predict", main, parser, argv)


if __name__ == "__main__":
    cli()
