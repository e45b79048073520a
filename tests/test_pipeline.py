"""End to end: the real `dvc` on a tiny configuration in a temporary git repository."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata as package
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import headless_bert, make_csv_source, readme_keep_command, tiny_params, write_params

ROOT = Path(__file__).resolve().parents[1]
CHECK_PLOTS = ROOT / "scripts" / "check_plots.py"
CHECK_OUTPUTS = ROOT / ".github" / "check_outputs.py"
BIN = Path(sys.executable).parent
# The tests using `project` build on each other's state, in file order: pytest -n runs a whole file on one worker
# (--dist loadfile). tests/test_pipeline_growth.py is a second chain on a project of its own, run beside this one.
pytestmark = pytest.mark.e2e


def sh(repo: Path, *cmd: str, check: bool = True, **env_vars: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               **env_vars)
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(repo: Path, *args: str, check: bool = True, **env_vars: str) -> subprocess.CompletedProcess:
    return sh(repo, str(BIN / "dvc"), *args, check=check, **env_vars)


def make_project(path: Path, source: Path, **param_overrides) -> Path:
    """A git+dvc project with this repository's pipeline, code and plot templates, and tiny params."""
    path.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    shutil.copy(ROOT / ".gitignore", path / ".gitignore")
    shutil.copytree(ROOT / "src", path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    sh(path, "git", "init", "-q", "-b", "main")
    dvc(path, "init", "-q")
    dvc(path, "config", "core.analytics", "false")
    shutil.copytree(ROOT / ".dvc" / "plots", path / ".dvc" / "plots")
    write_params(path / "params.yaml", tiny_params(source, **param_overrides))
    sh(path, "git", "add", "-A")
    sh(path, "git", "commit", "-qm", "tiny project")
    return path


def first_run(tmp_path_factory) -> Path:
    """A committed project after its first `dvc repro`."""
    base = tmp_path_factory.mktemp("e2e")
    source = make_csv_source(base / "source", languages=("english", "french", "german"), pool_per_class=30,
                             test_per_class=10)
    # a local pretrained-style checkpoint (no head), as users run it; the scratch model is tested in test_base/train
    checkpoint = headless_bert(base / "bert")
    repo = make_project(base / "project", source, sizes=(12, 30), train__seeds=[1], train__device="cpu",
                        model__checkpoint=str(checkpoint))
    first = dvc(repo, "repro")
    # a fresh project's first run is quiet: the one warning is evaluate's about runs that collapsed (as these
    # tiny ones do), which says what it is and where to look
    warnings = [line for line in (first.stdout + first.stderr).splitlines() if "WARNING" in line]
    assert all("evaluate WARNING degenerate runs" in line for line in warnings), warnings
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "first run")
    return repo


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return first_run(tmp_path_factory)


@pytest.fixture(scope="module")
def remote(project, tmp_path_factory) -> Path:
    """A local DVC remote, the project's default, holding every output of the first run."""
    store = tmp_path_factory.mktemp("remote") / "store"
    dvc(project, "remote", "add", "-d", "store", str(store))
    sh(project, "git", "commit", "-qam", "local remote")
    dvc(project, "push")
    return store


def training_stages(seed: int, step: str = "train") -> set[str]:
    return ({f"{step}_joint@{size}-{seed}" for size in (12, 30)} | {f"{step}_mono@{lang}-{seed}" for lang in LANGS}
            | {f"{step}_joint_equal@{seed}"})


LANGS = ("english", "french")
TRAINING = training_stages(1)
PREDICTION = training_stages(1, "predict")


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_repro_runs_every_stage_and_writes_outputs(project):
    for path in ("data/samples/seed1/sample_12.parquet", "data/samples/seed1/sample_30.parquet",
                 "data/samples/seed1/sample_equal.parquet", "models/base/model.safetensors",
                 "models/joint_30_seed1/model.safetensors", "models/mono_french_seed1/tokenizer.json",
                 "data/predictions/mono_english_seed1.parquet", "metrics/headline.json", "plots/transfer_matrix.json",
                 "metrics/tokenization.json", "plots/tokenization.png", "metrics/transfer_summary.json",
                 "plots/learning_curve.png", "plots/label_distribution.png", "plots/training_loss.json",
                 "data/dev", "metrics/differences.json", "plots/dev_curve.json", "plots/training_curves.png",
                 "plots/confusion_largest_joint.png"):
        assert (project / path).exists(), path
    summary = json.loads((project / "metrics" / "headline.json").read_text())
    assert set(summary) >= {"joint_largest_mean_macro_f1", "zero_shot_mean_macro_f1", "normalized_transfer_mean",
                            "joint_largest_macro_f1_french", "joint_largest_last_epoch_train_loss",
                            "degenerate_runs"}  # from dvclive's loss, shown by `dvc exp show`
    loss = [r for r in json.loads((project / "plots" / "training_loss.json").read_text()) if r["model"] == "joint_30_seed1"]
    last_epoch = [r["loss"] for r in loss if r["epoch"] > loss[-1]["epoch"] - 1]
    assert min(last_epoch) <= summary["joint_largest_last_epoch_train_loss"] <= max(last_epoch)
    health = json.loads((project / "metrics" / "health.json").read_text())
    assert summary["degenerate_runs"] == sum(h["degenerate"] for h in health.values())
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == ({"check_params", "download", "combine", "sample", "base", "tokenization",
                                    "evaluate", "report"} | TRAINING | PREDICTION)
    report = (project / "reports" / "results.md").read_text()
    assert "english" in report and "french" in report and "with one seed" in report
    assert "| english | synthetic_english |" in report  # no domain given for the source: its name stands
    assert "## Paired differences" in report and "joint_30 (60 ex., 16 steps)" in report  # 2 epochs x ceil(60 / 8)
    # provenance: every training and prediction run on one setup, as the runs recorded it (the local checkpoint
    # with the first 12 hex digits of its content hash)
    init = json.loads((project / "models" / "base" / "crossling_init.json").read_text())
    versions = [package.version(name) for name in ("torch", "transformers", "crossling")]
    for phase in ("train", "predict"):
        row = [line.strip("| ").split(" | ") for line in report.splitlines() if line.startswith(f"| {phase} |")]
        assert row == [[phase, "cpu (CPU)", "fp32", f"{init['checkpoint']} @ {init['commit'][:12]}", *versions,
                        str(len(TRAINING))]]


def test_training_curves_span_the_run_and_dev_is_scored_every_epoch(project):
    loss = [r for r in json.loads((project / "plots" / "training_loss.json").read_text())
            if r["model"] == "joint_30_seed1"]
    assert loss[0]["step"] == 1 and loss[-1]["epoch"] == pytest.approx(2.0)  # train.epochs: 2, to the last step
    for lang in LANGS:
        dev = (project / "logs" / "joint_30_seed1" / "plots" / "metrics" / "dev" / f"macro_f1_{lang}.tsv")
        assert len(dev.read_text().splitlines()) == 1 + 2  # header and one row per epoch
    assert json.loads((project / "plots" / "dev_curve.json").read_text())


def test_dev_split_is_balanced_and_disjoint_from_samples_and_test(project):
    dev = pd.read_parquet(project / "data" / "dev")
    assert set(dev.groupby(["language", "label"]).size()) == {5}  # tiny dev_size 15: 5 per class and language
    held_out = set(pd.read_parquet(project / "data" / "test.parquet")["text"])
    for size in (12, 30):
        held_out |= set(pd.read_parquet(project / "data" / "samples" / "seed1" / f"sample_{size}.parquet")["text"])
    assert not set(dev["text"]) & held_out
    counts = json.loads((project / "metrics" / "data.json").read_text())
    assert counts["english"]["dev"] == 15 and counts["english"]["dev_negative"] == 5
    diffs = json.loads((project / "metrics" / "differences.json").read_text())
    assert "ci_low" in diffs["joint_30_minus_joint_12_on_french"] and "mono_english_minus_chance_on_french" in diffs


def test_second_repro_runs_nothing(project):
    out = dvc(project, "repro").stdout
    assert stages_run(out) == []
    assert "up to date" in dvc(project, "status").stdout


@pytest.mark.parametrize("typo, field", [(("\nevaluate:", "\nevalute:"), "evalute"),  # a section
                                         (("  epochs: 2", "  epoch: 2"), "train.epoch")])  # a key
def test_typo_in_params_fails_repro_even_when_every_stage_is_up_to_date(project, typo, field):
    params = (project / "params.yaml").read_text()
    assert params.count(typo[0]) == 1
    (project / "params.yaml").write_text(params.replace(*typo))
    try:
        proc = dvc(project, "repro", check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert proc.returncode != 0
    assert stages_run(proc.stdout) == ["check_params"]  # first, and nothing after it
    errors = [line for line in proc.stderr.splitlines() if line.startswith("crossling.")]
    assert len(errors) == 1 and errors[0].startswith(
        f"crossling.check_params: error: params.yaml: {field}: unknown key (allowed under "), proc.stderr
    assert stages_run(dvc(project, "repro").stdout) == []  # the typo fixed: nothing re-runs


def test_a_typo_in_a_key_dvc_yaml_loops_over_stops_dvc_itself_by_name(project):
    params = (project / "params.yaml").read_text()
    assert params.count("\n  seeds:") == 1
    (project / "params.yaml").write_text(params.replace("\n  seeds:", "\n  seedz:"))
    try:
        proc = dvc(project, "repro", check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert proc.returncode != 0 and stages_run(proc.stdout) == []  # before check_params: DVC cannot build the stages
    assert "Could not find 'train.seeds'" in proc.stderr, proc.stderr
    assert stages_run(dvc(project, "repro").stdout) == []


def test_plots_show_renders_learning_curve_and_heatmap(project, tmp_path):
    dvc(project, "plots", "show", "-o", str(tmp_path / "html"))
    page = (tmp_path / "html" / "index.html").read_text()
    for plot_id in ("learning_curve_macro_f1", "transfer_matrix", "transfer_normalized", "label_distribution",
                    "training_loss", "dev_macro_f1", "confusion_largest_joint"):
        assert plot_id in page
    assert '"rect"' in page and '"macro_f1"' in page  # the heatmap colours cells by value

    # as a person sees it: every plot draws in a browser
    proc = sh(project, str(BIN / "python"), str(CHECK_PLOTS), str(tmp_path / "html"), "--screenshot",
              str(tmp_path / "page.png"))
    for plot_id in ("learning_curve_macro_f1", "learning_curve_accuracy", "transfer_matrix", "transfer_normalized",
                    "label_distribution", "tokenization", "training_loss"):
        assert f"{plot_id}: drew" in proc.stdout
    assert (tmp_path / "page.png").read_bytes()[:4] == b"\x89PNG"

    # a template whose line encodes a field the data lacks draws only the band: the check fails, naming it
    spec = json.loads((ROOT / ".dvc" / "plots" / "learning_curve.json").read_text())
    for layer in spec["layer"][1:]:  # the line and its points
        layer["encoding"]["y"]["field"] = "<DVC_METRIC_Y>_typo"
    (tmp_path / "broken.json").write_text(json.dumps(spec))
    dvc(project, "plots", "show", "plots/learning_curve.json", "--template", str(tmp_path / "broken.json"),
        "-x", "size", "-y", "macro_f1", "-o", str(tmp_path / "broken"))
    proc = sh(project, str(BIN / "python"), str(CHECK_PLOTS), str(tmp_path / "broken"), check=False)
    assert proc.returncode == 1
    assert "plots_learning_curve_json: drew nothing for mark" in proc.stderr, proc.stderr  # dvc escapes the id


def test_metrics_show_lists_flat_metrics(project):
    out = dvc(project, "metrics", "show", "--json", "metrics/headline.json", "metrics/joint.json", "metrics/data.json",
              "metrics/differences.json").stdout
    data = json.loads(out)
    files = next(iter(data.values()))["data"]
    assert files["metrics/headline.json"]["data"]["joint_largest_mean_macro_f1"] >= 0
    assert files["metrics/joint.json"]["data"]["joint_30"]["english"]["macro_f1"] >= 0
    assert files["metrics/data.json"]["data"]["french"]["pool"] == 90 - 15  # the dev split is carved out
    assert "joint_30_minus_mono_english_on_english" in files["metrics/differences.json"]["data"]
    default = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    assert set(next(iter(default.values()))["data"]) == {"metrics/headline.json"}  # dvc.yaml's top-level metrics



def test_killed_training_is_never_recorded_and_repro_recovers(project):
    lock_before = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train_joint@30-1"]
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("epochs: 2", "epochs: 2000"))  # long enough to kill
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    (project / "logs" / "joint_30_seed1" / "plots" / "metrics" / "loss.tsv").unlink()  # the next one is new
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", "-s", "train_joint@30-1"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    loss = project / "logs" / "joint_30_seed1" / "plots" / "metrics" / "loss.tsv"
    deadline = time.time() + 60
    while time.time() < deadline and not (loss.exists() and loss.read_text().count("\n") >= 3):
        time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    assert yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train_joint@30-1"] == lock_before
    assert not (project / "models" / "joint_30_seed1").exists()
    (project / "params.yaml").write_text(params)
    dvc(project, "repro")
    assert "up to date" in dvc(project, "status").stdout
    assert (project / "models" / "joint_30_seed1" / "model.safetensors").exists()
    assert not list((project / "models").glob(".joint_30_seed1.*"))


def test_damaged_model_is_detected_and_repaired(project):
    weights = project / "models" / "joint_30_seed1" / "model.safetensors"
    tokenizer = project / "models" / "mono_french_seed1" / "tokenizer.json"
    good_weights, good_tokenizer = weights.read_bytes(), tokenizer.read_bytes()
    weights.chmod(0o644)
    weights.write_bytes(b"not a checkpoint")
    tokenizer.unlink()
    status = dvc(project, "status").stdout
    assert "train_joint@30-1" in status and "train_mono@french-1" in status
    dvc(project, "repro")
    assert weights.read_bytes() == good_weights and tokenizer.read_bytes() == good_tokenizer
    assert "up to date" in dvc(project, "status").stdout

def test_push_then_pull_in_a_fresh_clone_retrains_nothing(project, remote, tmp_path):
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
    dvc(clone, "pull")
    assert (clone / "models" / "joint_30_seed1" / "model.safetensors").exists()
    assert "up to date" in dvc(clone, "status").stdout
    assert stages_run(dvc(clone, "repro").stdout) == []

    one = tmp_path / "one_model"
    sh(tmp_path, "git", "clone", "-q", str(project), str(one))
    dvc(one, "pull", "models/joint_30_seed1")
    assert (one / "models" / "joint_30_seed1" / "model.safetensors").exists()
    assert not (one / "models" / "joint_12_seed1").exists() and not (one / "data" / "samples").exists()
    # what a user does right after `dvc pull`
    out = sh(one, str(BIN / "python"), "-m", "crossling.classify", "--model", "models/joint_30_seed1", "--json",
             "en great love film", "en awful sad day").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == ["en great love film", "en awful sad day"]
    assert all(r["label"] in {"positive", "neutral", "negative"} for r in rows)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in rows)





def remote_object(store: Path, md5: str) -> Path:
    return store / "files" / "md5" / md5[:2] / md5[2:]


def test_ci_check_names_the_outputs_missing_from_the_remote(project, remote, tmp_path):
    """What pr-metrics.yml runs first, in a checkout without any DVC data: it downloads and runs nothing."""
    def check(name: str) -> subprocess.CompletedProcess:
        clone = tmp_path / name
        sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
        proc = sh(clone, str(BIN / "python"), str(CHECK_OUTPUTS), check=False)
        assert not list(clone.glob("models/*/")) and not list(clone.glob("data/*.parquet"))  # nothing pulled or run
        return proc

    ok = check("all_pushed")
    assert ok.returncode == 0, ok.stderr
    assert "dvc.lock matches the code and params" in ok.stdout

    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    test_md5 = next(o["md5"] for o in lock["combine"]["outs"] if o["path"] == "data/test.parquet")
    model_md5 = next(o["md5"] for o in lock["train_joint@30-1"]["outs"] if o["path"] == "models/joint_30_seed1")
    listing = json.loads(remote_object(remote, model_md5).read_text())
    weights_md5 = next(f["md5"] for f in listing if f["relpath"] == "model.safetensors")
    moved = [remote_object(remote, test_md5), remote_object(remote, weights_md5)]
    for path in moved:
        path.rename(path.with_name(path.name + ".away"))
    try:
        missing = check("two_missing")
    finally:
        for path in moved:
            path.with_name(path.name + ".away").rename(path)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "check_outputs: not on DVC remote 'store': data/test.parquet, models/joint_30_seed1; "
        "run `dvc push` where they were produced"]

    clone = tmp_path / "all_pushed"
    params = (clone / "params.yaml").read_text()
    (clone / "params.yaml").write_text(params.replace("epochs: 2", "epochs: 3"))
    stale = sh(clone, str(BIN / "python"), str(CHECK_OUTPUTS), check=False)
    assert stale.returncode == 1 and len(stale.stderr.splitlines()) == 1
    assert stale.stderr.startswith("check_outputs: dvc.lock is out of date: ")
    assert "train_joint@30-1 (param train.epochs modified)" in stale.stderr and "combine" not in stale.stderr

    # metrics that dvc.lock records but the pull request forgot to commit (`cache: false`: git, not the remote)
    (clone / "params.yaml").write_text(params)
    sh(clone, "git", "rm", "-q", "metrics/headline.json")
    sh(clone, "git", "commit", "-qm", "metrics not committed")
    forgot = sh(clone, str(BIN / "python"), str(CHECK_OUTPUTS), check=False)
    assert forgot.returncode == 1
    assert forgot.stderr.splitlines() == [
        "check_outputs: not committed to git: metrics/headline.json; these outputs are `cache: false` (metrics, "
        "plots, logs, report): git add and commit them with dvc.lock"]


def test_models_in_the_registry_by_name(project, remote, tmp_path):
    sh(project, str(BIN / "gto"), "register", "joint", "--version", "v1.0.0")
    sh(project, str(BIN / "gto"), "register", "mono-french", "--version", "v1.0.0")
    sh(project, str(BIN / "gto"), "assign", "mono-french", "--version", "v1.0.0", "--stage", "prod")
    dvc(tmp_path, "artifacts", "get", str(project), "joint", "-o", str(tmp_path / "joint"))
    dvc(tmp_path, "artifacts", "get", str(project), "mono-french", "--stage", "prod", "-o", str(tmp_path / "fr"))
    for got, model in (("joint", "joint_30_seed1"), ("fr", "mono_french_seed1")):  # paths follow params.yaml
        names = sorted(p.name for p in (tmp_path / got).iterdir())
        assert names == sorted(p.name for p in (project / "models" / model).iterdir()), names
        assert (tmp_path / got / "model.safetensors").read_bytes() == \
            (project / "models" / model / "model.safetensors").read_bytes()
    missing = dvc(tmp_path, "artifacts", "get", str(project), "mono-english", "-o", str(tmp_path / "en"), check=False)
    assert missing.returncode != 0 and not (tmp_path / "en").exists()  # registered versions only


def test_exp_run_with_new_epochs_reruns_only_training(project, remote, tmp_path):
    """docs/workflow.md's procedure, from `dvc exp run` to what CI checks and comments on the pull request."""
    out = dvc(project, "exp", "run", "-n", "epochs20", "-S", "train.epochs=20").stdout
    assert set(stages_run(out)) == TRAINING | PREDICTION | {"check_params", "evaluate", "report"}

    diff = dvc(project, "metrics", "diff", "--md").stdout
    assert "| Path" in diff and "english" in diff and "joint_largest" in diff

    shown = dvc(project, "exp", "show", "--md", "--drop", r".*\.", "--keep",
                r"Experiment|train\.epochs|model\.checkpoint").stdout
    assert "joint_largest_mean_macro_f1" in shown and "train.epochs" in shown
    exp_diff = dvc(project, "exp", "diff", "--md").stdout
    assert "train.epochs" in exp_diff and "joint_largest_mean_macro_f1" in exp_diff
    dvc(project, "plots", "diff", "HEAD", "-o", str(tmp_path / "compare"))
    assert "learning_curve_macro_f1" in (tmp_path / "compare" / "index.html").read_text()

    # keep the winner on a branch (dvc.lock, metrics, plots, report) and push its outputs: docs/workflow.md, step 3
    dvc(project, "exp", "apply", "epochs20")
    sh(project, "git", "checkout", "-q", "-b", "more-epochs")
    sh(project, *readme_keep_command())
    sh(project, "git", "commit", "-qm", "20 epochs")
    dvc(project, "push")
    assert "up to date" in dvc(project, "status").stdout and not sh(project, "git", "status", "--porcelain").stdout

    # the pull request's CI: a checkout of the branch without any DVC data
    pr = tmp_path / "pr"
    sh(tmp_path, "git", "clone", "-q", "-b", "more-epochs", str(project), str(pr))
    checked = sh(pr, str(BIN / "python"), str(CHECK_OUTPUTS))
    assert "dvc.lock matches the code and params" in checked.stdout
    report_dir = tmp_path / "report"
    # as the workflow calls it when the outputs check failed (here it passed): both files say so first
    sh(pr, "bash", str(ROOT / ".github" / "pr_report.sh"), "origin/main", str(report_dir), "https://img.example/pr-1",
       COMMENT_LIMIT="4000", CHECK_FAILURE="check_outputs: not on DVC remote 'store': models/x")
    assert not list(pr.glob("models/*/")) and not list(pr.glob("data/*.parquet"))  # nothing pulled, no stage ran
    report = (report_dir / "report.md").read_text()
    assert "### Learning curve" in report and "english" in report and "| train.epochs" in report
    assert (report_dir / "plots" / "index.html").exists()
    changed = {"learning_curve_macro_f1", "learning_curve_accuracy", "transfer_matrix", "transfer_normalized",
               "training_loss", "dev_macro_f1", "confusion_largest_joint"}
    assert {p.stem for p in (report_dir / "plots" / "png").iterdir()} == changed  # data and tokenization as before
    for plot_id in changed:
        assert f"![{plot_id}](https://img.example/pr-1/{plot_id}.png)" in report
        assert (report_dir / "plots" / "png" / f"{plot_id}.png").read_bytes()[:4] == b"\x89PNG"
    assert "label_distribution" not in report
    # sections with nothing changed say so (dvc prints a header-only table for them)
    assert "### Data: counts per language (`metrics/data.json`)\n\nNo change.\n" in report
    assert "### Params that changed\n\nNone.\n" not in report  # train.epochs changed
    # a failure while listing the changed plots fails the report (it once went on with none changed, rc 0)
    broken = tmp_path / "broken"
    shutil.copytree(ROOT / ".github", broken / ".github")
    (broken / "scripts").symlink_to(ROOT / "scripts")  # the plot check as the real report runs it
    (broken / ".github" / "changed_plots.py").write_text("raise SystemExit('changed_plots: broken')\n")
    failed = sh(pr, "bash", str(broken / ".github" / "pr_report.sh"), "origin/main", str(tmp_path / "r2"), check=False)
    assert failed.returncode != 0 and "changed_plots: broken" in failed.stderr
    assert not (tmp_path / "r2" / "report.md").exists()
    # a metrics file missing from the checkout: the report and comment say so (the check's failure with them), rc 1
    (pr / "metrics" / "budgets.json").unlink()
    missing = sh(pr, "bash", str(ROOT / ".github" / "pr_report.sh"), "origin/main", str(tmp_path / "r3"), check=False,
                 CHECK_FAILURE="check_outputs: metrics/budgets.json missing")
    assert missing.returncode == 1 and "pr_report.sh: metrics/budgets.json not in this checkout" in missing.stderr
    assert "**Missing:** `metrics/budgets.json` is not in this checkout" in (tmp_path / "r3" / "report.md").read_text()
    assert "metrics/budgets.json missing" in (tmp_path / "r3" / "comment.md").read_text()
    # the comment: what fits GitHub's limit (here a small one), naming what it left out of report.md's tables
    comment = (report_dir / "comment.md").read_text()
    assert len(comment) <= 4000 and "### Headline" in comment and "| train.epochs" in comment
    for text in (report, comment):
        title, failure = text.splitlines()[0], text.split("\n\n")[1]
        assert title.startswith("## crossling: metrics against") and failure.startswith("> **The outputs check failed**")
        assert failure.endswith("check_outputs: not on DVC remote 'store': models/x")
    assert "![training_loss](https://img.example/pr-1/training_loss.png)" in comment
    left_out = comment.split("the diffs of ")[1].split(";")[0].split(", ")
    assert left_out and all(f"(`{f}`)" in report and f"(`{f}`)" not in comment for f in left_out)
    assert len(report) > 4000


def test_eval_batch_size_reruns_prediction_but_no_training(project):
    out = dvc(project, "exp", "run", "-S", "train.eval_batch_size=7").stdout
    ran = set(stages_run(out))
    assert PREDICTION <= ran and not {s for s in ran if s.startswith("train_")}
    # evaluate runs only if the predictions changed: with another batch size they may be identical
    assert ran - PREDICTION <= {"check_params", "evaluate", "report"}


def test_queued_experiment_runs_its_own_code_when_the_checkout_is_broken(project):
    dvc(project, "exp", "run", "--queue", "-S", "train.epochs=3")
    common = project / "src" / "crossling" / "common.py"
    good = common.read_text()
    common.write_text(good + '\nraise SystemExit("broken main checkout")\n')
    try:
        # PYTHONPATH as an editable install of this checkout sets it: the broken src on every python's path
        dvc(project, "queue", "start", "-j", "1", PYTHONPATH=str(project / "src"))
        deadline = time.time() + 240
        while time.time() < deadline:
            status = dvc(project, "queue", "status").stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(2)
    finally:
        common.write_text(good)
    assert "Success" in status and "Failed" not in status, status
    exps = json.loads(dvc(project, "exp", "show", "--json").stdout)
    runs = [e["data"] for commit in exps for exp in (commit.get("experiments") or []) for e in exp["revs"]]
    done = [r for r in runs if r["params"]["params.yaml"]["data"]["train"]["epochs"] == 3]
    assert done and done[0]["metrics"]["metrics/headline.json"]["data"]["joint_largest_mean_macro_f1"] >= 0


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_device_that_is_not_there_fails_at_once_in_one_line(project, device):
    # both cases are collected on every machine (the README's test count); where one is there, nothing to refuse
    if {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}[device]():
        pytest.skip(f"{device} is present on this machine: a request for it is not refused")
    def recorded() -> dict:  # check_params records the params.yaml it checked, by design
        return {k: v for k, v in yaml.safe_load((project / "dvc.lock").read_text())["stages"].items()
                if k != "check_params"}

    params, lock = (project / "params.yaml").read_text(), recorded()
    (project / "params.yaml").write_text(params.replace("device: cpu", f"device: {device}"))
    try:
        proc = dvc(project, "repro", check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("crossling.")]
    assert errors == [f"crossling.train: error: params.yaml: train.device: {device} was requested but the libraries "
                      "found only cpu on this machine; use auto or cpu (no silent fall-back)"]
    assert "Running stage 'train_" in proc.stdout and "step 1/" not in proc.stderr  # nothing trained
    assert recorded() == lock  # nothing was recorded
    dvc(project, "checkout")  # DVC removed the stage's outputs before running it; the cache has its model
    ran = stages_run(dvc(project, "repro").stdout)  # the restored params.yaml is checked; the stage DVC started
    assert ran[0] == "check_params" and len(ran) <= 2  # is restored (its dvclive logs are cached too) or runs again
    assert all(stage.startswith("train_") for stage in ran[1:])
    assert "up to date" in dvc(project, "status").stdout


def test_study_protocol_validation_dev_split_equal_steps_and_leave_one_out(tmp_path):
    """The UMSAB-style protocol in one tiny `dvc repro`: the dataset's validation split as dev, every model
    trained the same number of optimizer steps, and a leave-one-language-out model per held-out language."""
    source = make_csv_source(tmp_path / "source", pool_per_class=30, test_per_class=10)
    repo = make_project(tmp_path / "project", source, sizes=(12,), train__seeds=[1], train__max_steps=5,
                        data__dev_split="validation", sample__leave_one_out=list(LANGS))
    out = dvc(repo, "repro").stdout
    assert {f"train_loo@{lang}-1" for lang in LANGS} <= set(stages_run(out))
    budgets = json.loads((repo / "metrics" / "budgets.json").read_text())
    steps = {model: b["seed1"]["optimizer_steps"] for model, b in budgets.items()}
    assert set(steps) >= {"joint_12", "joint_equal", "mono_english", "loo_french"}
    assert set(steps.values()) == {5}, steps  # equal compute whatever the examples
    data = json.loads((repo / "metrics" / "data.json").read_text())
    dev = pd.concat([pd.read_parquet(p) for p in (repo / "data" / "dev").glob("*.parquet")])
    valid_texts = {r["text"] for lang in LANGS for r in csv.DictReader(open(source / lang / "valid.csv"))}
    assert set(dev["text"]) == valid_texts  # the dev split is the validation split, cleaned (nothing to clean here)
    sample = pd.read_parquet(repo / "data" / "samples" / "seed1" / "sample_12.parquet")
    assert not set(sample["text"]) & valid_texts  # samples come from train only
    for lang in LANGS:  # 10 validation texts per class, none removed
        assert data[lang]["raw_validation"] == 30 and data[lang]["dev_duplicate_rows"] == 0
        assert [data[lang][f"dev_{label}"] for label in ("positive", "neutral", "negative")] == [10, 10, 10]
    loo = json.loads((repo / "metrics" / "leave_one_out.json").read_text())
    assert set(loo) == set(LANGS) and all(set(loo[lang]) >= {lang} for lang in LANGS)
    normalized = json.loads((repo / "metrics" / "transfer_normalized.json").read_text())
    assert normalized and (repo / "plots" / "transfer_normalized.png").exists()
    assert "up to date" in dvc(repo, "status").stdout


def test_llama_without_pad_with_lora_killed_after_an_epoch_resumes_to_the_same_model(tmp_path):
    """The hardest case through the real dvc: a decoder whose tokenizer has no pad token, LoRA, and a training stage
    killed (SIGKILL, sent by the stage itself once its first epoch's checkpoint is saved) that `dvc repro` resumes;
    the resumed model and its logs equal an uninterrupted run's."""
    import tiny_checkpoints

    from crossling.train import KILL_AFTER_EPOCH

    source = make_csv_source(tmp_path / "source", pool_per_class=20, test_per_class=6)
    checkpoint = tiny_checkpoints.llama_without_pad(tmp_path / "llama")
    repo = make_project(tmp_path / "project", source, sizes=(12,), train__seeds=[1], train__device="cpu",
                        train__epochs=3, train__method="lora", train__learning_rate=1e-3,
                        model__checkpoint=str(checkpoint))
    run, name = "train_joint@12-1", "joint_12_seed1"
    killed = dvc(repo, "repro", run, check=False, **{KILL_AFTER_EPOCH: "1"})  # the stage and what it depends on
    assert killed.returncode != 0 and stages_run(killed.stdout)[-1] == run, killed.stdout
    saved = sorted(p.name for p in (repo / "checkpoints" / name).glob("checkpoint-*"))
    assert saved == ["checkpoint-3"], saved  # 24 examples, batch 8: the first epoch's 3 steps
    resumed = dvc(repo, "repro", "predict_joint@12-1")
    assert stages_run(resumed.stdout) == [run, "predict_joint@12-1"]
    assert "resuming from" in resumed.stderr
    assert not (repo / "checkpoints" / name).exists()  # removed when the stage completed
    weights = (repo / "models" / name / "model.safetensors").read_bytes()
    summary = json.loads((repo / "logs" / name / "metrics.json").read_text())
    metrics = repo / "logs" / name / "plots" / "metrics"
    curves = {f: (metrics / f).read_text() for f in ("loss.tsv", "epoch.tsv", "dev/macro_f1_english.tsv")}
    assert summary["optimizer_steps"] == 9 and summary["trainable_parameters"] < summary["total_parameters"]
    dvc(repo, "repro", "-f", "-s", run)  # the same stage uninterrupted
    assert (repo / "models" / name / "model.safetensors").read_bytes() == weights
    assert json.loads((repo / "logs" / name / "metrics.json").read_text()) == summary
    assert all((metrics / f).read_text() == text for f, text in curves.items())  # step and value, no timestamp
    out = sh(repo, str(BIN / "python"), "-m", "crossling.classify", "--model", f"models/{name}", "--json",
             "good day", PYTHONPATH=str(repo / "src"))
    assert json.loads(out.stdout.splitlines()[0])["label"] in ("positive", "neutral", "negative")


def test_pretrained_benchmark_figures_carry_every_number_its_docs_read(project):
    """benchmarks/pretrained_run.py's JSON holds what docs/results.md quotes: intervals, dev, health, differences."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import pretrained_run
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = pretrained_run.figures(project, list(LANGS), [12, 30])
    joint = json.loads((project / "metrics" / "joint.json").read_text())
    scores = {**joint, **json.loads((project / "metrics" / "transfer.json").read_text())}
    assert out["joint_equal_macro_f1"] == {lang: joint["joint_equal"][lang]["macro_f1"] for lang in LANGS}
    assert set(out["test_macro_f1_interval"]) == {"joint_12", "joint_30", "joint_equal", "mono_english", "mono_french"}
    for model, intervals in out["test_macro_f1_interval"].items():
        for lang, (low, high) in intervals.items():
            assert low <= scores[model][lang]["macro_f1"] <= high, (model, lang)
    assert set(out["dev_macro_f1_last_epoch"]) == {"joint_12_seed1", "joint_30_seed1", "joint_equal_seed1",
                                                   "mono_english_seed1", "mono_french_seed1"}
    rows = list(csv.DictReader((project / "logs" / "joint_30_seed1" / "plots" / "metrics" / "dev"
                                / "macro_f1_french.tsv").open(), delimiter="\t"))
    assert out["dev_macro_f1_last_epoch"]["joint_30_seed1"]["french"] == round(float(rows[-1]["macro_f1_french"]), 6)
    assert set(out["dev_macro_f1_last_epoch"]["mono_french_seed1"]) == {"french", "mean"}
    detailed = json.loads((project / "metrics" / "detailed.json").read_text())
    assert set(out["top_class_share"]) == set(out["dev_macro_f1_last_epoch"])
    share = detailed["mono_french_seed1"]["english"]["top_class_share"]
    assert out["top_class_share"]["mono_french_seed1"]["english"] == share
    data = json.loads((project / "metrics" / "data.json").read_text())
    assert out["test_scripts"] == {lang: data[lang]["scripts"]["test"] for lang in LANGS}
    assert out["health"] == json.loads((project / "metrics" / "health.json").read_text())
    assert out["differences"] == json.loads((project / "metrics" / "differences.json").read_text())
