import ast
import re
from pathlib import Path

import pytest
import yaml

from crossling.common import DataError
from crossling.modeling import load_classifier

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "src" / "crossling").glob("*.py"))


def test_remote_code_is_never_trusted():
    for path in SOURCES:
        text = path.read_text()
        assert "trust_remote_code=True" not in text, path
        # every from_pretrained call says so explicitly
        for call in re.findall(r"from_pretrained\((.*?)\)\n", text, flags=re.S):
            assert "trust_remote_code=False" in call, (path, call)


def test_only_safetensors_checkpoints_are_loaded(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(DataError, match="no .safetensors weights"):
        load_classifier(tmp_path, ("positive", "neutral", "negative"))


def test_no_credentials_in_tracked_dvc_config():
    config = (ROOT / ".dvc" / "config").read_text().lower()
    for key in ("access_key_id", "secret_access_key", "session_token", "password", "credentialpath", "key_file"):
        assert key not in config
    assert "/config.local" in (ROOT / ".dvc" / ".gitignore").read_text()


def test_git_tracks_nothing_inside_a_pipeline_output():
    # DVC refuses to record a cached output that git tracks ("already tracked by SCM"): a fresh clone could not run.
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "data", "models"], cwd=ROOT,  # the cached outputs live there
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked == []


def crossling_imports(module: str) -> set[str]:
    """The crossling modules `module` imports, at its top or inside a function (a stage may import lazily)."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / "src" / "crossling" / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "crossling":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crossling."):
            found.add(node.module.split(".")[1])
    return found


def test_every_stage_lists_the_code_it_runs_and_no_more():
    # a module missing from deps: a code change DVC does not see (stale outputs); one too many: needless re-runs
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        stage = stage.get("do", stage)
        runs, todo = set(), [re.search(r"-m crossling\.(\w+)", stage["cmd"]).group(1)]
        while todo:
            module = todo.pop()
            if module not in runs:
                runs.add(module)
                todo += crossling_imports(module)
        listed = {Path(dep).stem for dep in stage["deps"] if dep.startswith("src/crossling/")}
        assert listed == runs, (name, sorted(runs - listed), sorted(listed - runs))
