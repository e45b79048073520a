"""End to end, a second chain beside tests/test_pipeline.py's (pytest -n runs each file on one worker): growing a
study (a seed, a language) and queued experiments that remove runs, on a project of its own."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import readme_keep_command
from test_pipeline import BIN, LANGS, dvc, first_run, sh, stages_run, training_stages

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return first_run(tmp_path_factory)


def test_adding_a_seed_runs_only_its_stages_and_reports_the_spread(project):
    out = dvc(project, "exp", "run", "-S", "train.seeds=[1,2]").stdout
    # the sample stage writes seed 2's samples; seed 1's stay byte for byte, so none of its models re-trains
    assert set(stages_run(out)) == (training_stages(2) | training_stages(2, "predict")
                                    | {"check_params", "sample", "evaluate", "report"})
    joint = json.loads((project / "metrics" / "joint.json").read_text())
    for lang in LANGS:
        cell = joint["joint_30"][lang]
        assert cell["seeds"] == 2 and cell["macro_f1_seed_std"] >= 0
        assert cell["macro_f1_ci_low"] <= cell["macro_f1"] <= cell["macro_f1_ci_high"]
    report = (project / "reports" / "results.md").read_text()
    assert "2 seeds resampled with replacement" in report
    assert all(report.count(lang) >= 5 for lang in LANGS)
    # keeping it as docs/workflow.md says leaves nothing behind: new outputs' entries in DVC's .gitignore files too
    sh(project, *readme_keep_command())
    sh(project, "git", "commit", "-qm", "two seeds")
    assert sh(project, "git", "status", "--porcelain").stdout == ""


def run_queue(project: Path, timeout: float = 600) -> str:
    dvc(project, "queue", "start", "-j", "1")
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = dvc(project, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(2)
    raise AssertionError(f"the queue did not finish in {timeout} s:\n{status}")


def test_queued_experiments_that_remove_runs_finish_and_compare_pairs_two_experiments(project, tmp_path):
    # the committed state holds both seeds' logs and metrics (the previous test kept them)
    assert (project / "logs" / "joint_30_seed2").exists() and sh(project, "git", "status", "--porcelain").stdout == ""
    dvc(project, "exp", "run", "--queue", "-n", "one-seed", "-S", "train.seeds=[1]")
    dvc(project, "exp", "run", "--queue", "-n", "one-language", "-S", "data.languages=[english]")
    # one seed too, so that it costs half: it differs from one-seed in the learning rate only (3e-3 there)
    dvc(project, "exp", "run", "--queue", "-n", "lr-high", "-S", "train.seeds=[1]", "-S", "train.learning_rate=0.01")
    status = run_queue(project)
    names = ("one-seed", "one-language", "lr-high")
    assert all(re.search(rf"\b{name}\s.*\bSuccess\b", status) for name in names), status
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    columns = {}
    for commit in shown:
        if commit.get("experiments"):  # the commit they were queued from: two seeds
            assert commit["data"], commit.get("error")
            columns["committed"] = set(commit["data"]["metrics"]["metrics/headline.json"]["data"])
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                columns[rev["name"]] = set(rev["data"]["metrics"]["metrics/headline.json"]["data"])
    assert columns["one-seed"] == columns["lr-high"] == columns["committed"]  # the same names, whatever the seeds
    assert len(columns["one-seed"]) <= 10 + 3 * len(LANGS)
    assert len(columns["one-language"]) <= 10 + 3

    out = sh(project, str(BIN / "python"), "-m", "crossling.compare", "one-seed", "lr-high", "--out",
             str(tmp_path / "compare.json"), "--bootstrap-samples", "200", PYTHONPATH=str(project / "src")).stdout
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["params_that_differ"] == {"train.learning_rate": {"one-seed": 0.003, "lr-high": 0.01}}
    rows = {(r["role"], r["test_language"]): r for r in result["differences"]}
    for lang in LANGS:
        row = rows["joint_largest", lang]
        assert row["ci_low"] <= row["difference"] <= row["ci_high"] and 0 <= row["p"] <= row["p_adjusted"] <= 1
        assert row["difference"] == pytest.approx(row["macro_f1"] - row["baseline_macro_f1"], abs=2e-6)
        assert ("mono_english", lang) in rows  # in-language and zero-shot cells
    assert "| lr-high | joint_largest | english |" in out and "Holm" in out
    # both sides read the same data: it is in the shared line, not a row; the JSON keeps every entry
    assert re.search(r"^- Same on every side: .*data\.content_md5 = [0-9a-f]{32}", out, re.M)
    assert "| data.content_md5 |" not in out
    assert "data.content_md5" in result["provenance"]["lr-high"]

    # a workspace whose outputs are not what its params and code give (here: a test split edited by hand) is
    # refused in one line, naming the stages dvc status finds (test texts that differ: tests/test_compare.py)
    test = pd.read_parquet(project / "data" / "test.parquet")
    test.loc[test["language"] == "english", "text"] += " changed"
    original = (project / "data" / "test.parquet").read_bytes()
    test.to_parquet(project / "data" / "test.parquet", index=False)
    try:
        refused = sh(project, str(BIN / "python"), "-m", "crossling.compare", "one-seed", "workspace", check=False,
                     PYTHONPATH=str(project / "src"))
    finally:
        (project / "data" / "test.parquet").write_bytes(original)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "crossling.compare: error: the workspace is not reproduced: dvc status finds ")
    assert "combine" in refused.stderr.strip().splitlines()[-1]


def test_adding_a_language_trains_only_its_own_monolingual_model(project):
    # last in this file: it leaves german and one seed in the workspace's params
    assert "up to date" in dvc(project, "status").stdout
    assert yaml.safe_load((project / "params.yaml").read_text())["train"]["seeds"] == [1, 2]
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    # one of the two seeds, so that it costs half: seed 1's stages of the other languages are in the lock
    seeds = [1]
    out = dvc(project, "exp", "run", "-S", "data.languages=[english,french,german]", "-S", "train.seeds=[1]").stdout
    ran = set(stages_run(out))
    after = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    # a pretrained checkpoint's base does not depend on which languages are studied
    assert "base" in ran and after["base"]["outs"] == lock["base"]["outs"]
    assert {f"{step}_mono@german-{seed}" for step in ("train", "predict") for seed in seeds} <= ran
    assert not {s for s in ran if s.startswith("train_mono@") and "german" not in s}, sorted(ran)
    # the other languages' models are tested on german too, and the joint samples now hold german
    assert {f"predict_mono@english-{seeds[0]}", f"train_joint@30-{seeds[0]}", "evaluate", "report"} <= ran
    assert all(after[f"train_mono@{lang}-{seed}"] == lock[f"train_mono@{lang}-{seed}"]
               for lang in LANGS for seed in seeds)
    transfer = json.loads((project / "metrics" / "transfer.json").read_text())
    assert set(transfer["mono_english"]) == {"english", "french", "german"}
