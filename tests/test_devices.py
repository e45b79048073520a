"""GPU claims for `dvc queue start -j N` (crossling.devices), on simulated GPUs: no test needs a real one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import make_config

from crossling import devices, train
from crossling.config import ConfigError

# A claimant: claims a GPU, writes which one (and the CUDA_VISIBLE_DEVICES it was pinned to), and holds the
# claim until told to stop (`stop` file), to exit, or to die without any cleanup (SIGKILL, as a crash).
CLAIMANT = """
import os, sys, time
from pathlib import Path
from conftest import make_config
from crossling import devices
devices._cuda_built = lambda: True  # as a CUDA build of torch says
out, stop = Path(sys.argv[1]), Path(sys.argv[2])
claim = devices.claim_gpu(make_config().train, poll_s=0.05, log=lambda m: None)
out.write_text(f"{claim.gpu} {os.environ['CUDA_VISIBLE_DEVICES']}")
while not stop.exists():
    time.sleep(0.05)
"""


def start_claimant(tmp_path: Path, name: str, gpus: str, lock_dir: Path) -> tuple[subprocess.Popen, Path, Path]:
    out, stop = tmp_path / f"{name}.out", tmp_path / f"{name}.stop"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpus, CROSSLING_GPU_LOCKS=str(lock_dir),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ["PYTHONPATH"]]))
    env.pop("SLURM_JOB_ID", None)
    env.pop("CROSSLING_GPU_CLAIM", None)
    proc = subprocess.Popen([sys.executable, "-c", CLAIMANT, str(out), str(stop)], env=env)
    return proc, out, stop


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written in {timeout} s")


def release_all() -> None:
    """Release this test process's claims, as the end of the process does."""
    devices._claimed.clear()
    while devices._held:
        devices._held.pop().release(force=True)


def no_cuda(monkeypatch):
    """Any CUDA initialization fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("CUDA was initialized")
    for name in ("_lazy_init", "init", "device_count", "is_available", "set_device", "current_device"):
        monkeypatch.setattr(torch.cuda, name, refuse)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "_cuda_built", lambda: True)  # as a CUDA build of torch says
    yield {"CROSSLING_GPU_LOCKS": str(tmp_path / "locks")}
    release_all()


def test_concurrent_claimants_get_distinct_gpus_and_a_fifth_waits_for_one_to_end(tmp_path):
    locks = tmp_path / "locks"
    claimants = [start_claimant(tmp_path, f"c{i}", "0,1,2,3", locks) for i in range(4)]
    try:
        got = [wait_for(out).split() for _, out, _ in claimants]
        assert sorted(gpu for gpu, _ in got) == ["0", "1", "2", "3"]  # distinct, every GPU used
        assert all(gpu == pinned for gpu, pinned in got)  # each pinned to its GPU alone
        fifth, fifth_out, fifth_stop = start_claimant(tmp_path, "c4", "0,1,2,3", locks)
        time.sleep(1.5)
        assert not fifth_out.exists()  # every GPU is claimed: it waits
        proc, out, stop = claimants[2]
        stop.touch()  # one run ends normally
        proc.wait(timeout=30)
        assert wait_for(fifth_out).split()[0] == out.read_text().split()[0]  # and its GPU goes to the waiting one
        claimants.append((fifth, fifth_out, fifth_stop))
    finally:
        for proc, _, stop in claimants:
            stop.touch()
        for proc, _, _ in claimants:
            proc.wait(timeout=30)


def test_a_crashed_claimants_gpu_becomes_free(tmp_path, env, monkeypatch):
    locks = tmp_path / "locks"
    proc, out, stop = start_claimant(tmp_path, "crash", "5", locks)
    try:
        assert wait_for(out).split()[0] == "5"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(TimeoutError, match=r"no free GPU among 5 after 0 s \(locks in "):
            devices.claim_gpu(make_config().train, environ=dict(env, CUDA_VISIBLE_DEVICES="5"), timeout_s=0.2,
                              poll_s=0.05, log=lambda m: None)
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup runs; the lock file stays on disk
        proc.wait(timeout=30)
        assert (locks / "gpu-5.lock").exists()
        environ = dict(env, CUDA_VISIBLE_DEVICES="5")
        claim = devices.claim_gpu(make_config().train, environ=environ, timeout_s=10, poll_s=0.05, log=lambda m: None)
        assert claim.gpu == "5" and environ["CUDA_VISIBLE_DEVICES"] == "5"
    finally:
        release_all()
        stop.touch()
        if proc.poll() is None:
            proc.kill()


def test_claims_count_gpus_without_initializing_cuda(env, monkeypatch):
    no_cuda(monkeypatch)
    environ = dict(env)  # no CUDA_VISIBLE_DEVICES: the GPUs come from nvidia-smi, in a child process
    try:
        first = devices.claim_gpu(make_config().train, environ=environ, list_gpus=lambda: ["0", "1"])
        assert (first.gpu, environ["CUDA_VISIBLE_DEVICES"]) == ("0", "0")
        assert first.line().startswith("GPU claim: GPU 0 (free among 2 visible GPU(s) 0,1; lock ")
        # a second stage in the same process keeps its GPU (a new lock on the same file would wait for itself)
        again = dict(env, CUDA_VISIBLE_DEVICES="0")
        assert devices.claim_gpu(make_config().train, environ=again, timeout_s=1) is first
        devices._claimed.clear()  # as another process would: GPU 0 is held, so it gets GPU 1
        other = dict(env)
        second = devices.claim_gpu(make_config().train, environ=other, list_gpus=lambda: ["0", "1"])
        assert (second.gpu, other["CUDA_VISIBLE_DEVICES"]) == ("1", "1")
    finally:
        release_all()


@pytest.mark.parametrize("params, environ, reason", [
    ({"device": "cpu"}, {"CUDA_VISIBLE_DEVICES": "0,1"}, "train.device=cpu"),
    ({"device": "mps"}, {}, "train.device=mps"),
    ({"processes": 2}, {"CUDA_VISIBLE_DEVICES": "0,1"}, "train.processes=2: torchrun uses every visible GPU"),
    ({}, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_ID": "17"}, "Slurm job 17: its GPU allocation pins the job"),
    ({}, {"CUDA_VISIBLE_DEVICES": "0,1", "CROSSLING_GPU_CLAIM": "off"}, "CROSSLING_GPU_CLAIM=off"),
    ({}, {"CUDA_VISIBLE_DEVICES": ""}, "no CUDA GPU visible"),
    ({}, {"CUDA_VISIBLE_DEVICES": "0"}, "this torch is built without CUDA"),
])
def test_no_claim_where_there_is_nothing_to_share(params, environ, reason, env, monkeypatch):
    if reason.startswith("this torch"):
        monkeypatch.setattr(devices, "_cuda_built", lambda: False)  # a CPU wheel, CUDA_VISIBLE_DEVICES=0 or not
    environ = dict(env, **environ)
    before = dict(environ)
    claim = devices.claim_gpu(make_config({"train": params}).train, environ=environ, list_gpus=lambda: ["0"])
    assert claim.gpu is None and claim.reason.startswith(reason)
    assert environ == before and not Path(env["CROSSLING_GPU_LOCKS"]).exists()


def test_a_bad_claim_setting_is_one_line_naming_it(env):
    from crossling.common import DataError

    with pytest.raises(DataError) as err:  # printed as is by the stage (a ConfigError would blame params.yaml)
        devices.claim_gpu(make_config().train, environ=dict(env, CROSSLING_GPU_CLAIM="yes"))
    assert str(err.value) == ("environment variable CROSSLING_GPU_CLAIM='yes': must be on or off; unset it, or set "
                              "it to off to pin GPUs yourself")


def test_the_claim_is_in_the_stage_log(env, monkeypatch, caplog):
    import logging

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    logger = logging.getLogger("crossling.test")
    try:
        with caplog.at_level(logging.INFO, logger="crossling.test"):
            claim = devices.claim_for_training(make_config().train, logger)
        assert claim.gpu == "2" and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
        assert any(r.getMessage().startswith("GPU claim: GPU 2 (free among 2 visible GPU(s) 2,3") for r in caplog.records)
    finally:
        release_all()


def test_the_torchrun_launcher_finds_the_device_without_cuda(monkeypatch, tmp_path):
    """train.processes > 1: the launching process checks the devices and relaunches, never starting CUDA."""
    no_cuda(monkeypatch)
    monkeypatch.setattr(devices, "_cuda_built", lambda: True)  # as a CUDA build of torch would say
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    relaunched = []
    monkeypatch.setattr(train, "relaunch_distributed", lambda processes, argv: relaunched.append(processes))
    monkeypatch.setattr(train, "inference_device", lambda *a: pytest.fail("the launcher probed the device"))
    args = SimpleNamespace(argv=[], live=str(tmp_path / "live"))
    train.main(args, make_config({"train": {"processes": 2}}))
    assert relaunched == [2]
    # train.device auto: this error comes only once CUDA was found (2 GPUs visible), without initializing CUDA
    with pytest.raises(ConfigError, match=r"^train.processes: 3 processes, but 2 GPU\(s\) are visible; use at most"):
        train.main(args, make_config({"train": {"processes": 3}}))
    with pytest.raises(ConfigError, match="^train.device: cuda was requested but the libraries found only cpu"):
        devices.check_launch(make_config({"train": {"processes": 2, "device": "cuda"}}).train,
                             environ={"CUDA_VISIBLE_DEVICES": ""})
    assert relaunched == [2] and not (tmp_path / "live").exists()  # nothing claimed or recorded by the launcher
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)  # as on a Mac with Apple silicon
    with pytest.raises(ConfigError, match=r"^train.processes: 2 processes, but Apple MPS is one device; use 1$"):
        devices.check_launch(make_config({"train": {"processes": 2}}).train, environ={"CUDA_VISIBLE_DEVICES": ""})


def test_visible_gpus_are_read_as_cuda_reads_the_variable():
    def visible(value: str) -> list[str]:
        return devices.visible_gpus({"CUDA_VISIBLE_DEVICES": value})

    assert visible("0, 2") == ["0", "2"] and visible("1gpu,3") == ["1", "3"]
    for stops_at_the_second in ("0,-1,1", "0,,1", "0,-2,1", "0,none,1"):
        assert visible(stops_at_the_second) == ["0"]
    for no_gpu in ("", "-1", ",1", "0,0", "NoDevFiles"):
        assert visible(no_gpu) == []
    assert visible("GPU-aa,MIG-bb,GPU-cc") == ["GPU-aa"] and visible("MIG-aa,MIG-bb") == ["MIG-aa", "MIG-bb"]
    assert visible("GPU-aa, GPU-bb") == ["GPU-aa"] and visible(" GPU-aa") == [] and visible("-0,1") == ["0", "1"]
    assert devices.visible_gpus({}, list_gpus=lambda: ["0", "1"]) == ["0", "1"]


def test_auto_on_cpu_beside_a_gpu_this_torch_cannot_use_is_refused(monkeypatch):
    """A CUDA build whose driver is too old finds no GPU: `auto` would train on CPU for hours without a word."""
    monkeypatch.setattr(devices, "_cuda_built", lambda: True)
    pinned = {"CUDA_VISIBLE_DEVICES": "0"}  # as the GPU claim pins it
    with pytest.raises(ConfigError) as err:
        devices.check_no_gpu_left_out("auto", torch.device("cpu"), pinned)
    assert err.value.field == "train.device" and err.value.message.startswith(
        "auto found no usable GPU, but GPU(s) 0 are visible and this torch")
    assert err.value.message.endswith("(a driver older than that CUDA, or CUDA_VISIBLE_DEVICES naming a GPU this "
                                      "machine lacks?); fix that, or set CUDA_VISIBLE_DEVICES= (empty) to run on "
                                      "the CPU")
    devices.check_no_gpu_left_out("cpu", torch.device("cpu"), pinned)
    devices.check_no_gpu_left_out("auto", torch.device("cuda"), pinned)  # found: nothing to say
    devices.check_no_gpu_left_out("auto", torch.device("cpu"), {"CUDA_VISIBLE_DEVICES": ""})
