"""GPU claims: several training stages at once on one machine (`dvc queue start -j N`), each on its own GPU.

DVC assigns no GPUs to queued experiments; with `train.device: auto` every worker would train on GPU 0. A
training stage with `train.processes: 1` on a CUDA machine therefore claims one GPU before CUDA starts: it
takes an exclusive lock on a file per GPU (`filelock`, an OS-level `flock`, released by the kernel when the
process ends, crash or kill included), and pins itself to that GPU through `CUDA_VISIBLE_DEVICES`. When every
GPU is taken it waits for one to be released. The claim is logged in the stage log only (not in the run's
cached dvclive directory, whose hash must not depend on which GPU a run got).

GPUs are counted without initializing CUDA in this process (`nvidia-smi -L` in a child process, or the
entries of `CUDA_VISIBLE_DEVICES`): once CUDA has started, `CUDA_VISIBLE_DEVICES` has no effect any more.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from crossling.common import DataError
from crossling.config import ConfigError, TrainConfig

LOCK_DIR_ENV = "CROSSLING_GPU_LOCKS"  # where the lock files live: shared by every process of the machine
DEFAULT_LOCK_DIR = "/tmp/crossling-gpu-locks"
CLAIM_ENV = "CROSSLING_GPU_CLAIM"     # "off": no claim (the caller pins GPUs itself)

_held = []  # the locks of this process: kept alive (and so held) until the process ends
_claimed: list = []  # this process's claim: a second call (another stage run in the same process) reuses it


def _cuda_built() -> bool:
    """Whether this torch has CUDA at all (a CPU wheel has not); asks no driver."""
    import torch

    return torch.backends.cuda.is_built()


@dataclass(frozen=True)
class Claim:
    """What a training process got: `gpu` is the CUDA_VISIBLE_DEVICES entry it is pinned to, or None."""

    gpu: str | None
    reason: str
    lock: str | None = None
    waited_s: float = 0.0

    def line(self) -> str:
        if self.gpu is None:
            return f"GPU claim: none ({self.reason})"
        return f"GPU claim: GPU {self.gpu} ({self.reason}; lock {self.lock}, waited {self.waited_s:.0f} s)"


def visible_gpus(environ: dict, list_gpus: Callable[[], list[str]] | None = None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs), CUDA not initialized.

    Read as CUDA (and torch) read it: up to the first entry that names no GPU (empty, -1, NoDevFiles, a UUID list's
    entry without its GPU-/MIG- prefix); an index is the entry's leading digits (1gpu is 1); a repeat shows no GPU.
    """
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return (list_gpus or nvidia_smi_gpus)()
    prefix = next((p for p in ("GPU-", "MIG-") if visible.startswith(p)), None)
    gpus: list[str] = []
    for entry in visible.split(","):
        if prefix:
            gpu = entry if entry.startswith(prefix) else ""
        else:
            index = re.match(r"[+-]?\d+", entry.strip())
            gpu = str(int(index.group())) if index and int(index.group()) >= 0 else ""
        if not gpu:
            break
        if gpu in gpus:
            return []
        gpus.append(gpu)
    return gpus


def nvidia_smi_gpus() -> list[str]:
    """Indices of the machine's NVIDIA GPUs from `nvidia-smi -L` (no CUDA context in this process); [] without."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def claim_gpu(train: TrainConfig, environ: MutableMapping[str, str] = os.environ,
              list_gpus: Callable[[], list[str]] | None = None, poll_s: float = 1.0, timeout_s: float | None = None,
              log: Callable[[str], None] = print) -> Claim:
    """Claim one free GPU for this process and pin it there (CUDA_VISIBLE_DEVICES); must run before CUDA starts.

    No claim when the run is not on CUDA (train.device cpu or mps), when it is data-parallel (train.processes > 1:
    torchrun uses every visible GPU), under Slurm (its gres allocation pins the job), when CROSSLING_GPU_CLAIM=off,
    or when no GPU is visible. Waits while every GPU is claimed (up to timeout_s, None: for ever).
    """
    from filelock import FileLock, Timeout

    if train.device in ("cpu", "mps"):
        return Claim(None, f"train.device={train.device}")
    if train.processes > 1:
        return Claim(None, f"train.processes={train.processes}: torchrun uses every visible GPU "
                           "(choose them with CUDA_VISIBLE_DEVICES)")
    setting = environ.get(CLAIM_ENV, "on")
    if setting not in ("on", "off"):
        raise DataError(f"environment variable {CLAIM_ENV}={setting!r}: must be on or off; unset it, or set it to off "
                        "to pin GPUs yourself")
    if setting == "off":
        return Claim(None, f"{CLAIM_ENV}=off")
    if environ.get("SLURM_JOB_ID"):
        return Claim(None, f"Slurm job {environ['SLURM_JOB_ID']}: its GPU allocation pins the job")
    if not _cuda_built():
        return Claim(None, "this torch is built without CUDA")
    if _claimed:  # already pinned: CUDA_VISIBLE_DEVICES now names the claimed GPU alone
        environ["CUDA_VISIBLE_DEVICES"] = _claimed[0].gpu
        return _claimed[0]
    gpus = visible_gpus(environ, list_gpus)
    if not gpus:
        return Claim(None, "no CUDA GPU visible")
    directory = Path(environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        directory.chmod(0o1777)  # every user of the machine claims from the same files, as /tmp
    start = time.monotonic()
    told = False
    while True:
        for gpu in gpus:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", gpu)
            lock = FileLock(directory / f"gpu-{name}.lock", mode=0o666, thread_local=False)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            _held.append(lock)
            environ["CUDA_VISIBLE_DEVICES"] = gpu
            _claimed.append(Claim(gpu, f"free among {len(gpus)} visible GPU(s) {','.join(gpus)}", str(lock.lock_file),
                                  waited_s=time.monotonic() - start))
            return _claimed[0]
        if timeout_s is not None and time.monotonic() - start >= timeout_s:
            raise TimeoutError(f"no free GPU among {','.join(gpus)} after {timeout_s:.0f} s (locks in {directory})")
        if not told:
            log(f"every GPU ({','.join(gpus)}) is claimed by another run; waiting for one (locks in {directory})")
            told = True
        time.sleep(poll_s)


def claim_for_training(train: TrainConfig, logger) -> Claim:
    """The training stage's one call: claim (or not) and say so in the stage log. Which GPU index a run got is
    not written into its logs: they are a cached DVC output, whose hash must not depend on the queue's draw (the
    run's provenance records the device and its name, as dvclive params)."""
    claim = claim_gpu(train, log=logger.info)
    logger.info(claim.line())
    return claim


def check_no_gpu_left_out(requested: str, found, environ: Mapping[str, str] = os.environ) -> None:
    """`auto` on CPU where nvidia-smi (or CUDA_VISIBLE_DEVICES) shows a GPU that this torch, built with CUDA,
    cannot use (a driver older than its CUDA, or CUDA_VISIBLE_DEVICES naming a GPU the machine lacks): hours of
    training on CPU would be a silent fall-back. `requested`: train.device (or classify's --device)."""
    import torch

    gpus = visible_gpus(environ) if requested == "auto" and found.type == "cpu" and _cuda_built() else []
    if gpus:
        raise ConfigError("train.device", f"auto found no usable GPU, but GPU(s) {', '.join(gpus)} are visible and "
                          f"this torch (CUDA {torch.version.cuda}) cannot use them (a driver older than that CUDA, "
                          "or CUDA_VISIBLE_DEVICES naming a GPU this machine lacks?); fix that, or set "
                          "CUDA_VISIBLE_DEVICES= (empty) to run on the CPU")


def check_launch(train: TrainConfig, environ: Mapping[str, str] = os.environ) -> None:
    """Before relaunching under torchrun: one process per device, refused here in one line. The device is found as
    the stage finds it (CUDA where this torch has CUDA and a GPU is visible, else Apple MPS, else CPU; checked
    against train.device), but without initializing CUDA: accelerate's probe would create a context on GPU 0 in
    the launching process and keep it for the whole run."""
    import torch

    from crossling.modeling import check_device

    gpus = visible_gpus(environ) if train.device != "cpu" and _cuda_built() else []
    if gpus:
        found = "cuda"
    elif train.device != "cpu" and torch.backends.mps.is_available():
        found = "mps"
    else:
        found = "cpu"
    check_device(train.device, torch.device(found))
    if found == "mps":
        raise ConfigError("train.processes", f"{train.processes} processes, but Apple MPS is one device; use 1")
    if found == "cuda" and len(gpus) < train.processes:
        raise ConfigError("train.processes", f"{train.processes} processes, but {len(gpus)} GPU(s) are visible; use "
                                             "at most that many (CUDA_VISIBLE_DEVICES)")
