"""End to end: the real `dvc` on a tiny configuration in a temporary git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import make_csv_source, tiny_params, write_params

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def sh(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(repo, str(BIN / "dvc"), *args, check=check)


def make_project(path: Path, source: Path, **param_overrides) -> Path:
    """A git+dvc project with this repository's pipeline, code and plot templates, and tiny params."""
    path.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    shutil.copytree(ROOT / "src", path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    sh(path, "git", "init", "-q", "-b", "main")
    dvc(path, "init", "-q")
    dvc(path, "config", "core.analytics", "false")
    shutil.copytree(ROOT / ".dvc" / "plots", path / ".dvc" / "plots")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # dvc wants every listed param present
    for section, values in tiny_params(source, **param_overrides).items():
        for key, value in values.items():
            params[section][key] = params[section][key] | value if isinstance(value, dict) else value
    write_params(path / "params.yaml", params)
    sh(path, "git", "add", "-A")
    sh(path, "git", "commit", "-qm", "tiny project")
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("e2e")
    source = make_csv_source(base / "source", pool_per_class=30, test_per_class=10)
    repo = make_project(base / "project", source)
    dvc(repo, "repro")
    return repo


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_repro_runs_every_stage_and_writes_outputs(project):
    for path in ("data/samples/sample_6.parquet", "data/samples/sample_12.parquet", "models/base/model.safetensors",
                 "models/joint_12/model.safetensors", "models/mono_french/tokenizer.json",
                 "data/predictions/mono_english.parquet", "metrics/summary.json", "plots/transfer_matrix.json",
                 "plots/learning_curve.png", "plots/label_distribution.png", "plots/training_loss.json"):
        assert (project / path).exists(), path
    summary = json.loads((project / "metrics" / "summary.json").read_text())
    assert set(summary) >= {"joint_12_mean_macro_f1", "zero_shot_mean_macro_f1", "joint_12_macro_f1_french"}
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"download", "combine", "sample", "base", "train_joint@6", "train_joint@12",
                                   "train_mono@english", "train_mono@french", "evaluate"}


def test_second_repro_runs_nothing(project):
    out = dvc(project, "repro").stdout
    assert stages_run(out) == []
    assert "up to date" in dvc(project, "status").stdout


def test_plots_show_renders_learning_curve_and_heatmap(project, tmp_path):
    dvc(project, "plots", "show", "-o", str(tmp_path / "html"))
    page = (tmp_path / "html" / "index.html").read_text()
    for plot_id in ("learning_curve_macro_f1", "transfer_matrix", "label_distribution", "training_loss"):
        assert plot_id in page
    assert '"rect"' in page and '"macro_f1"' in page  # the heatmap colours cells by value


def test_metrics_show_lists_flat_metrics(project):
    out = dvc(project, "metrics", "show", "--json").stdout
    data = json.loads(out)
    files = next(iter(data.values()))["data"]
    assert files["metrics/joint.json"]["data"]["joint_12"]["english"]["macro_f1"] >= 0
    assert files["metrics/data.json"]["data"]["french"]["pool"] == 90
