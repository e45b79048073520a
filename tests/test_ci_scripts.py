"""The pull-request workflow's git step: .github/publish_plots.sh against a real (local, bare) origin."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import yaml
from conftest import readme_keep_command

ROOT = Path(__file__).resolve().parents[1]
PUBLISH = ROOT / ".github" / "publish_plots.sh"
ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=True).stdout


def test_publish_plots_adds_each_runs_images_to_the_branch_and_leaves_the_checkout_alone(tmp_path):
    git(tmp_path, "init", "-q", "--bare", "origin.git")
    git(tmp_path, "clone", "-q", "origin.git", "checkout")
    checkout = tmp_path / "checkout"
    (checkout / "README").write_text("project\n")
    git(checkout, "add", "README")
    git(checkout, "commit", "-qm", "init")
    git(checkout, "push", "-q", "origin", "HEAD:main")
    head = git(checkout, "rev-parse", "HEAD")
    pngs = tmp_path / "png"
    pngs.mkdir()
    for name in ("learning_curve.png", "transfer_matrix.png"):
        (pngs / name).write_bytes(b"PNG:" + name.encode())

    for dest in ("pr-1/aaa", "pr-2/bbb"):
        proc = subprocess.run(["bash", str(PUBLISH), str(pngs), "pr-plots", dest], cwd=checkout, env=ENV,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert f"published 2 images to pr-plots:{dest}" in proc.stdout

    git(checkout, "fetch", "-q", "origin")
    files = git(checkout, "ls-tree", "-r", "--name-only", "origin/pr-plots").split()
    assert files == ["pr-1/aaa/learning_curve.png", "pr-1/aaa/transfer_matrix.png",
                     "pr-2/bbb/learning_curve.png", "pr-2/bbb/transfer_matrix.png"]
    assert git(checkout, "show", "origin/pr-plots:pr-2/bbb/transfer_matrix.png") == "PNG:transfer_matrix.png"
    assert git(checkout, "rev-parse", "HEAD") == head and git(checkout, "status", "--porcelain") == ""
    assert git(checkout, "ls-tree", "-r", "--name-only", "origin/main").split() == ["README"]

    empty = tmp_path / "none"
    empty.mkdir()
    proc = subprocess.run(["bash", str(PUBLISH), str(empty), "pr-plots", "pr-3/ccc"], cwd=checkout, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "nothing to publish" in proc.stdout


def workflow(name: str) -> dict:
    spec = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    return {"on": spec[True], "jobs": spec["jobs"]}  # YAML 1.1 reads the key `on` as True


def commands(spec: dict) -> str:
    return "\n".join(step.get("run", "") for job in spec["jobs"].values() for step in job["steps"])


def test_pull_requests_never_train_and_retraining_is_a_manual_gpu_job():
    pr = workflow("pr-metrics.yml")
    assert set(pr["on"]) == {"pull_request"}
    run = commands(pr)
    for training in ("dvc repro", "dvc exp run", "dvc pull", "crossling.train", "torch"):
        assert training not in run
    assert "python .github/check_outputs.py" in run and "bash .github/pr_report.sh" in run

    retrain = workflow("retrain.yml")
    assert set(retrain["on"]) == {"workflow_dispatch"}
    assert all("self-hosted" in job["runs-on"] and "gpu" in job["runs-on"] for job in retrain["jobs"].values())
    assert "dvc repro" in commands(retrain) and "dvc push" in commands(retrain)
    # check_outputs wants the cache:false outputs (metrics, plots) in git: the index is enough
    retrain_add = next(line for line in commands(retrain).splitlines() if line.strip().startswith("git add"))
    assert shlex.split(retrain_add, comments=True) == readme_keep_command()  # docs/workflow.md, step 3
    assert commands(retrain).index("git add") < commands(retrain).index("check_outputs.py")

    tests = workflow("tests.yml")
    assert set(tests["on"]) == {"push", "pull_request"}
    assert "bash .ci/run" in commands(tests)
    # as root on Debian, as .ci/run's machine: the Slurm test fails (never skips) where it cannot start the daemons
    container = next(iter(tests["jobs"].values()))["container"]
    assert isinstance(container, str) and container.startswith("python:3.11-") and container.endswith("bookworm")


def test_pr_workflow_checks_only_when_there_are_results():
    steps = next(iter(workflow("pr-metrics.yml")["jobs"].values()))["steps"]
    at = next(i for i, step in enumerate(steps) if step.get("id") == "lock")
    assert steps[at]["run"] == "bash .github/has_lock.sh"
    later = steps[at + 1:]
    assert all("steps.lock.outputs.run == 'true'" in step.get("if", "") or "steps.report.outcome == 'success'"
               in step.get("if", "") for step in later)
    # the report (and its comment) comes also when the outputs check failed: the job is red and says why
    check = next(i for i, step in enumerate(steps) if step.get("id") == "check")
    assert all("!cancelled()" in step["if"] for step in steps[check + 1:])
    report = next(step for step in steps if step.get("id") == "report")
    assert report["env"]["CHECK_OUTCOME"] == "${{ steps.check.outcome }}" and "CHECK_FAILURE=" in report["run"]


def test_has_lock_says_whether_there_are_results_to_check(tmp_path):
    git(tmp_path, "init", "-q", "--bare", "origin.git")
    git(tmp_path, "clone", "-q", "origin.git", "checkout")
    checkout = tmp_path / "checkout"

    def has_lock() -> tuple[subprocess.CompletedProcess, str]:
        out = tmp_path / "github_output"
        out.write_text("")
        proc = subprocess.run(["bash", str(ROOT / ".github" / "has_lock.sh")], cwd=checkout, capture_output=True,
                              text=True, env=ENV | {"BASE_REF": "main", "GITHUB_OUTPUT": str(out)})
        return proc, out.read_text()

    (checkout / "params.yaml").write_text("train: {}\n")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "no results yet")
    git(checkout, "push", "-q", "origin", "HEAD:main")
    proc, output = has_lock()
    assert proc.returncode == 0 and output == "run=false\n" and proc.stdout.startswith("::notice::no dvc.lock")

    (checkout / "dvc.lock").write_text("schema: '2.0'\n")
    proc, output = has_lock()
    assert proc.returncode == 0 and output == "run=true\n"

    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "results")
    git(checkout, "push", "-q", "origin", "HEAD:main")
    git(checkout, "rm", "-q", "dvc.lock")
    proc, output = has_lock()
    assert proc.returncode == 1 and output == "" and "dvc.lock is on main but not in this pull request" in proc.stdout


def test_make_undo_restores_the_committed_results_even_where_the_index_lost_them(tmp_path):
    """README: `make undo` restores params.yaml and every result file from the last commit, and removes the rest."""
    import shutil

    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for path, text in (("params.yaml", "train:\n  epochs: 5\n"), ("plots/curve.png", "PNG 1"),
                       ("metrics/headline.json", "{}"), ("README", "kept\n"), ("plots/my plot é.png", "PNG 3")):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "results")
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 3\n")  # an experiment's overrides
    git(tmp_path, "rm", "-q", "--cached", "plots/curve.png")  # as `git add metrics plots` after a file vanished
    git(tmp_path, "rm", "-q", "metrics/headline.json")
    (tmp_path / "plots" / "my plot é.png").write_text("changed")  # a name with a space and a non-ASCII letter
    (tmp_path / "plots" / "new.png").write_text("PNG 2")
    git(tmp_path, "add", "plots/new.png")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "results.md").write_text("an experiment's report")
    proc = subprocess.run(["make", "--no-print-directory", "undo"], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert git(tmp_path, "status", "--porcelain") == ""
    assert (tmp_path / "plots" / "curve.png").read_text() == "PNG 1"
    assert (tmp_path / "plots" / "my plot é.png").read_text() == "PNG 3"
    assert (tmp_path / "metrics" / "headline.json").exists()
    assert (tmp_path / "params.yaml").read_text() == "train:\n  epochs: 5\n" and not (tmp_path / "reports").exists()


def test_make_passes_mirror_set_and_name_to_dvc_as_given_and_clean_venv_removes_only_the_venv(tmp_path):
    """A MIRROR at .../R&D/... ran `dvc exp run -S data.source=.../R` in the background; a quote in MIRROR or SET was a
    shell syntax error; VENV="/x/proj env" made clean-venv remove /x/proj."""
    import shutil
    import time

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    (project / "pyproject.toml").write_text("")
    (project / "params.yaml").write_text("train:\n  epochs: 5\n")
    fake = project / "fake-venv" / "bin"
    fake.mkdir(parents=True)
    (fake / "dvc").write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {shlex.quote(str(tmp_path / 'argv'))}; echo ran\n")
    (fake / "dvc").chmod(0o755)
    time.sleep(0.01)
    (fake / "crossling-installed").touch()  # newer than pyproject.toml: setup has nothing to do
    mirror = tmp_path / "R&D'x;y z"  # a space too: make's $(abspath) would split it into two paths
    mirror.mkdir()
    proc = subprocess.run(["make", "--no-print-directory", "offline", "VENV=fake-venv", f"MIRROR={mirror}",
                           "SET=data.source=o'b&c train.epochs=2", "NAME=try"], cwd=project, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "argv").read_text().split("\0")[:-1] == [
        "exp", "run", "-S", f"data.source={mirror}", "-S", "model.checkpoint=scratch", "-S", "train.learning_rate=3e-4",
        "-S", "train.warmup_ratio=0.1", "-S", "data.source=o'b&c", "-S", "train.epochs=2", "-n", "try"]
    assert proc.stdout.splitlines()[0] == ("dvc exp run -S 'data.source=" + str(mirror).replace("'", "'\\''")
                                           + "' -S model.checkpoint=scratch -S train.learning_rate=3e-4 -S "
                                           "train.warmup_ratio=0.1 -S 'data.source=o'\\''b&c' -S 'train.epochs=2' -n "
                                           "'try'")

    (project / "my data").mkdir()  # relative: made absolute, in one piece
    proc = subprocess.run(["make", "--no-print-directory", "offline", "VENV=fake-venv", "MIRROR=my data"],
                          cwd=project, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "argv").read_text().split("\0")[2:4] == ["-S", f"data.source={project}/my data"]

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "code.py").write_text("kept")
    (tmp_path / "proj env" / "bin").mkdir(parents=True)
    proc = subprocess.run(["make", "--no-print-directory", "clean-venv", f"VENV={tmp_path / 'proj env'}"],
                          cwd=project, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "proj" / "code.py").read_text() == "kept" and not (tmp_path / "proj env").exists()
