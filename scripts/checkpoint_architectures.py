"""Integration run: every tiny checkpoint architecture of tests/tiny_checkpoints.py through a real `dvc repro`.

For each architecture: a temporary git+dvc project (the tests' tiny params, two languages, one size, one seed,
one epoch), `dvc repro` end to end, a second `dvc repro` that must run nothing, and `crossling.classify` on the
trained joint model (full fine-tuning; the suite also runs the Llama-style decoder with LoRA and a killed-and-resumed
stage through dvc, tests/test_pipeline.py, and every architecture in-process, tests/test_train.py). The Hugging Face
Hub is never reached (HF_HUB_OFFLINE=1, a temporary HF_HOME). Prints one line per architecture (and writes a JSON
summary with --json); exits 1 if any fails.

    .venv/bin/python scripts/checkpoint_architectures.py [--only xlm_roberta ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

import tiny_checkpoints  # noqa: E402
from conftest import make_csv_source  # noqa: E402
from test_pipeline import BIN, dvc, make_project, sh, stages_run  # noqa: E402

ARCHITECTURES = tuple(tiny_checkpoints.BUILDERS)


def last_line(proc) -> str:
    return (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["?"])[-1]


def run_one(name: str, base: Path) -> dict:
    source = make_csv_source(base / "source", pool_per_class=20, test_per_class=6)
    checkpoint = tiny_checkpoints.BUILDERS[name](base / name)
    repo = make_project(base / "project", source, sizes=(12,), train__seeds=[1], train__device="cpu",
                        train__epochs=1, train__learning_rate=1e-3, model__checkpoint=str(checkpoint))
    start = time.perf_counter()
    first = dvc(repo, "repro", check=False)
    seconds = time.perf_counter() - start
    result = {"architecture": name, "repro_exit": first.returncode, "stages": len(stages_run(first.stdout)),
              "repro_seconds": round(seconds, 1)}
    if first.returncode != 0:
        return result | {"error": last_line(first)}
    second = dvc(repo, "repro", check=False)
    result["second_repro_stages"] = len(stages_run(second.stdout)) if second.returncode == 0 else None
    result["model_type"] = json.loads((repo / "models" / "base" / "config.json").read_text()).get("model_type")
    result["joint_largest_mean_macro_f1"] = json.loads((repo / "metrics" / "headline.json").read_text())[
        "joint_largest_mean_macro_f1"]
    label = sh(repo, str(BIN / "python"), "-m", "crossling.classify", "--model", "models/joint_12_seed1", "--json",
               "what a wonderful day", check=False, PYTHONPATH=str(repo / "src"))
    if label.returncode != 0:
        return result | {"error": f"classify: {last_line(label)}"}
    return result | {"classify_label": json.loads(label.stdout.splitlines()[0])["label"]}


def succeeded(result: dict) -> bool:
    return result["repro_exit"] == 0 and result.get("second_repro_stages") == 0 and "error" not in result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--json", type=Path, help="write the summary here too")
    args = parser.parse_args(argv)
    os.environ |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
    results = []
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"crossling-{name}-") as tmp:
            os.environ["HF_HOME"] = str(Path(tmp) / "hf_home")
            result = run_one(name, Path(tmp))
        results.append(result)
        print(f"{'ok  ' if succeeded(result) else 'FAIL'} {name}: " + ", ".join(f"{k}={v}" for k, v in result.items()
                                                              if k != "architecture"), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if all(succeeded(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
