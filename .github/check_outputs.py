"""Before anyone reviews a pull request's numbers: is its dvc.lock current, and is every output it records pushed?

    python .github/check_outputs.py [--remote NAME]

Run in a checkout that has none of the DVC-tracked data (CI). Fails, one line per problem, when
- a stage's recorded code, params or command differ from the checkout, or a stage was never run
  (the metrics in the pull request would not be what its code produces), or
- an output recorded in dvc.lock (a file, or any file of a directory) is not on the DVC remote, or
- a `cache: false` output recorded in dvc.lock (metrics, plots, report) is not committed to git.
Nothing is downloaded except directory listings (.dir files), and no stage runs.
Run by .github/workflows/pr-metrics.yml; tests/test_pipeline.py runs it against a real repository.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import yaml


def dvc(*args: str, check: bool = True) -> str:
    try:
        proc = subprocess.run(["dvc", *args], capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("check_outputs: no `dvc` on PATH; install it (pip install -e .)")
    if check and proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or [f"exit {proc.returncode}"]
        sys.exit(f"check_outputs: `dvc {' '.join(args)}` failed: {errors[0]}")
    return proc.stdout


def recorded_outputs(lock: dict) -> tuple[list[str], list[str]]:
    """Outputs recorded in dvc.lock, split as dvc.yaml declares them: in the DVC cache, or `cache: false` (in git)."""
    from dvc.repo import Repo

    recorded = {out["path"] for stage in lock.get("stages", {}).values() for out in stage.get("outs", [])}
    with Repo(".") as repo:
        declared = {out.def_path: out.use_cache for stage in repo.index.stages for out in stage.outs}
    cached = sorted(path for path in recorded if declared.get(path, True))
    return cached, sorted(recorded - set(cached))


def not_in_git(paths: list[str]) -> list[str]:
    """Those of `paths` (files or directories) of which git tracks no file."""
    tracked = subprocess.run(["git", "ls-files", "-z", "--", *paths], capture_output=True, text=True,
                             check=True).stdout.split("\0")
    return [path for path in paths if not any(owner(file, [path]) for file in tracked if file)]


def lacks_data(path: str, outputs: list[str]) -> bool:
    """`path` is DVC data (an output, inside one, or a directory holding some) that this checkout lacks."""
    path = path.rstrip("/")
    related = [out for out in outputs if path == out or path.startswith(out + "/") or out.startswith(path + "/")]
    return bool(related) and not any(os.path.exists(out) for out in related)


def owner(path: str, outputs: list[str]) -> str | None:
    """The recorded output that is `path` or contains it."""
    path = path.rstrip("/")
    return next((out for out in outputs if path == out or path.startswith(out + "/")), None)


def stale_stages(status: dict, lock: dict, stages: list[str], outputs: list[str]) -> list[str]:
    """Stages whose dvc.lock entry does not match the checkout, with why; absent data is not a change."""
    stale = [f"{name} (never run)" for name in stages if name not in lock.get("stages", {})]
    for name, changes in status.items():
        if name not in lock.get("stages", {}):
            continue
        reasons = []
        for change in changes:
            if isinstance(change, str):  # "changed command", "always changed"
                reasons.append(change)
                continue
            for entries in change.values():  # "changed deps" / "changed outs": {path: state}
                for path, state in entries.items():
                    if isinstance(state, dict):  # params file: {param: state}
                        reasons += [f"param {param} {value}" for param, value in state.items()]
                    elif not lacks_data(path, outputs):
                        reasons.append(f"{path} {state}")
        if reasons:
            stale.append(f"{name} ({', '.join(reasons)})")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--remote", help="DVC remote to check (default: the default remote)")
    args = parser.parse_args(argv)
    remote = args.remote or dvc("remote", "default", check=False).strip()
    if not remote or " " in remote:  # "No default remote set"
        sys.exit("check_outputs: no default DVC remote in .dvc/config; add one (docs/workflow.md, Remote storage)")
    try:
        with open("dvc.lock", encoding="utf-8") as fh:
            lock = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        sys.exit("check_outputs: no dvc.lock; run the pipeline (dvc exp run), commit dvc.lock, dvc push")

    problems = []
    outputs, uncached = recorded_outputs(lock)
    uncommitted = not_in_git(uncached)
    if uncommitted:
        problems.append(f"not committed to git: {', '.join(uncommitted)}; these outputs are `cache: false` "
                        "(metrics, plots, logs, report): git add and commit them with dvc.lock")
    stages = dvc("stage", "list", "--name-only").split()
    # outputs this checkout lacks are not changes: DVC data (never pulled here) and uncommitted ones (reported above)
    stale = stale_stages(json.loads(dvc("status", "--json") or "{}"), lock, stages, outputs + uncommitted)
    if stale:
        problems.append(f"dvc.lock is out of date: {'; '.join(stale)}. Run the pipeline where a GPU is "
                        "(dvc exp run), commit dvc.lock and the metrics, and dvc push")

    status = json.loads(dvc("data", "status", "--not-in-remote", "--granular", "--json", "--remote", remote))
    missing = sorted({owner(path, outputs) or path.rstrip("/") for path in status.get("not_in_remote", [])})
    if missing:
        problems.append(f"not on DVC remote '{remote}': {', '.join(missing)}; "
                        "run `dvc push` where they were produced")
    for problem in problems:
        print(f"check_outputs: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_outputs: dvc.lock matches the code and params; its {len(outputs)} cached outputs are on '{remote}'")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
