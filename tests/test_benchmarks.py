"""The benchmark scripts run against the package as it is: three of them still called functions that a refactor
of the train stage had removed, and nothing noticed until someone ran them."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys

from conftest import ROOT, make_csv_source, tiny_params, write_params

SCRIPTS = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")])


def test_every_name_the_scripts_import_from_the_package_exists():
    missing = []
    for script in SCRIPTS:
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crossling"):
                module = importlib.import_module(node.module)
                missing += [f"{script.name}:{node.lineno} {node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name)]
    assert len(SCRIPTS) >= 8 and not missing, missing


def test_bench_training_runs_both_recipes_on_a_tiny_config(tmp_path):
    source = make_csv_source(tmp_path / "source")
    # the reference recipe pads every text to 128 tokens, so the tiny model takes 128 positions
    params = write_params(tmp_path / "params.yaml", tiny_params(
        source, model__scratch={"vocab_size": 200, "dim": 16, "layers": 1, "heads": 2, "hidden_dim": 32,
                                "max_position_embeddings": 128, "dropout": 0.1}))
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_training.py"), "--data", str(source),
                          "--size", "12", "--epochs", "1", "--params", str(params), "--out", str(out)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["setup"]["train_examples"] == 24 and report["setup"]["languages"] == ["english", "french"]
    for side in ("reference", "crossling"):
        figures = report["sides"][side]
        assert figures["train_examples_per_s"] > 0 and figures["predict_examples_per_s"] > 0
        assert set(figures["macro_f1_per_language"]) == {"english", "french"} and figures["device"] == "cpu"
    assert set(report["comparison"]) == {"training_speedup", "inference_speedup", "macro_f1_difference"}
