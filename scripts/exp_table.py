"""One readable row per experiment (`make exp-show`): the headline means and only the params that differ
between the rows shown. `dvc exp show --only-changed` compares with the baseline commit as well, whose
defaults (hub data, pretrained checkpoint) differ from every offline experiment, so its table stays wide.

Usage: python scripts/exp_table.py [dvc exp show options, e.g. -A or --rev main]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

HEADLINE = {"joint_largest_mean_macro_f1": "joint", "mono_in_language_mean_macro_f1": "mono",
            "joint_equal_budget_minus_mono_mean": "equal-budget-minus-mono",
            "zero_shot_mean_macro_f1": "zero-shot", "normalized_transfer_mean": "norm.transfer",
            "degenerate_runs": "degenerate"}

# the dvc beside this python (.venv/bin/python scripts/... without the venv activated), else the one on PATH
DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def headline(rev: dict) -> dict | None:
    return (((rev.get("data") or {}).get("metrics") or {}).get("metrics/headline.json") or {}).get("data")


def unfinished(exp: dict) -> str | None:
    """Why an experiment has no results of its own, or None. A failed or running experiment's revision still
    carries the metrics of its baseline commit (dvc exp show reads its stash), so its state decides, not its
    metrics."""
    state = (exp.get("executor") or {}).get("state")
    if state in ("failed", "queued", "running"):
        return state
    if any(rev.get("error") for rev in exp["revs"]):
        return "failed"
    return None if any(headline(rev) for rev in exp["revs"]) else "no metrics"


def rows(shown: list[dict]) -> list[tuple[str, dict, dict]]:
    """(name, headline metrics, flat params) of every commit with headline metrics and every finished experiment."""
    out = []
    for commit in shown:
        revs = [commit] + [rev for exp in commit.get("experiments") or [] if not unfinished(exp) for rev in exp["revs"]]
        for rev in revs:
            metrics = headline(rev)
            if metrics:
                params = (((rev.get("data") or {}).get("params") or {}).get("params.yaml") or {}).get("data") or {}
                name = rev.get("name") or (rev["rev"] if rev["rev"] == "workspace" else rev["rev"][:7])
                out.append((name, metrics, flat(params)))
    return out


def without_metrics(shown: list[dict]) -> list[str]:
    """The experiments `rows` leaves out, each with its state: a failed run must not vanish from the table without
    a word, nor stand in it with its baseline's scores."""
    out = []
    for commit in shown:
        for exp in commit.get("experiments") or []:
            state = unfinished(exp)
            if state:
                first = exp["revs"][0]
                out.append(f"{exp.get('name') or first.get('name') or first['rev'][:7]} ({state})")
    return out


def table(found: list[tuple[str, dict, dict]]) -> str:
    keys = sorted({k for _, _, params in found for k in params})
    differ = [k for k in keys if len({json.dumps(params.get(k)) for _, _, params in found}) > 1]
    header = ["experiment", *HEADLINE.values(), *differ]
    body = [[name, *(f"{metrics[m]:.3f}" if isinstance(metrics.get(m), float) else str(metrics.get(m, "-"))
                     for m in HEADLINE), *(json.dumps(params.get(k)).replace('"', "") for k in differ)]
            for name, metrics, params in found]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body])


def main() -> None:
    if DVC is None:
        sys.exit("exp_table: no dvc beside this python or on PATH; run it with the project's .venv/bin/python")
    proc = subprocess.run([DVC, "exp", "show", "--json", *sys.argv[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"exp_table: dvc exp show failed: {proc.stderr.strip()}")
    shown = json.loads(proc.stdout)
    found, left_out = rows(shown), without_metrics(shown)
    print(table(found) if found else "exp_table: no experiment with metrics/headline.json yet (dvc exp run first)")
    if left_out:
        print(f"not shown, without metrics/headline.json: {', '.join(left_out)} (dvc exp show has their details)")


if __name__ == "__main__":
    main()
