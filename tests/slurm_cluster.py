"""A single-node Slurm cluster on this machine, for the Slurm grid's end-to-end test (tests/test_slurm.py).

Debian's `slurm-wlm` and `munge` (.ci/run installs them), started as root in the foreground as child processes:
munged, slurmctld and slurmd with a minimal slurm.conf (proctrack/linuxproc, task/none: no cgroups), one node
named after `hostname -s` with the machine's CPUs. Everything it writes is under one directory; it stops the
daemons it started by their process ids, never by name.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")


class SlurmUnavailable(RuntimeError):
    """Slurm cannot start here; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_requirements() -> str | None:
    if os.geteuid() != 0:
        return ("the Slurm cluster starts as root (munged, slurmctld, slurmd); run the tests as root (the GitHub "
                "workflow runs .ci/run in a Debian container, as root)")
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if absent:
        return (f"{', '.join(absent)} not installed; apt-get install munge, then slurm-wlm "
                "(one package at a time: .ci/run does it)")
    if not Path("/etc/munge/munge.key").exists():
        return "/etc/munge/munge.key missing; reinstall munge (its postinst creates the key)"
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Cluster:
    def __init__(self, root: Path, cpus: int = 2, memory_mb: int = 4000):
        self.root = Path(root)
        self.host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
        self.cpus, self.memory_mb = cpus, memory_mb
        self.conf = self.root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    def write_conf(self) -> None:
        for sub in ("state", "spool", "log", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join([
            "ClusterName=crossling-test",
            f"SlurmctldHost={self.host}",
            "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            f"StateSaveLocation={self.root / 'state'}", f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}", f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            f"AuthInfo=socket={self.root / 'munge' / 'munge.socket'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU_Memory",
            "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1",
            "MpiDefault=none", "ReturnToService=2", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "MinJobAge=300", "KillWait=5",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            f"NodeName={self.host} CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")

    def _start(self, name: str, *args: str) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "wb")
        self.procs[name] = subprocess.Popen([_exe(name), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start(self, timeout: float = 60) -> None:
        why = missing_requirements()
        if why:
            raise SlurmUnavailable(why)
        self.write_conf()
        socket_path = self.root / "munge" / "munge.socket"
        self._start("munged", "-F", "--force", f"--socket={socket_path}", f"--pid-file={self.root / 'munged.pid'}",
                    f"--log-file={self.root / 'log' / 'munged.log'}", f"--seed-file={self.root / 'munge' / 'seed'}")
        self._wait(lambda: socket_path.exists(), "munged to create its socket", timeout)
        self._start("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._start("slurmd", "-D", "-f", str(self.conf))
        self._wait(self._node_idle, f"node {self.host} to be idle in sinfo", timeout)

    def _node_idle(self) -> bool:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], env=self.env, capture_output=True, text=True)
        return proc.returncode == 0 and f"{self.host} idle" in proc.stdout

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            dead = [name for name, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise SlurmUnavailable(f"{', '.join(dead)} exited while waiting for {what}:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").strip().splitlines()[-15:]
            if text:
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the daemons this cluster started, by their process ids, last started first."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs.clear()
