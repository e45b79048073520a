"""slurm: the grid as a Slurm job array, through DVC's run-cache (docs/scaling.md).

`python -m crossling.slurm` submits, for the commit checked out here:
  1. a preparation job: a clone at that commit runs every stage that comes before training (params check, data,
     samples, base model, tokenizer statistics), pushes outputs and run-cache entries to the DVC remote, and
     shares its dvc.lock with the other jobs;
  2. a job array, one task per training stage of the current params (DVC's graph): each task clones the commit,
     takes the preparation's dvc.lock, runs `dvc repro --pull --single-item` of its training stage and then of
     its model's prediction stage (pulling only their inputs), and pushes their outputs and run-cache entries;
  3. a final job, after every task has ended: it names each task that failed (stage and log) and fails, or runs
     `dvc repro --pull` in this checkout: every training and prediction stage is restored from the run-cache,
     not run, and evaluation and report run once, writing the one dvc.lock.
Resources come from params.yaml's `slurm:` section, overridden on the command line; options after `--` go to
every sbatch as written. Running the same command again resumes: finished stages are restored, not re-run.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, fields, replace
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from crossling.common import DataError, in_params
from crossling.config import ConfigError, SlurmConfig, _one_line, load_config
from crossling.project import open_repo

PREFIX = "crossling.slurm"


class SlurmError(RuntimeError):
    """A submission that cannot go ahead; one line saying why and what to do."""


def run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} not found; run this on a Slurm login node (with sbatch on PATH)") from None
    if proc.returncode:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise SlurmError(f"`{' '.join(cmd)}` failed: {last[0]}")
    return proc.stdout


def grid_plan(repo) -> tuple[list[list[str]], list[str]]:
    """The array's tasks, and what the preparation runs, from DVC's graph of the current params.

    A task is a training stage and the stages that depend on nothing but it and the preparation (its model's
    predictions), run in that order. The preparation runs every stage no training stage comes before (data,
    samples, base model, tokenizer statistics); the final job runs the rest (evaluation, report).
    """
    import networkx as nx

    graph = repo.index.graph  # an edge goes from a stage to a stage it depends on
    training = sorted((s for s in graph.nodes if s.addressing.startswith("train_")), key=lambda s: s.addressing)
    after = set().union(*(nx.ancestors(graph, s) for s in training))
    prep = {s for s in graph.nodes if s not in after and s not in training}
    tasks = [[stage.addressing, *sorted(p.addressing for p in graph.predecessors(stage)
                                        if nx.descendants(graph, p) <= prep | {stage})] for stage in training]
    return tasks, sorted(s.addressing for s in prep)


def output_pattern(folder: Path, name: str) -> str:
    """--output for the log `name` (which may use Slurm's %a) in `folder`: Slurm reads a % in the folder as a
    replacement symbol (a checkout at .../a%20b logs to .../a0b, which does not exist, and the job dies unrun)."""
    if "\\" in str(folder):  # a backslash turns every replacement off: the tasks would share one task-%a.out
        raise SlurmError(f"{folder}: Slurm cannot name a job log in a path with a backslash; submit from a checkout "
                         "(or set slurm.workdir to a folder) whose path has none")
    return f"{str(folder).replace('%', '%%')}/{name}"


def sbatch_options(cfg: SlurmConfig, name: str, log: str, gpus: bool) -> list[str]:
    """The options of one sbatch: what crossling sets, the resources, then the pass-through options."""
    options = [f"--job-name={name}", f"--output={log}", f"--cpus-per-task={cfg.cpus}", f"--time={cfg.time}"]
    options += [f"--{key}={getattr(cfg, key)}" for key in ("mem", "partition", "account") if getattr(cfg, key)]
    if gpus and cfg.gpus:
        options.append(f"--gres=gpu:{cfg.gpu_type}:{cfg.gpus}" if cfg.gpu_type else f"--gres=gpu:{cfg.gpus}")
    return options + list(cfg.sbatch_options)


CHECKPOINTS = "checkpoints"  # under slurm.workdir, one folder per commit

SCRIPT_HEAD = """#!/bin/bash
# written by crossling.slurm for {commit}
set -euo pipefail
# Slurm ends a job (scancel, time limit, preemption) with a signal, after which the EXIT trap would record 0
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM
export PATH={bin}:$PATH DVC_NO_ANALYTICS=1
RUN={run}
CHECKPOINTS={checkpoints}  # the commit's Trainer checkpoints, outside the clones
clone() {{  # a clone of the submitted commit (shared filesystem: the submitting checkout's git objects)
  rm -rf "$1"
  git clone -q --no-checkout {repo} "$1"
  git -C "$1" checkout -q --detach {commit}
  if [ -f {local_config} ]; then cp {local_config} "$1/.dvc/"; fi  # remote credentials or default: not in git
}}
echo "crossling.slurm: {job} job ${{SLURM_JOB_ID:-?}} on $(hostname -s), commit {commit}"
"""

PREP = """trap 'echo $? > "$RUN/status/prep"' EXIT
clone "$RUN/work/prep"
cd "$RUN/work/prep"
dvc repro --pull {upstream}
cp dvc.lock "$RUN/prep.lock"
dvc push --run-cache
cd "$RUN"  # all on the remote; a failed job's clone stays, to look into
rm -rf "$RUN/work/prep" || echo "crossling.slurm: warning: could not remove $RUN/work/prep" >&2
"""

TASK = """STAGES=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$RUN/stages.txt")
trap 'echo $? > "$RUN/status/task-$SLURM_ARRAY_TASK_ID"' EXIT
echo "crossling.slurm: task $SLURM_ARRAY_TASK_ID runs $STAGES"
clone "$RUN/work/task-$SLURM_ARRAY_TASK_ID"
cd "$RUN/work/task-$SLURM_ARRAY_TASK_ID"
# a requeued task or a new submission of the commit makes its clone afresh: an interrupted training stage resumes
# from these (train refuses a checkpoint of other params, data, code or setup)
mkdir -p "$CHECKPOINTS"
ln -s "$CHECKPOINTS" checkpoints
cp "$RUN/prep.lock" dvc.lock
for stage in $STAGES; do  # each pulls only its own inputs; restored instead of run if the run-cache has it
  dvc repro --pull --single-item "$stage"
done
dvc push --run-cache $STAGES
cd "$RUN"
rm -rf "$RUN/work/task-$SLURM_ARRAY_TASK_ID" || echo "crossling.slurm: warning: could not remove its clone" >&2
"""

FINAL = """trap 'echo $? > "$RUN/status/final"' EXIT
python -m crossling.slurm --check "$RUN"
ROOT={root}
cd "$ROOT"
if [ "$(git rev-parse HEAD)" != {commit} ]; then
  echo "crossling.slurm: error: $ROOT is no longer at {commit}; check it out and run dvc repro --pull there" >&2
  exit 1
fi
dvc repro --pull
dvc push --run-cache
rm -rf "$CHECKPOINTS" || echo "crossling.slurm: warning: could not remove $CHECKPOINTS" >&2
echo "crossling.slurm: done; dvc.lock and the outputs are in $ROOT"
"""


def write_scripts(run_dir: Path, root: Path, commit: str, tasks: list[list[str]], upstream: list[str],
                  repo: str) -> None:
    for sub in ("logs", "status", "work"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    (run_dir / "stages.txt").write_text("".join(f"{' '.join(task)}\n" for task in tasks))
    checkpoints = run_dir.parent / CHECKPOINTS / commit[:12]  # one folder per commit: no grid resumes another's
    head = partial(SCRIPT_HEAD.format, commit=commit, bin=shlex.quote(str(Path(sys.executable).parent)),
                   run=shlex.quote(str(run_dir)), repo=shlex.quote(repo), checkpoints=shlex.quote(str(checkpoints)),
                   local_config=shlex.quote(str(root / ".dvc" / "config.local")))
    bodies = {"prep": PREP.format(upstream=shlex.join(upstream)), "task": TASK,
              "final": FINAL.format(root=shlex.quote(str(root)), commit=commit)}
    for name, body in bodies.items():
        path = run_dir / f"{name}.sh"
        path.write_text(head(job=name) + body)
        path.chmod(0o755)


def idle_checkpoints(workdir: Path, commit: str) -> list[Path]:
    """Refuse a second grid of a commit whose first is still queued or running (the two would share its Trainer
    checkpoints); the checkpoint folders of other commits none of whose jobs is (no grid resumes them), none when a
    submission record cannot be read."""
    jobs: dict[str, set[str]] = {}  # commit[:12] -> its grids' job ids
    unreadable = False  # a record whose jobs are unknown: no folder is idle for sure
    for path in workdir.glob("*/submission.json"):
        try:
            record = json.loads(path.read_text())
            jobs.setdefault(record["commit"][:12], set()).update(j for j in record["jobs"].values() if j.isdigit())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            unreadable = True
    folders = sorted(p for p in (workdir / CHECKPOINTS).glob("*")
                     if p.is_dir() and re.fullmatch("[0-9a-f]{12}", p.name))  # a commit's, nothing else
    if not jobs.get(commit[:12]) and not folders:
        return []
    queued = set(run(["squeue", "-h", "-a", "-o", "%F"]).split())  # every user's: ids are unique; array: its base id
    if jobs.get(commit[:12], set()) & queued:
        raise SlurmError(f"a grid of this commit is still queued or running (jobs {' '.join(sorted(jobs[commit[:12]]))}"
                         "); its tasks would share their Trainer checkpoints: wait for it, or scancel it, then submit "
                         "again")
    if unreadable:
        return []
    return [folder for folder in folders if folder.name != commit[:12] and not jobs.get(folder.name, set()) & queued]


def submit(root: Path, cfg: SlurmConfig, repo: str | None = None, dry_run: bool = False) -> dict:
    """Submit the grid of the commit checked out at `root`; returns what was submitted (also in submission.json)."""
    root = root.resolve()
    if run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root).strip():
        raise SlurmError("the checkout has uncommitted changes; every job runs the committed code and params: "
                         "commit them (or git stash) and submit again")
    with open_repo(root) as project:  # the default remote read in this process: no dvc command on PATH needed
        if not project.config["core"].get("remote"):
            raise SlurmError("no default DVC remote; the jobs exchange outputs through it: dvc remote add -d <name> "
                             "<url reachable from the compute nodes>, commit .dvc/config, submit again")
        commit = run(["git", "rev-parse", "HEAD"], cwd=root).strip()
        tasks, upstream = grid_plan(project)
    if not tasks:
        raise SlurmError("no training stage in dvc.yaml for the current params; nothing to submit")
    idle = [] if dry_run else idle_checkpoints(root / cfg.workdir, commit)
    run_dir = root / cfg.workdir / f"{time.strftime('%Y%m%d-%H%M%S')}-{commit[:8]}"
    output_pattern(run_dir, "")  # a folder Slurm cannot write logs into: refused before anything is written
    if run_dir.exists():
        raise SlurmError(f"{run_dir} exists (a submission this very second); submit again")
    write_scripts(run_dir, root, commit, tasks, upstream, repo or str(root))
    array = f"0-{len(tasks) - 1}" + (f"%{cfg.max_parallel}" if cfg.max_parallel else "")
    jobs: dict[str, str] = {}
    commands = []

    def submit_job(name: str, job_name: str, log: str, gpus: bool, *extra: str) -> None:
        cmd = ["sbatch", "--parsable", *sbatch_options(cfg, job_name, output_pattern(run_dir / "logs", log), gpus),
               *extra, str(run_dir / f"{name}.sh")]
        commands.append(cmd)
        try:
            jobs[name] = f"<{name}>" if dry_run else run(cmd, cwd=root).strip().split(";")[0]
        except SlurmError as exc:  # the jobs queued before would run (and push) without the rest: name them
            queued = " ".join(jobs.values())
            raise SlurmError(f"{exc}; already queued: {queued}: cancel them (scancel {queued}), then submit again"
                             if jobs else str(exc)) from None

    submit_job("prep", "crossling-prep", "prep.out", False)
    submit_job("task", "crossling-train", "task-%a.out", True, f"--array={array}", "--kill-on-invalid-dep=yes",
               f"--dependency=afterok:{jobs['prep']}")
    submit_job("final", "crossling-final", "final.out", True, f"--dependency=afterany:{jobs['task']}")
    removed = []  # once the grid is queued: a failed submission changes nothing
    for folder in idle:
        try:
            shutil.rmtree(folder)
            removed.append(str(folder))
        except OSError as exc:
            print(f"{PREFIX}: warning: could not remove {folder}: {exc.strerror}", file=sys.stderr)
    record = {"commit": commit, "run_dir": str(run_dir), "jobs": jobs, "removed_checkpoints": removed,
              "tasks": tasks, "prepared": upstream,
              "slurm": asdict(cfg), "sbatch": [shlex.join(cmd) for cmd in commands]}
    (run_dir / "submission.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def check(run_dir: Path) -> list[str]:
    """One line per job of the grid that did not succeed: its stage and its log (empty: all succeeded)."""
    if not (run_dir / "stages.txt").is_file():
        raise SlurmError(f"{run_dir} is not a submission's folder (no stages.txt); give a submission's folder under "
                         "slurm.workdir")
    tasks = [line.split() for line in (run_dir / "stages.txt").read_text().splitlines()]
    logs, status = run_dir / "logs", run_dir / "status"

    def state(path: Path) -> str | None:
        code = path.read_text().strip() if path.exists() else None
        if code in (None, "129", "130", "143"):  # no status: SIGKILL; else the scripts' exits on a signal
            return "did not finish (cancelled, timed out or killed: see the end of its log)"
        return None if code == "0" else f"failed (exit {code})"

    prep = state(status / "prep")
    if prep:
        return [f"preparation job (stages before training) {prep}: log {logs / 'prep.out'}"]
    return [f"training stage {task[0]}{' (with ' + ', '.join(task[1:]) + ')' if task[1:] else ''} {problem}: "
            f"log {logs / f'task-{i}.out'}" for i, task in enumerate(tasks) if (problem := state(status / f"task-{i}"))]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crossling.slurm", description=__doc__.splitlines()[0],
                                epilog="Options after -- are passed to every sbatch, e.g. -- --qos=high.")
    p.add_argument("--params", default="params.yaml", help="parameters file with the slurm: section")
    p.add_argument("--gpus", type=int, help="GPUs per training task (--gres=gpu:N); 0: none")
    p.add_argument("--gpu-type", help="GPU type in the gres request (--gres=gpu:TYPE:N)")
    p.add_argument("--cpus", type=int, help="--cpus-per-task of every job")
    p.add_argument("--mem", help="--mem of every job, e.g. 16G; 'none': the partition's default")
    p.add_argument("--time", help="--time of every job, e.g. 04:00:00")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--max-parallel", type=int, help="training tasks running at once; 0: no limit")
    p.add_argument("--repo", help="git URL the jobs clone from (default: this checkout, on a shared filesystem)")
    p.add_argument("--dry-run", action="store_true", help="write the scripts and print the sbatch commands only")
    p.add_argument("--check", metavar="RUN_DIR", help=argparse.SUPPRESS)  # the final job's failure report
    return p


def resources(args: argparse.Namespace, base: SlurmConfig, passthrough: list[str]) -> SlurmConfig:
    """params.yaml's slurm section with the command-line options of its keys over it, validated by the same model."""
    over = {f.name: getattr(args, f.name) for f in fields(base) if getattr(args, f.name, None) is not None}
    if over.get("mem") == "none":
        over["mem"] = None
    try:
        return replace(base, **over, sbatch_options=[*base.sbatch_options, *passthrough])
    except ValidationError as exc:
        error = _one_line(exc)
        raise ConfigError(f"slurm.{error.field}", f"{error.message} (params.yaml or the command line)") from None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    end = argv.index("--") if "--" in argv else len(argv)
    args, passthrough = parser().parse_args(argv[:end]), argv[end + 1:]
    try:
        if args.check:
            problems = check(Path(args.check))
            for line in problems:
                print(f"{PREFIX}: error: {line}", file=sys.stderr)
            if problems:
                print(f"{PREFIX}: fix the cause and run the same command again: finished stages are restored from "
                      "the run-cache, not re-run", file=sys.stderr)
                sys.exit(1)
            print(f"{PREFIX}: every job of the grid succeeded")
            return
        try:
            base = load_config(args.params).slurm
        except ConfigError as exc:  # the file named once; a command-line value's error names both sources itself
            raise DataError(in_params(exc, args.params)) from None
        record = submit(Path.cwd(), resources(args, base, passthrough), repo=args.repo, dry_run=args.dry_run)
    except (ConfigError, DataError, SlurmError) as exc:
        print(f"{PREFIX}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    jobs, run_dir = record["jobs"], record["run_dir"]
    for folder in record["removed_checkpoints"]:
        print(f"{PREFIX}: removed {folder}: Trainer checkpoints of another commit, none of whose jobs is queued or "
              "running")
    if args.dry_run:
        print("\n".join(record["sbatch"]))
        return
    print(f"{PREFIX}: submitted {len(record['tasks'])} training stages of {record['commit'][:8]}: preparation job "
          f"{jobs['prep']}, array {jobs['task']} (0-{len(record['tasks']) - 1}), final job {jobs['final']}\n"
          f"  watch:  squeue -j {jobs['prep']},{jobs['task']},{jobs['final']}\n"
          f"  logs:   {run_dir}/logs/ (prep.out, task-<i>.out, final.out; stage i: {run_dir}/stages.txt)\n"
          f"  result: dvc.lock and outputs here when final job {jobs['final']} ends; after a failure, fix it and run "
          "the same command again")


if __name__ == "__main__":
    main()
