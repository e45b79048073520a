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
        for layer in spec["layer"][1:]:  # the line and its points
            layer["encoding"]["y"]["field"] = "<DVC_METRIC_Y>_typo"

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


# Vega's own scene graph of a template filled by dvc_render (what `dvc plots show/diff` embeds), in node with the
# libraries check_plots serves: the scales' domains, the text marks and the legend symbols as drawn.
SCENE_JS = """
const vega = require(process.argv[1] + "/vega"), vl = require(process.argv[1] + "/vega-lite");
let input = ""; process.stdin.on("data", d => input += d).on("end", async () => {
  const view = new vega.View(vega.parse(vl.compile(JSON.parse(input)).spec), {renderer: "none"});
  await view.runAsync();
  const out = {x: view.scale("x").domain(), texts: [], legend: []};
  (function walk(node, role) {
    if (node.marktype) role = node.role;
    if (node.marktype === "text" && role === "mark") out.texts.push(...node.items.map(i => i.text));
    if (node.marktype === "symbol" && role === "legend-symbol")
      out.legend.push(...node.items.map(i => ({shape: i.shape, dash: i.strokeDash || null,
                                                 colour: i.fill === "transparent" ? i.stroke : i.fill})));
    for (const item of node.items || []) for (const child of item.items || []) walk(child, role);
  })(view.scenegraph().root, null);
  console.log(JSON.stringify(out));
});
"""


def scene(template: str, rows: list[dict], x: str, y: str) -> dict:
    spec = VegaRenderer(rows, template, template=str(ROOT / ".dvc" / "plots" / f"{template}.json"), x=x,
                        y=y).get_filled_template()
    proc = subprocess.run(["node", "-e", SCENE_JS, str(ROOT / "scripts" / "vega" / "node_modules")],
                          input=json.dumps(spec), capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def test_the_normalized_transfer_columns_follow_its_rows_and_star_failed_runs():
    langs = ["english", "french", "japanese"]
    # as evaluate writes them: row by row, without the diagonal, so english's row starts at french
    rows = [{"train_language": src, "test_language": tgt, "train_domain": "d", "test_domain": "d",
             "normalized_macro_f1": 0.1, "ci_low": 0.0, "ci_high": 0.2, "finding": False,
             "degenerate": src == "french", "test_order": langs.index(tgt), "rev": "workspace"}
            for src in langs for tgt in langs if tgt != src]
    drawn = scene("transfer_normalized", rows, "test_language", "train_language")
    assert drawn["x"] == langs
    assert sorted(drawn["texts"]) == ["+0.10"] * 4 + ["+0.10*"] * 2
    # dvc plots diff with a revision written before test_order: its languages follow, in its data's order
    older = [{k: v for k, v in row.items() if k != "test_order"} | {"rev": "HEAD"}
             for row in rows + [dict(rows[0], test_language="german")]]
    assert scene("transfer_normalized", older + rows, "test_language", "train_language")["x"] == langs + ["german"]


def test_curves_tell_revisions_and_up_to_20_series_apart_in_their_legends():
    runs = [f"run{i:02d}" for i in range(14)]
    for template, x, y, series, extra in (
            ("dev_curve", "epoch", "macro_f1", "model", {"language": "english", "step": 1}),
            ("training_loss", "epoch", "loss", "model", {"step": 1}),
            ("learning_curve", "size", "macro_f1", "language", {"macro_f1_ci_low": 0.1, "macro_f1_ci_high": 0.3})):
        # one point per series and revision (a one-epoch run): the legend alone tells the revisions apart
        rows = [{x: 1, y: 0.2, series: name, "rev": rev, **extra} for rev in ("HEAD", "workspace") for name in runs]
        legend = scene(template, rows, x, y)["legend"]
        series_colours = [s["colour"] for s in legend if s["dash"] is None and s["shape"] != "square"][:len(runs)]
        assert len(set(series_colours)) == len(runs), template
        dashes = [s["dash"] for s in legend if s["dash"]]
        if template == "training_loss":
            assert len(dashes) == 2 and dashes[0] != dashes[1], legend  # solid, dashed
        else:  # a point on every line's vertex: one legend, of shapes (a one-epoch run draws points only)
            assert not dashes and [s["shape"] for s in legend[len(runs):]] == ["circle", "square"], legend
