"""Does length-grouped batching change what the model learns? macro-F1 per language, with and without.

    python benchmarks/group_by_length.py --data <local copy of the data>      # = make bench-grouping

The offline grid's largest joint model (2000 texts per language, the scratch DistilBERT, lr 3e-4,
warmup 10%, 5 epochs, batch 32) is trained once per seed and setting, as the train and predict stages
do it (each seed also re-draws the weights), and scored on the dev split and on the test split of
every language. The default is chosen on dev (the protocol: choose settings on dev, report test):
per language and split, the mean and sample standard deviation over seeds, and the paired difference
(grouped - random, paired by seed) with a t-interval over the seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import PARAMS, committed_params_file, crossling_fine_tune, prepare, quiet  # noqa: E402

SPLITS = ("dev", "test")


def score(workdir: Path, group_by_length: bool, seed: int, lr: float, warmup: float, epochs: int,
          params: Path = PARAMS) -> dict:
    from sklearn.metrics import f1_score

    from crossling.common import read_parquet
    from crossling.config import load_config
    from crossling.modeling import load_classifier
    from crossling.modeling import inference_device
    from crossling.predict import predictions
    from crossling.train import draw_created_weights, init_record

    cfg = load_config(params)
    train = replace(cfg.train, learning_rate=lr, warmup_ratio=warmup, epochs=epochs, group_by_length=group_by_length,
                    select="last")
    device, precision = inference_device(train.device, train.precision)
    model, tokenizer = load_classifier(workdir / "base", cfg.data.labels)
    draw_created_weights(model, init_record(workdir / "base"), seed)
    start = time.perf_counter()
    with contextlib.chdir(workdir):  # the Trainer's checkpoints and dvclive's files stay in the temporary directory
        model = crossling_fine_tune(model, tokenizer, read_parquet("sample.parquet", "sample"), train,
                                    f"grouped={group_by_length}", seed, params)
    seconds = time.perf_counter() - start
    labels = list(range(len(cfg.data.labels)))
    out = {"train_seconds": seconds}
    for split in SPLITS:
        preds = predictions(model, tokenizer, read_parquet(workdir / f"{split}.parquet", split), cfg.data.labels,
                            train, device, precision)
        out[f"{split}_macro_f1"] = {
            lang: float(f1_score(part["label_id"], part["pred_id"], labels=labels, average="macro", zero_division=0))
            for lang, part in preds.groupby("language", sort=False)}
    return out


def compare(runs: dict, seeds: list[int], key: str, lang: str) -> dict:
    """Mean and sample std of each setting over seeds, and the paired difference with a 95% t-interval;
    lang "mean" is the mean over languages of each run."""
    def f1(grouped: bool) -> np.ndarray:
        per_seed = [runs[grouped, s][key] for s in seeds]
        return np.array([np.mean(list(r.values())) if lang == "mean" else r[lang] for r in per_seed])

    on, off = f1(True), f1(False)
    diff = on - off
    half = stats.t.ppf(0.975, len(seeds) - 1) * diff.std(ddof=1) / np.sqrt(len(seeds))
    return {"grouped_mean": on.mean(), "grouped_std": on.std(ddof=1), "random_mean": off.mean(),
            "random_std": off.std(ddof=1), "paired_difference_mean": diff.mean(),
            "paired_difference_std": diff.std(ddof=1), "paired_difference_ci_low": diff.mean() - half,
            "paired_difference_ci_high": diff.mean() + half}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "group_by_length.json")
    parser.add_argument("--params", type=Path, help="params file (default: params.yaml as committed at HEAD)")
    args = parser.parse_args()
    args.out = args.out.resolve()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="crossling-grouping-") as tmp:
        if args.params:
            params, commit = args.params.resolve(), None
        else:
            params, commit = committed_params_file(Path(tmp), "group_by_length")
        setup = prepare(args.data.resolve(), args.size, Path(tmp), params=params)
        for grouped in (True, False):
            for seed in args.seeds:
                runs[grouped, seed] = score(Path(tmp), grouped, seed, args.lr, args.warmup_ratio, args.epochs,
                                            params)
                print(f"group_by_length={grouped} seed={seed}: {runs[grouped, seed]}", flush=True)

    languages = setup["languages"]
    table = {split: {lang: compare(runs, args.seeds, f"{split}_macro_f1", lang) for lang in languages + ["mean"]}
             for split in SPLITS}
    seconds = {g: float(np.mean([runs[g, s]["train_seconds"] for s in args.seeds])) for g in (True, False)}
    for split in SPLITS:
        print(f"\n{split} macro-F1 over seeds {args.seeds} (mean +/- sample std); difference = grouped - random, "
              "paired by seed, with its 95% t-interval over the seeds")
        print(f"{'language':<10} {'grouped':>16} {'random':>16} {'difference':>10} {'95% interval':>18}")
        for lang, t in table[split].items():
            print(f"{lang:<10} {t['grouped_mean']:>9.3f} +/- {t['grouped_std']:.3f} {t['random_mean']:>9.3f} +/- "
                  f"{t['random_std']:.3f} {t['paired_difference_mean']:>+10.3f} "
                  f"[{t['paired_difference_ci_low']:+.3f}, {t['paired_difference_ci_high']:+.3f}]")
    print(f"mean training time: grouped {seconds[True]:.0f} s, random {seconds[False]:.0f} s")
    args.out.write_text(json.dumps({"command": " ".join(["python", "benchmarks/group_by_length.py", *sys.argv[1:]]),
                                    "setup": setup | {"seeds": args.seeds, "epochs": args.epochs, "lr": args.lr,
                                                      "params": str(args.params) if args.params else
                                                      f"params.yaml at {commit}"},
                                    "per_language": table, "train_seconds": {str(k): v for k, v in seconds.items()},
                                    "runs": {f"grouped={g},seed={s}": r for (g, s), r in runs.items()}}, indent=2) + "\n")
    print(f"wrote {args.out}")


def cli() -> None:
    from crossling.common import DataError
    from crossling.config import ConfigError

    try:
        main()
    except (ConfigError, DataError) as exc:  # bad --data or --size: one line, no traceback
        sys.exit(f"group_by_length: error: {exc}")


if __name__ == "__main__":
    cli()
