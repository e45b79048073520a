"""classify: label and class probabilities from a trained model, for texts given as arguments or a file.

    python -m crossling.classify --model models/joint_2000_seed42 "What a great day" "Quel désastre"
    python -m crossling.classify --model models/mono_english_seed42 --file texts.txt --json

Needs only the model directory (what `dvc pull models/<name>` fetches): labels come from its config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from crossling.common import DataError, log, setup_logging
from crossling.config import DEVICES, PRECISIONS, ConfigError
from crossling.devices import check_no_gpu_left_out
from crossling.modeling import (check_max_length, configure_threads, inference_device, load_classifier, predict_proba,
                                quiet_transformers, usable_length)

OPTIONS = {"train.device": "--device", "train.precision": "--precision"}  # a ConfigError's field -> option


def read_texts(args: argparse.Namespace) -> list[str]:
    texts = list(args.texts)
    for i, text in enumerate(texts, 1):
        try:  # Python keeps an argument's invalid bytes as surrogates, which the tokenizer cannot take
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"text argument {i} is not valid UTF-8 (byte {ord(text[exc.start]) - 0xDC00:#04x} at "
                            f"character {exc.start}); pass UTF-8 text, or a UTF-8 file with --file") from None
    if args.file:
        path = Path(args.file)
        try:  # lines end at \n (or \r\n) only: a text may hold U+2028, a form feed or \r, which text mode cuts at
            lines = path.read_bytes().decode("utf-8-sig").split("\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else exc.reason
            raise DataError(f"--file {path}: cannot be read as UTF-8 text ({why})") from None
        texts += [line.removesuffix("\r") for line in lines if line.strip()]
    if not texts:
        raise DataError("no texts: pass them as arguments or with --file (one text per line)")
    return texts


def predict(model_dir: Path, texts: list[str], max_length: int | None = None, batch_size: int = 256,
            device: str = "auto", precision: str = "auto") -> list[dict]:
    dev, precision = inference_device(device, precision)
    check_no_gpu_left_out(device, dev)
    model, tokenizer = load_classifier(model_dir)
    if not hasattr(model.config, "crossling"):  # the train stage records how it trained; models/base has no record
        log.warning("%s holds no crossling training record: if it is the base stage's output, its classification "
                    "head is untrained and these labels mean nothing", model_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if max_length is None:  # the length it was trained with (128 for a model from elsewhere), within its limit
        max_length = min(getattr(model.config, "crossling", {}).get("max_length", 128), usable_length(model) or 128)
    check_max_length(model, max_length, "--max-length")
    probs = predict_proba(model, tokenizer, texts, max_length, batch_size, dev, precision)
    return [{"text": text, "label": labels[int(p.argmax())],
             "probabilities": {name: round(float(p[i]), 4) for i, name in enumerate(labels)}}
            for text, p in zip(texts, probs)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m crossling.classify", description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--model", required=True, help="a model directory, e.g. models/joint_2000_seed42")
    parser.add_argument("--file", help="a UTF-8 file with one text per line")
    parser.add_argument("--max-length", type=int, help="longest input in tokens (default: the model's "
                                                          "train.max_length, else 128, within the model's limit)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="as train.device (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="as train.precision (default: auto)")
    args = parser.parse_args(argv)
    setup_logging("classify")
    quiet_transformers()
    try:
        configure_threads()
        results = predict(Path(args.model), read_texts(args), args.max_length, device=args.device,
                          precision=args.precision)
    except (ConfigError, DataError) as exc:  # a ConfigError is named after the train.* param; here it is the option
        if isinstance(exc, ConfigError):
            exc = f"{OPTIONS.get(exc.field, exc.field)}: {exc.message}"
        print(f"crossling.classify: error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        for r in results:
            if args.json:
                print(json.dumps(r, ensure_ascii=False))
            else:
                probs = "  ".join(f"{k}={v:.3f}" for k, v in r["probabilities"].items())
                print(f"{r['label']:<10} {probs}  {r['text']}")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (| head): not an error here, so exit 0
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
