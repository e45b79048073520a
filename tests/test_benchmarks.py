"""The benchmark scripts run against the package as it is: three of them still called functions that a refactor
of the train stage had removed, and nothing noticed until someone ran them."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_csv_source, tiny_params, write_params

SCRIPTS = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")])


def is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Data in the upstream CSV layout and params for a tiny scratch model that takes the reference recipe's
    128-token padding."""
    root = tmp_path_factory.mktemp("bench")
    source = make_csv_source(root / "source")
    params = write_params(root / "params.yaml", tiny_params(
        source, model__scratch={"vocab_size": 200, "dim": 16, "layers": 1, "heads": 2, "hidden_dim": 32,
                                "max_position_embeddings": 128, "dropout": 0.1}))
    return source, params


def run_script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}  # on a GPU host too: the figures' device is the CPU
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_every_name_the_scripts_import_from_the_package_exists():
    missing = []
    for script in SCRIPTS:
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crossling"):
                module = importlib.import_module(node.module)
                missing += [f"{script.name}:{node.lineno} {node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name) and not is_module(f"{node.module}.{alias.name}")]
    assert len(SCRIPTS) >= 8 and not missing, missing


def test_every_call_of_a_package_function_in_the_scripts_fits_its_signature():
    """What the scripts that need the MiniLM package (storage, full_vs_lora, pretrained_run) are not run to show:
    each call of a function they import from the package passes arguments its signature takes."""
    checked, wrong = 0, []
    for script in SCRIPTS:
        tree = ast.parse(script.read_text(encoding="utf-8"))
        imported = {alias.asname or alias.name: getattr(importlib.import_module(node.module), alias.name)
                    for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and (node.module or "").startswith("crossling") for alias in node.names
                    if not is_module(f"{node.module}.{alias.name}")}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported
                    and inspect.isfunction(imported[node.func.id])):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue  # *args / **kwargs: the count is not known without running
            try:
                inspect.signature(imported[node.func.id]).bind(*node.args, **{k.arg: k for k in node.keywords})
                checked += 1
            except TypeError as exc:
                wrong.append(f"{script.name}:{node.lineno} {node.func.id}: {exc}")
    assert checked >= 20 and not wrong, wrong


def test_bench_training_runs_both_recipes_on_a_tiny_config(tiny, tmp_path):
    source, params = tiny
    out = tmp_path / "results.json"
    run_script("bench_training.py", "--data", str(source), "--size", "12", "--epochs", "1", "--params", str(params),
               "--out", str(out), cwd=tmp_path)
    report = json.loads(out.read_text())
    assert report["setup"]["train_examples"] == 24 and report["setup"]["languages"] == ["english", "french"]
    for side in ("reference", "crossling"):
        figures = report["sides"][side]
        assert figures["train_examples_per_s"] > 0 and figures["predict_examples_per_s"] > 0
        assert set(figures["macro_f1_per_language"]) == {"english", "french"} and figures["device"] == "cpu"
    assert set(report["comparison"]) == {"training_speedup", "inference_speedup", "macro_f1_difference"}
    assert not list(tmp_path.glob("checkpoints-*"))  # the phases ran in their own temporary directory


def test_group_by_length_benchmark_runs_on_a_tiny_config(tiny, tmp_path):
    source, params = tiny
    run_script("group_by_length.py", "--data", str(source), "--size", "12", "--epochs", "1", "--seeds", "1", "2",
               "--params", str(params), "--out", "grouping.json", cwd=tmp_path)  # a relative --out: after chdir
    report = json.loads((tmp_path / "grouping.json").read_text())
    assert set(report["runs"]) == {f"grouped={g},seed={s}" for g in (True, False) for s in (1, 2)}
    for split in ("dev", "test"):
        cell = report["per_language"][split]["english"]
        assert cell["paired_difference_ci_low"] <= cell["paired_difference_mean"] <= cell["paired_difference_ci_high"]
