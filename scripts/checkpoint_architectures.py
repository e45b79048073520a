"""Integration run: every tiny checkpoint architecture of tests/tiny_checkpoints.py through a real `dvc repro`.

For each architecture: a temporary git+dvc project (the tests' tiny params, two languages, one size, one seed,
one epoch), `dvc repro` end to end, a second `dvc repro` that must run nothing, and `crossling.classify` on the
trained joint model. The suite runs the Llama-style decoder this way (tests/test_pipeline.py, with LoRA and a
killed-and-resumed stage) and every architecture in-process (tests/test_train.py); this script is the slower
whole-pipeline check of the others. Prints one line per architecture and a JSON summary; exits 1 if any fails.

    .venv/bin/python scripts/checkpoint_architectures.py [--only xlm_roberta ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

import tiny_checkpoints  # noqa: E402
from conftest import make_csv_source  # noqa: E402
from test_pipeline import BIN, dvc, make_project, sh, stages_run  # noqa: E402

ARCHITECTURES = ("xlm_roberta", "deberta_v2", "modernbert_bare", "llama_without_pad", "sentencepiece_only")


def run_one(name: str, base: Path) -> dict:
    source = make_csv_source(base / "source", pool_per_class=20, test_per_class=6)
    checkpoint = getattr(tiny_checkpoints, name)(base / name)
    repo = make_project(base / "project", source, sizes=(12,), train__seeds=[1], train__device="cpu",
                        train__epochs=1, train__learning_rate=1e-3, model__checkpoint=str(checkpoint))
    start = time.perf_counter()
    first = dvc(repo, "repro", check=False)
    seconds = time.perf_counter() - start
    result = {"architecture": name, "repro_exit": first.returncode, "stages": len(stages_run(first.stdout)),
              "repro_seconds": round(seconds, 1)}
    if first.returncode != 0:
        return result | {"error": (first.stderr.strip().splitlines() or ["?"])[-1]}
    second = dvc(repo, "repro")
    config = json.loads((repo / "models" / "base" / "config.json").read_text())
    label = sh(repo, str(BIN / "python"), "-m", "crossling.classify", "--model", "models/joint_12_seed1", "--json",
               "what a wonderful day", PYTHONPATH=str(repo / "src"))
    headline = json.loads((repo / "metrics" / "headline.json").read_text())
    return result | {"model_type": config.get("model_type"), "second_repro_stages": len(stages_run(second.stdout)),
                     "classify_label": json.loads(label.stdout.splitlines()[0])["label"],
                     "joint_largest_mean_macro_f1": headline["joint_largest_mean_macro_f1"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--json", type=Path, help="write the summary here too")
    args = parser.parse_args(argv)
    results = []
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"crossling-{name}-") as tmp:
            result = run_one(name, Path(tmp))
        results.append(result)
        ok = result["repro_exit"] == 0 and result.get("second_repro_stages") == 0
        print(f"{'ok  ' if ok else 'FAIL'} {name}: " + ", ".join(f"{k}={v}" for k, v in result.items()
                                                              if k != "architecture"), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    failed = [r for r in results if r["repro_exit"] != 0 or r.get("second_repro_stages") != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
