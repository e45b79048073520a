"""`dvc dag --mermaid`, one node per stage kind (`train_mono@english-42` -> `train_mono@*`): the DAG in
docs/methodology.md. Usage: python scripts/dag_mermaid.py (in the repository, with dvc on PATH)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

# the dvc beside this python (.venv/bin/python scripts/... without the venv activated), else the one on PATH
DVC = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")


def collapse(mermaid: str) -> str:
    names = dict(re.findall(r'^\s*(node\d+)\["([^"]+)"\]', mermaid, flags=re.M))
    kind = {node: re.sub(r"@.*", "@*", name) for node, name in names.items()}
    edges = sorted({(kind[a], kind[b]) for a, b in re.findall(r"^\s*(node\d+)-->(node\d+)", mermaid, flags=re.M)})
    ids = {name: f"n{i}" for i, name in enumerate(sorted(set(kind.values())))}
    lines = ["flowchart LR"] + [f'\t{ids[name]}["{name}"]' for name in sorted(ids)]
    return "\n".join(lines + [f"\t{ids[a]}-->{ids[b]}" for a, b in edges]) + "\n"


def main() -> None:
    if DVC is None:
        sys.exit("dag_mermaid: no dvc beside this python or on PATH; run it with the project's .venv/bin/python")
    proc = subprocess.run([DVC, "dag", "--mermaid"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"dag_mermaid: dvc dag failed: {(proc.stderr.strip().splitlines() or ['no message'])[-1]}")
    sys.stdout.write(collapse(proc.stdout))


if __name__ == "__main__":
    main()
