"""The README and docs/ pages: links that resolve, a DAG that is dvc.yaml's, a README of a readable length."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))
from dag_mermaid import collapse  # noqa: E402


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    return [link for link in links if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(link)
    assert not broken, f"{page.name}: links that do not resolve: {broken}"


def test_link_check_finds_a_broken_link_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [gone](other.md) [bad](#no-such)\n")
    assert relative_links(page) == ["#a-section", "other.md", "#no-such"]
    assert anchors(page) == {"title", "a-section"}


def test_readme_is_short_and_every_docs_page_is_linked_from_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    linked = {Path(link.partition("#")[0]).name for link in relative_links(ROOT / "README.md")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages - {"checkpoints.md", "scaling.md"} <= linked | {"failure_modes.md"}, pages - linked


def test_methodology_dag_is_the_pipeline_of_dvc_yaml():
    out = subprocess.run([str(BIN / "dvc"), "dag", "--mermaid"], cwd=ROOT, capture_output=True, text=True, check=True)
    page = (ROOT / "docs" / "methodology.md").read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", page, re.S).group(1)
    assert block == collapse(out.stdout), "docs/methodology.md: DAG out of date; run python scripts/dag_mermaid.py"


def test_collapse_merges_stage_instances_and_their_edges():
    mermaid = ('flowchart TD\n\tnode1["sample"]\n\tnode2["train@1-a"]\n\tnode3["train@2-a"]\n\tnode4["report"]\n'
               "\tnode1-->node2\n\tnode1-->node3\n\tnode2-->node4\n\tnode3-->node4\n")
    assert collapse(mermaid) == ('flowchart LR\n\tn0["report"]\n\tn1["sample"]\n\tn2["train@*"]\n'
                                 "\tn1-->n2\n\tn2-->n0\n")


# README commands the fresh-clone test does not run, and why; every other one runs (a new one must be placed)
NOT_RUN = {
    "git clone https://": "needs the network (the test writes the data where the clone would put it)",
    "make repro": "needs the Hugging Face Hub",
    "make test": "the test suite itself",
    "make offline": "the full grid on the real dataset: docs/results.md",
    "make umsab": "the full UMSAB grid on the real dataset: docs/results.md",
}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    return [line.split("  #")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.e2e
def test_readme_commands_run_in_a_fresh_clone_and_undo_leaves_it_clean(tmp_path):
    from conftest import make_csv_source
    clone = tmp_path / "crossling"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # what `git clone .../multilingual-sentiment-datasets external/...` gives: data/<language>/{train,valid,test}.csv
    make_csv_source(clone / "external" / "multilingual-sentiment-datasets" / "data", pool_per_class=120,
                    test_per_class=10)
    # the pinned stack is this test's own venv; an old pyproject.toml tells make it is installed
    (clone / ".venv").symlink_to(BIN.parent)
    (clone / "pyproject.toml").touch()
    import os
    os.utime(clone / "pyproject.toml", (0, 0))
    # a user's shell: not the make that runs `make test` (its MAKELEVEL makes an inner make print directories)
    user_env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env = dict(user_env, PYTHONPATH=str(clone / "src"), DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    commands = readme_commands()
    ran = {}
    for command in commands:
        if any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        proc = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"README command failed in a fresh clone: {command}\n{proc.stdout}\n{proc.stderr}"
        ran[command] = proc.stdout + proc.stderr
    assert {"make smoke NAME=base", "make exp-show", "make undo"} <= set(ran), sorted(ran)
    # a fresh clone's first run is quiet: stage names, progress and results, no warnings
    first = ran[next(command for command in ran if command.startswith("make smoke"))]
    # (1 epoch on the tests' tiny data collapses: evaluate's warning naming the degenerate runs is the one expected)
    warnings = [line for line in first.splitlines() if "WARNING" in line]
    assert all("evaluate WARNING degenerate runs" in line for line in warnings), warnings
    assert "reports/results.md" in first
    shown = ran["make exp-show"]
    header, *experiments = shown.splitlines()
    assert header.split()[0] == "experiment" and header.split()[-1] == "train.learning_rate", shown
    assert {"base", "lr-high"} <= {line.split()[0] for line in experiments}, shown
    compared = next(out for command, out in ran.items() if "crossling.compare" in command)
    assert "| lr-high | joint_largest | english |" in compared
    assert "Quel désastre" in next(out for command, out in ran.items() if "crossling.classify" in command)
    # make undo put the clone back as it was cloned (the experiments stay in DVC)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout == ""
    assert "lr-high" in subprocess.run([str(BIN / "dvc"), "exp", "list", "--name-only"], cwd=clone, env=env,
                                       capture_output=True, text=True, check=True).stdout
    # a failed run leaves no override behind for the next one to inherit
    proc = subprocess.run(["make", "smoke", "SET=+train.epoch=3"], cwd=clone, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "train.epoch: unknown key" in proc.stdout + proc.stderr
    assert "make: dvc exp run failed; params.yaml is back as it was before" in proc.stderr
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout == ""


def test_every_test_the_docs_cite_exists():
    cited = [(page.name, f, t) for page in PAGES
             for f, t in re.findall(r"`(test_\w+\.py)::(test_\w+)", page.read_text(encoding="utf-8"))]
    assert cited  # docs/failure_modes.md cites the test of every refusal
    missing = [c for c in cited if not (ROOT / "tests" / c[1]).exists()
               or not re.search(rf"def {c[2]}\b", (ROOT / "tests" / c[1]).read_text(encoding="utf-8"))]
    assert not missing, f"docs cite tests that do not exist: {missing}"


def test_the_readme_gives_the_number_of_tests_there_are():
    said = re.search(r"make test .*\((\d+) tests\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}  # a -k or -m there would shrink the count
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout
    collected = re.search(r"^(?:\d+/)?(\d+) tests collected", out, re.M)
    assert said and collected and said[1] == collected[1], \
        f"README says {said and said[1]}, pytest collects {collected and collected[1]}"
