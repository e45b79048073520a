"""scripts/check_plots.py: pages in dvc's own HTML (dvc_render), opened in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
from dvc_render import VegaRenderer, render_html

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_plots.py"
TEMPLATE = ROOT / ".dvc" / "plots" / "learning_curve.json"


def curve_rows(rev: str = "workspace") -> list[dict]:
    return [{"size": size, "language": lang, "macro_f1": 0.3 + size / 1000, "macro_f1_ci_low": 0.2 + size / 1000,
             "macro_f1_ci_high": 0.4 + size / 1000, "rev": rev} for size in (100, 500) for lang in ("english", "french")]


def broken_template(tmp_path: Path, name: str, edit) -> Path:
    spec = json.loads(TEMPLATE.read_text())
    edit(spec)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def page(tmp_path: Path, plots: dict[str, Path]) -> Path:
    renderers = [VegaRenderer(curve_rows(), plot_id, template=str(template), x="size", y="macro_f1", title=plot_id)
                 for plot_id, template in plots.items()]
    return Path(render_html(renderers, tmp_path / "html" / "index.html"))


def check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=180)


def test_plots_that_draw_pass_and_are_written_as_png(tmp_path):
    index = page(tmp_path, {"curve": TEMPLATE})
    proc = check(index.parent, "--png-dir", tmp_path / "png", "--screenshot", tmp_path / "page.png")
    assert proc.returncode == 0, proc.stderr
    assert "curve: drew" in proc.stdout
    for png in (tmp_path / "png" / "curve.png", tmp_path / "page.png"):
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400, png
        assert (pixels[..., :3].min(axis=2) < 0.9).mean() > 0.02, png  # drawn, not a blank page


def test_a_plot_that_does_not_draw_fails_and_names_it(tmp_path):
    def typo_in_the_line(spec):  # the band still draws, the line encodes a field the data lacks
        spec["layer"][1]["encoding"]["y"]["field"] = "<DVC_METRIC_Y>_typo"

    def unknown_mark(spec):
        spec["layer"][0]["mark"]["type"] = "areaa"

    index = page(tmp_path, {"good": TEMPLATE, "typo": broken_template(tmp_path, "typo", typo_in_the_line),
                            "badmark": broken_template(tmp_path, "badmark", unknown_mark)})
    proc = check(index, "--png-dir", tmp_path / "png")
    assert proc.returncode == 1
    problems = [line for line in proc.stderr.splitlines() if line.startswith("check_plots: ")]
    assert any(line.startswith("check_plots: typo: drew nothing for mark") for line in problems), proc.stderr
    assert any(line.startswith("check_plots: badmark: Vega error:") for line in problems), proc.stderr
    assert not any(line.startswith("check_plots: good") for line in problems)
    assert "good: drew" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["good.png"]


def test_only_writes_the_named_plots(tmp_path):
    index = page(tmp_path, {"first": TEMPLATE, "second": TEMPLATE})
    proc = check(index, "--png-dir", tmp_path / "png", "--only", "second")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["second.png"]
    proc = check(index, "--png-dir", tmp_path / "png", "--only", "third")
    assert proc.returncode == 2 and "--only: no plot third in the page (plots: first, second)" in proc.stderr


def test_pages_it_cannot_check_are_refused_in_one_line(tmp_path):
    (tmp_path / "plain.html").write_text("<html><body>no plots</body></html>")
    proc = check(tmp_path / "plain.html")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "check_plots: error: the page does not load vega, vega-embed, vega-lite like `dvc plots show` does; "
        "pass the index.html that dvc wrote"]
    assert check(tmp_path / "missing").stderr.startswith("check_plots: error: ")

    index = page(tmp_path, {"curve": TEMPLATE})
    proc = check(index, env=dict(os.environ, PATH=str(tmp_path), CHROMIUM=""))
    assert proc.returncode == 2 and "no Chromium found" in proc.stderr


def test_the_learning_curves_interval_band_is_drawn_per_revision():
    # dvc plots diff stacks every revision's rows: a band grouped by language alone zigzags between revisions
    band = next(layer for layer in json.loads(TEMPLATE.read_text())["layer"] if layer["mark"]["type"] == "area")
    assert band["encoding"]["detail"] == {"field": "rev", "type": "nominal"}
