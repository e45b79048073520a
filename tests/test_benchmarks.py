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
import yaml
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


def stage_options(module, monkeypatch) -> tuple[set[str], set[str]]:
    """The options a stage's `cli` parses, and those it requires, from the parser it hands to run_stage."""
    class Parsed(Exception):
        pass

    def capture(name, main, parser, argv=None):
        raise Parsed(parser)

    monkeypatch.setattr(module, "run_stage", capture)
    with pytest.raises(Parsed) as got:
        module.cli([])
    actions = got.value.args[0]._actions
    return ({o for a in actions for o in a.option_strings},
            {a.option_strings[-1] for a in actions if a.required})


def test_every_call_the_scripts_make_into_the_package_fits_it(monkeypatch):
    """What the scripts the suite does not run (storage, full_vs_lora: they need the MiniLM package) can break on:
    a call of a package function (`name(...)` or `module.name(...)`) passes arguments its signature takes, and a
    stage's `module.cli([...])` passes only options that stage parses, every required one included. Return
    values and option values are not checked."""
    checked, wrong = [], []
    for script in SCRIPTS:
        tree = ast.parse(script.read_text(encoding="utf-8"))
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crossling"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported[alias.asname or alias.name] = (importlib.import_module(full) if is_module(full)
                                                            else getattr(importlib.import_module(node.module),
                                                                         alias.name, None))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name):
                target = imported.get(func.id)
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and inspect.ismodule(
                    imported.get(func.value.id)):
                target = getattr(imported[func.value.id], func.attr, None)
            else:
                continue
            where = f"{script.name}:{node.lineno} {ast.unparse(func)}"
            if not inspect.isfunction(target):
                if target is None and isinstance(func, ast.Attribute):
                    wrong.append(f"{where}: no such function")
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue  # *args / **kwargs: the count is not known without running
            try:
                inspect.signature(target).bind(*node.args, **{k.arg: k for k in node.keywords})
            except TypeError as exc:
                wrong.append(f"{where}: {exc}")
                continue
            checked.append(where)
            if target.__name__ == "cli" and node.args and isinstance(node.args[0], ast.List):
                known, required = stage_options(importlib.import_module(target.__module__), monkeypatch)
                given = {e.value for e in node.args[0].elts
                         if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value.startswith("--")}
                if given - known or required - given:
                    wrong.append(f"{where}: unknown {sorted(given - known)}, missing {sorted(required - given)}")
    assert not wrong, wrong
    stage_calls = {w.split(" ")[0] for w in checked if w.endswith(".cli")}
    assert len(checked) >= 40 and {"storage.py", "full_vs_lora.py"} <= {w.split(":")[0] for w in checked}, checked
    assert len(stage_calls) >= 6, checked


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


def test_pretrained_run_builds_on_the_committed_params_not_an_experiments(tmp_path, monkeypatch, capsys):
    """`dvc exp run -S` leaves its values in the workspace's params.yaml; the benchmark must not inherit them."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import pretrained_run
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    repo = tmp_path / "repo"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "params.yaml").write_text("train:\n  warmup_ratio: 0.0\n  epochs: 5\n")
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "params"], check=True)
    monkeypatch.setattr(pretrained_run, "ROOT", repo)
    commit = pretrained_run.git("rev-parse", "HEAD").strip()
    assert pretrained_run.committed_params(commit) == {"train": {"warmup_ratio": 0.0, "epochs": 5}}
    assert capsys.readouterr().err == ""
    (repo / "params.yaml").write_text("train:\n  warmup_ratio: 0.1\n  epochs: 5\n")  # make offline's exp run
    params = pretrained_run.committed_params(commit)
    assert params == {"train": {"warmup_ratio": 0.0, "epochs": 5}}
    assert "differs from the committed one" in capsys.readouterr().err
    monkeypatch.setattr(pretrained_run, "run", lambda cmd, cwd: None)  # no git init, dvc init or commit
    monkeypatch.setattr(pretrained_run.shutil, "copytree", lambda *a, **k: None)
    monkeypatch.setattr(pretrained_run.shutil, "copy", lambda *a, **k: None)
    pretrained_run.make_project(tmp_path / "project", params, {"train.epochs": 2})
    written = yaml.safe_load((tmp_path / "project" / "params.yaml").read_text())
    assert written == {"train": {"warmup_ratio": 0.0, "epochs": 2}}  # the committed values, then the overrides
    monkeypatch.setattr(pretrained_run, "ROOT", tmp_path / "project")  # not a git checkout
    with pytest.raises(SystemExit, match="pretrained_run: error: git rev-parse HEAD failed in"):
        pretrained_run.git("rev-parse", "HEAD")


def test_the_benchmarks_measure_the_committed_params_not_an_experiments_leftovers(tmp_path, monkeypatch, capsys):
    """`dvc exp run -S` (make smoke) leaves its overrides in the workspace's params.yaml; make bench and
    bench-grouping read params.yaml as committed at HEAD, and say when the workspace's differs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_training
        import pretrained_run
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from crossling.config import load_config

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"}
    for command in (["init", "-q"], ["add", "params.yaml"], ["commit", "-qm", "params"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)
    smoke = yaml.safe_load((repo / "params.yaml").read_text())
    smoke["data"]["languages"] = ["english", "french"]  # as make smoke leaves it
    (repo / "params.yaml").write_text(yaml.safe_dump(smoke))
    monkeypatch.setattr(pretrained_run, "ROOT", repo)
    (tmp_path / "work").mkdir()
    path, commit = bench_training.committed_params_file(tmp_path / "work", "bench")
    assert path.read_text() == (ROOT / "params.yaml").read_text(encoding="utf-8")  # as committed, comments and all
    assert len(load_config(path).data.languages) == 6 and commit == pretrained_run.git("rev-parse", "HEAD").strip()
    assert capsys.readouterr().err.startswith("bench: the workspace's params.yaml differs from the committed one")


def test_group_by_length_refuses_bad_data_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "group_by_length.py"), "--data",
                           str(tmp_path / "empty"), "--params", str(ROOT / "params.yaml")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.startswith("group_by_length: error: data.source: ")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
