"""The grid as a Slurm job array (crossling.slurm): resources, scripts, failure reports, and the real thing on a
single-node Slurm cluster started here (tests/slurm_cluster.py) against a serial `dvc repro` of the same commit."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from conftest import make_config, make_csv_source, stage_error
from slurm_cluster import Cluster, missing_requirements
from test_pipeline import BIN, dvc, make_project, sh, stages_run

from crossling import slurm
from crossling.common import DataError
from crossling.config import ConfigError, load_config

TASKS = [["train_joint@12-1", "predict_joint@12-1"], ["train_joint_equal@1", "predict_joint_equal@1"],
         ["train_mono@english-1", "predict_mono@english-1"], ["train_mono@french-1", "predict_mono@french-1"]]
TRAINING = {task[0] for task in TASKS}


def resources(argv: tuple[str, ...], base):
    argv = list(argv)
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    return slurm.resources(slurm.parser().parse_args(argv[:argv.index("--")] if "--" in argv else argv), base, rest)


def test_resources_come_from_params_with_the_command_line_over_them():
    base = make_config({"slurm": {"gpus": 2, "partition": "gpu", "sbatch_options": ["--qos=high"]}}).slurm
    cfg = resources(("--cpus", "8", "--mem", "none", "--gpu-type", "a100", "--", "--constraint=x"), base)
    options = slurm.sbatch_options(cfg, "crossling-train", Path("/r/logs/task-%a.out"), gpus=True)
    assert options == ["--job-name=crossling-train", "--output=/r/logs/task-%a.out", "--cpus-per-task=8",
                       "--time=04:00:00", "--partition=gpu", "--gres=gpu:a100:2", "--qos=high", "--constraint=x"]
    assert "--gres" not in " ".join(slurm.sbatch_options(cfg, "p", Path("p.out"), gpus=False))
    no_gpus = resources(("--gpus", "0"), base)
    assert "--gres" not in " ".join(slurm.sbatch_options(no_gpus, "t", Path("t.out"), gpus=True))


@pytest.mark.parametrize("argv, message", [
    (("--time", "4h"), "slurm.time: must be minutes, HH:MM:SS or D-HH:MM:SS (Slurm's --time), e.g. 04:00:00, got '4h'"),
    (("--cpus", "0"), "slurm.cpus: must be a positive integer, got 0"),
    (("--", "--array=0-3"), "slurm.sbatch_options: --array is set by crossling.slurm itself"),
    (("--", "--depend=afterok:99"), "slurm.sbatch_options: --depend (--dependency) is set by crossling.slurm itself"),
    (("--", "-a1-2"), "slurm.sbatch_options: -a1-2 (-a) is set by crossling.slurm itself"),
    (("--", "-Ha0-3"), "slurm.sbatch_options: -Ha0-3 (-a) is set by crossling.slurm itself"),  # --hold --array=0-3
    (("--", "qos=high"), "slurm.sbatch_options: 'qos=high' is not an sbatch option; write each as --name=value"),
])
def test_bad_resources_are_one_line_naming_the_field(argv, message):
    with pytest.raises(ConfigError) as err:
        resources(argv, make_config().slurm)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_bad_command_line_value_and_a_folder_that_is_no_submission_are_one_line(tmp_path, capsys):
    params = str(Path(__file__).parents[1] / "params.yaml")
    for argv, message in (((("--params", params, "--time", "4h")), "slurm.time: must be minutes, HH:MM:SS or D-HH:MM:SS"),
                          (("--check", str(tmp_path)), f"{tmp_path} is not a submission's folder (no stages.txt)")):
        with pytest.raises(SystemExit) as exit_:
            slurm.main(list(argv))
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith(f"crossling.slurm: error: {message}") and err.count("\n") == 1


def test_a_bad_slurm_section_in_params_fails_every_stage_in_one_line(tmp_path, capsys):
    from conftest import with_defaults, write_params

    params = write_params(tmp_path / "params.yaml", with_defaults({"slurm": {"mem": "16 GB"}}))
    with pytest.raises(SystemExit):
        slurm.main(["--params", str(params), "--dry-run"])
    assert stage_error(capsys.readouterr().err) == (
        f"crossling.slurm: error: {params}: slurm.mem: must be a number with an optional unit K, M, G or T "
        "(Slurm's --mem), e.g. 16G, got '16 GB'")


@pytest.mark.parametrize("config_file, content, message", [
    (None, None, "is not a DVC project (no .dvc); run this in the crossling checkout"),
    ("config", "[core\n", "DVC cannot read its config (config file error: "),
    ("config", "[core]\nremote = store\n[bogus]\n a = 1\n", "'bogus'"),
    ("config.local", "[core\n", "[core"),
    ("config", None, "DVC cannot open the project at {root}: {root}/.dvc/config: Is a directory"),
])
def test_a_checkout_dvc_cannot_read_is_one_line(tmp_path, monkeypatch, config_file, content, message):
    if config_file is not None:
        from dvc.repo import Repo

        Repo.init(str(tmp_path), no_scm=True).close()
        path = tmp_path / ".dvc" / config_file
        if content is None:  # a directory where the file should be
            path.unlink()
            path.mkdir()
        else:
            path.write_text(content)
    monkeypatch.setattr(slurm, "run", lambda cmd, cwd=None: "")  # git: a clean checkout
    with pytest.raises(DataError) as error:  # submit reads the default remote before anything else of DVC's
        slurm.submit(tmp_path, load_config(Path(__file__).parents[1] / "params.yaml").slurm, dry_run=True)
    assert message.format(root=tmp_path) in str(error.value) and "\n" not in str(error.value)
    if content is not None:
        assert str(error.value).endswith(f"correct the line or key it names in {tmp_path}/.dvc/config, the "
                                         "config.local beside it, or your global or system DVC config")


def test_the_final_job_names_each_failed_stage_and_its_log(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "status").mkdir(parents=True)
    (run_dir / "stages.txt").write_text("train_joint@12-1\ntrain_mono@english-1 predict_mono@english-1\n"
                                        "train_mono@french-1\n")
    (run_dir / "status" / "prep").write_text("0\n")
    (run_dir / "status" / "task-0").write_text("0\n")
    (run_dir / "status" / "task-1").write_text("2\n")  # task 2 left no status: killed, cancelled or timed out
    with pytest.raises(SystemExit) as exit_:
        slurm.main(["--check", str(run_dir)])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"crossling.slurm: error: training stage train_mono@english-1 (with predict_mono@english-1) failed (exit 2): log {run_dir}/logs/task-1.out",
        f"crossling.slurm: error: training stage train_mono@french-1 did not finish (cancelled, timed out or killed: "
        f"see the end of its log): log {run_dir}/logs/task-2.out",
        "crossling.slurm: fix the cause and run the same command again: finished stages are restored from the "
        "run-cache, not re-run"]
    (run_dir / "status" / "prep").write_text("1\n")
    assert slurm.check(run_dir) == [f"preparation job (stages before training) failed (exit 1): log "
                                    f"{run_dir}/logs/prep.out"]


def test_a_job_ended_by_a_signal_is_reported_as_not_finished(tmp_path):
    """Slurm ends a cancelled, timed-out or preempted job with SIGTERM to its processes; bash's EXIT trap would then
    record 0 and the final job would count the stage as done and train it itself. The job script records 143."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text("#!/bin/sh\nexec sleep 60\n")  # the task's clone, still running when Slurm ends it
    (fake / "git").chmod(0o755)
    run_dir = tmp_path / "run"
    slurm.write_scripts(run_dir, tmp_path, "0" * 40, [["train_joint@12-1", "predict_joint@12-1"]], ["base"],
                        str(tmp_path))
    (run_dir / "status" / "prep").write_text("0\n")
    job = subprocess.Popen(["bash", str(run_dir / "task.sh")], stdout=subprocess.PIPE, text=True,
                           start_new_session=True,
                           env=dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", SLURM_ARRAY_TASK_ID="0"))
    assert job.stdout.readline().startswith("crossling.slurm: task job")
    assert job.stdout.readline().startswith("crossling.slurm: task 0 runs train_joint@12-1")
    os.killpg(job.pid, signal.SIGTERM)
    assert job.wait(timeout=30) == 143
    assert (run_dir / "status" / "task-0").read_text() == "143\n"
    assert slurm.check(run_dir) == [f"training stage train_joint@12-1 (with predict_joint@12-1) did not finish "
                                    f"(cancelled, timed out or killed: see the end of its log): log "
                                    f"{run_dir}/logs/task-0.out"]


@pytest.fixture
def tiny_project(tmp_path) -> Path:
    source = make_csv_source(tmp_path / "source", languages=("english", "french"), pool_per_class=30,
                             test_per_class=10)
    return make_project(tmp_path / "project", source, sizes=(12,), train__seeds=[1], train__epochs=1,
                        train__device="cpu")


def test_a_dry_run_writes_the_jobs_of_the_current_params_and_refuses_what_the_jobs_could_not_use(tiny_project):
    python = str(BIN / "python")
    # the environment not activated (no dvc on PATH): the remote is read without the dvc command
    no_remote = subprocess.run([python, "-m", "crossling.slurm", "--dry-run"], cwd=tiny_project, capture_output=True,
                               text=True, env=dict(os.environ, PATH="/usr/bin:/bin"))
    assert no_remote.returncode == 2 and no_remote.stderr.startswith(
        "crossling.slurm: error: no default DVC remote; the jobs exchange outputs through it: dvc remote add -d")
    dvc(tiny_project, "remote", "add", "-d", "store", str(tiny_project.parent / "store"))
    dirty = sh(tiny_project, python, "-m", "crossling.slurm", "--dry-run", check=False)
    assert dirty.returncode == 2 and dirty.stderr == (
        "crossling.slurm: error: the checkout has uncommitted changes; every job runs the committed code and "
        "params: commit them (or git stash) and submit again\n")
    sh(tiny_project, "git", "commit", "-qam", "remote")

    out = sh(tiny_project, python, "-m", "crossling.slurm", "--dry-run", "--gpus", "2", "--max-parallel", "3",
             "--", "--qos=high").stdout.splitlines()
    run_dir = next((tiny_project / ".slurm").iterdir())
    record = json.loads((run_dir / "submission.json").read_text())
    assert record["tasks"] == TASKS and record["jobs"] == {"prep": "<prep>", "task": "<task>", "final": "<final>"}
    prep, task, final = (shlex.split(line) for line in out)
    assert "--gres=gpu:2" not in prep and prep[-2:] == ["--qos=high", f"{run_dir}/prep.sh"]
    assert "--gres=gpu:2" in task and task[-5:-1] == ["--qos=high", "--array=0-3%3", "--kill-on-invalid-dep=yes",
                                                        "--dependency=afterok:<prep>"]
    assert "--gres=gpu:2" in final and final[-2] == "--dependency=afterany:<task>"
    assert (run_dir / "stages.txt").read_text().splitlines() == [" ".join(t) for t in TASKS]
    script = (run_dir / "task.sh").read_text()
    assert 'dvc repro --pull --single-item "$stage"' in script and "dvc push --run-cache $STAGES" in script
    assert "dvc repro --pull base check_params combine download sample tokenization" in (run_dir / "prep.sh").read_text()
    for name in ("prep", "task", "final"):
        assert subprocess.run(["bash", "-n", str(run_dir / f"{name}.sh")]).returncode == 0
    assert sh(tiny_project, "git", "status", "--porcelain").stdout == ""  # .slurm/ is ignored
    # a job's clone of the commit also gets .dvc/config.local (remote credentials, a --local default), not in git
    clone_fn = script[:script.index("\n}\n") + 3]
    sh(tiny_project, "bash", "-c", clone_fn + f"clone {run_dir}/work/bare")
    assert not (run_dir / "work" / "bare" / ".dvc" / "config.local").exists()
    dvc(tiny_project, "config", "--local", "core.autostage", "true")
    sh(tiny_project, "bash", "-c", clone_fn + f"clone {run_dir}/work/probe")
    assert ((run_dir / "work" / "probe" / ".dvc" / "config.local").read_text()
            == (tiny_project / ".dvc" / "config.local").read_text())
    assert (run_dir / "work" / "probe" / "dvc.yaml").exists()

    # an sbatch that queues the preparation, then refuses the array: the queued job is named, to be cancelled
    fake = tiny_project.parent / "fake-slurm"
    fake.mkdir()
    (fake / "sbatch").write_text('#!/bin/sh\nif [ -e "$0.called" ]; then echo "sbatch: error: Invalid account" >&2; '
                                 'exit 1; fi\ntouch "$0.called"; echo 1001\n')
    (fake / "sbatch").chmod(0o755)
    time.sleep(1.1)  # a submission's folder is named by the second
    failed = subprocess.run([python, "-m", "crossling.slurm"], cwd=tiny_project, capture_output=True, text=True,
                            env=dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}"))
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1
    assert failed.stderr.endswith("failed: sbatch: error: Invalid account; already queued: 1001: cancel them "
                                  "(scancel 1001), then submit again\n")


def test_a_grid_of_a_commit_whose_earlier_grid_still_runs_is_refused(tiny_project):
    """The tasks of one commit keep their Trainer checkpoints in one folder (so a new submission resumes them): two
    grids of it at once would remove and resume each other's. Other commits' checkpoints, which no grid resumes,
    are removed once none of their jobs is queued or running."""
    dvc(tiny_project, "remote", "add", "-d", "store", str(tiny_project.parent / "store"))
    sh(tiny_project, "git", "commit", "-qam", "remote")
    commit = sh(tiny_project, "git", "rev-parse", "HEAD").stdout.strip()
    workdir = tiny_project / ".slurm"
    for name, other, jobs in (("a", commit, ["77", "78", "79"]), ("b", "b" * 40, ["50", "51", "52"]),
                              ("c", "c" * 40, ["60", "61", "62"])):
        (workdir / f"2026010{ord(name) - 96}-000000-{other[:8]}").mkdir(parents=True)
        (workdir / f"2026010{ord(name) - 96}-000000-{other[:8]}" / "submission.json").write_text(
            json.dumps({"commit": other, "jobs": dict(zip(("prep", "task", "final"), jobs))}))
        (workdir / "checkpoints" / other[:12] / "joint_12_seed1").mkdir(parents=True)
    (workdir / "checkpoints" / "joint_12_seed1").mkdir()  # no commit's folder: never removed
    fake = tiny_project.parent / "fake-slurm"
    fake.mkdir()
    # array jobs 78 and 61 still there; every user's jobs, hidden partitions too
    (fake / "squeue").write_text('#!/bin/sh\n[ "$*" = "-h -a -o %F" ] || exit 9\necho 12\necho 78\necho 61\n')
    (fake / "sbatch").write_text("#!/bin/sh\necho 1001\n")
    for tool in ("squeue", "sbatch"):
        (fake / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    refused = subprocess.run([str(BIN / "python"), "-m", "crossling.slurm"], cwd=tiny_project, capture_output=True,
                             text=True, env=env)
    assert refused.returncode == 2 and refused.stderr == (
        "crossling.slurm: error: a grid of this commit is still queued or running (jobs 77 78 79); its tasks would "
        "share their Trainer checkpoints: wait for it, or scancel it, then submit again\n")
    (fake / "squeue").write_text("#!/bin/sh\necho 12\necho 61\n")  # this commit's grid done, c's still running
    broken = workdir / "20260104-000000-dddddddd" / "submission.json"
    broken.parent.mkdir()
    broken.write_text("{")  # whose jobs its grid had is unknown: nothing is removed
    kept = subprocess.run([str(BIN / "python"), "-m", "crossling.slurm"], cwd=tiny_project, capture_output=True,
                          text=True, env=env)
    assert kept.returncode == 0 and "removed" not in kept.stdout and (workdir / "checkpoints" / ("b" * 12)).is_dir()
    broken.unlink()
    time.sleep(1.1)  # a submission's folder is named by the second
    submitted = subprocess.run([str(BIN / "python"), "-m", "crossling.slurm"], cwd=tiny_project, capture_output=True,
                               text=True, env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.startswith(f"crossling.slurm: removed {workdir}/checkpoints/{'b' * 12}: Trainer "
                                       "checkpoints of another commit, none of whose jobs is queued or running\n")
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == sorted([commit[:12], "c" * 12,
                                                                                  "joint_12_seed1"])
    task = next(workdir.glob("2*/task.sh")).read_text()  # a submitted one: the earlier ones are records only
    assert f"CHECKPOINTS={workdir}/checkpoints/{commit[:12]}  #" in task
    assert 'mkdir -p "$CHECKPOINTS"\nln -s "$CHECKPOINTS" checkpoints\n' in task  # set -e stops at either


def test_the_job_scripts_are_valid_bash_in_a_project_path_with_quotes(tmp_path):
    root = tmp_path / "o'brien \"proj\" $HOME {job} ü"
    slurm.write_scripts(root / ".slurm" / "run", root, "0" * 40, [["train_joint@12-1"]], ["base"], str(root))
    for name in ("prep", "task", "final"):
        script = root / ".slurm" / "run" / f"{name}.sh"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script.read_text()
    final = (root / ".slurm" / "run" / "final.sh").read_text()
    paths = subprocess.run(["bash", "-c", final[:final.index("clone()")] + 'printf "%s\\n%s" "$RUN" "$CHECKPOINTS"'],
                           capture_output=True, text=True).stdout
    assert paths == f"{root}/.slurm/run\n{root}/.slurm/checkpoints/{'0' * 12}"


def test_job_logs_go_to_the_run_folder_whatever_percent_signs_its_path_holds(tmp_path):
    """Slurm reads % in --output as a replacement symbol (.../a%20b/logs: .../a0b/logs, where the job cannot open its
    log and dies unrun) and a backslash as turning replacements off (every task writing one task-%a.out)."""
    assert slurm.output_pattern(Path("/p/a%20b 100%a/logs"), "task-%a.out") == "/p/a%%20b 100%%a/logs/task-%a.out"
    with pytest.raises(slurm.SlurmError, match="backslash"):
        slurm.output_pattern(Path("/p/a\\b/logs"), "prep.out")


def output_hashes(lock: dict) -> dict[str, str]:
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def wait_for_jobs(cluster: Cluster, jobs: list[str], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", ",".join(jobs), "-o", "%i %T"], env=cluster.env,
                               capture_output=True, text=True).stdout
        if not queue.strip():
            return
        time.sleep(2)
    raise AssertionError(f"the grid did not finish in {timeout:.0f} s:\n{queue}")


def grid_project(tmp: Path, epochs: int) -> tuple[Path, Path]:
    """The tiny grid's project (english and french, size 12, one seed) with a DVC remote, and a clone of it for
    a serial `dvc repro` of the same commit (also scripts/slurm_resume.py's)."""
    source = make_csv_source(tmp / "source", languages=("english", "french"), pool_per_class=30, test_per_class=10)
    project = make_project(tmp / "project", source, sizes=(12,), train__seeds=[1], train__epochs=epochs,
                           train__device="cpu")
    dvc(project, "remote", "add", "-d", "store", str(tmp / "store"))
    sh(project, "git", "commit", "-qam", "remote")
    sh(tmp, "git", "clone", "-q", str(project), str(tmp / "serial"))
    return project, tmp / "serial"


@pytest.mark.e2e
def test_the_grid_as_a_slurm_job_array_equals_a_serial_run(tmp_path):
    why = missing_requirements()
    if why:
        pytest.fail(f"cannot start Slurm: {why}")
    project, serial = grid_project(tmp_path, epochs=1)

    def serial_repro() -> float:
        start = time.monotonic()
        dvc(serial, "repro")
        return time.monotonic() - start

    # The serial run goes alongside the grid (the test's time is the longer of the two, not the sum); the wall
    # times in docs/scaling.md were measured one after the other: CROSSLING_MEASURE_WALL_TIME=1.
    one_after_the_other = os.environ.get("CROSSLING_MEASURE_WALL_TIME") == "1"
    pool = ThreadPoolExecutor(max_workers=1)
    serial_run = pool.submit(serial_repro)
    if one_after_the_other:
        serial_run.result()
    cluster = Cluster(tmp_path / "slurm", cpus=2)
    try:
        cluster.start()
        start = time.monotonic()
        submitted = sh(project, str(BIN / "python"), "-m", "crossling.slurm", "--gpus", "0", "--cpus", "1",
                       "--mem", "1500M", "--time", "15", "--", "--nice=0", SLURM_CONF=str(cluster.conf))
        record = json.loads(next((project / ".slurm").glob("*/submission.json")).read_text())
        assert record["tasks"] == TASKS
        assert record["prepared"] == ["base", "check_params", "combine", "download", "sample", "tokenization"]
        assert f"squeue -j {record['jobs']['prep']},{record['jobs']['task']}" in submitted.stdout
        wait_for_jobs(cluster, list(record["jobs"].values()), timeout=600)
        slurm_s = time.monotonic() - start
    finally:
        cluster.stop()
        serial_s = serial_run.result()  # raises what the serial run raised
        pool.shutdown()
    run_dir = Path(record["run_dir"])
    final_log = (run_dir / "logs" / "final.out").read_text()
    assert (run_dir / "status" / "final").read_text().strip() == "0", final_log
    print(f"\nwall time{'' if one_after_the_other else ' (the two at once)'}: serial dvc repro {serial_s:.0f} s, "
          f"Slurm grid (submit to final job's end) {slurm_s:.0f} s")

    # every training (and prediction) stage ran in its task, and was restored, not run, by the final job
    for i, task in enumerate(TASKS):
        assert stages_run((run_dir / "logs" / f"task-{i}.out").read_text()) == task
        for stage in task:
            assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in final_log
    # what runs there: evaluation and report, and the stages DVC never restores (no outputs, or `cache: false` ones)
    assert set(stages_run(final_log)) == {"check_params", "combine", "tokenization", "evaluate", "report"}, final_log
    assert "every job of the grid succeeded" in final_log
    # every job pushed what it made: no clone is kept, nor any Trainer checkpoint (kept only to resume)
    assert list((run_dir / "work").iterdir()) == [] and list((run_dir.parent / "checkpoints").iterdir()) == []

    serial_lock = yaml.safe_load((serial / "dvc.lock").read_text())
    grid_lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(grid_lock["stages"]) == set(serial_lock["stages"])
    assert output_hashes(grid_lock) == output_hashes(serial_lock)  # models, logs, predictions, metrics, report
    assert "up to date" in dvc(project, "status").stdout
