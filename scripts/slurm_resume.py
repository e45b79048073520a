"""Integration check: a Slurm grid whose training is killed after an epoch resumes from its checkpoints.

On a one-node Slurm cluster started here (tests/slurm_cluster.py: root, Debian's slurm-wlm and munge), the tests'
tiny project (english and french, size 12, one seed, two epochs) is submitted with CROSSLING_TEST_KILL_AFTER_EPOCH=1,
so every training task is killed after its first epoch's checkpoint; then the same command again. Prints what the
final jobs reported, which tasks resumed, what was left behind, and whether the grid's output hashes equal a serial
uninterrupted `dvc repro` of the same commit; exits 1 if they do not.

    .venv/bin/python scripts/slurm_resume.py /tmp/slurm-resume   # a folder that does not exist yet
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from slurm_cluster import Cluster  # noqa: E402
from test_pipeline import BIN, dvc, sh  # noqa: E402
from test_slurm import grid_project, output_hashes, wait_for_jobs  # noqa: E402


def main(tmp: Path) -> int:
    tmp.mkdir(parents=True)
    project, serial = grid_project(tmp, epochs=2)
    dvc(serial, "repro")
    cluster = Cluster(tmp / "slurm", cpus=2)

    def submit(**env: str) -> Path:
        sh(project, str(BIN / "python"), "-m", "crossling.slurm", "--gpus", "0", "--cpus", "1", "--mem", "1500M",
           "--time", "15", SLURM_CONF=str(cluster.conf), **env)
        run_dir = sorted((project / ".slurm").glob("2*"))[-1]
        wait_for_jobs(cluster, list(json.loads((run_dir / "submission.json").read_text())["jobs"].values()), 900)
        return run_dir

    checkpoints = project / ".slurm" / "checkpoints"
    try:
        cluster.start()
        killed = submit(CROSSLING_TEST_KILL_AFTER_EPOCH="1")
        print("killed grid, final job:", *(line for line in (killed / "logs" / "final.out").read_text().splitlines()
                                           if "error" in line), sep="\n  ")
        print("checkpoints kept:", sorted(str(p.relative_to(checkpoints)) for p in checkpoints.rglob("checkpoint-*")))
        time.sleep(1.1)  # a submission's folder is named by the second
        again = submit()
        for log in sorted((again / "logs").glob("task-*.out")):
            print(log.name, "resumed:", "resuming from checkpoints/" in log.read_text())
        print("final job exit:", (again / "status" / "final").read_text().strip(), "| clones left:",
              sorted(p.name for p in (again / "work").iterdir()), "| checkpoints left:",
              sorted(p.name for p in checkpoints.iterdir()))
    finally:
        cluster.stop()
    same = output_hashes(yaml.safe_load((serial / "dvc.lock").read_text())) == output_hashes(
        yaml.safe_load((project / "dvc.lock").read_text()))
    print("every output hash equals the serial uninterrupted run's:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
