"""Open a `dvc plots show` / `dvc plots diff` page in headless Chromium and check that every plot drew.

    python scripts/check_plots.py DIR_OR_INDEX_HTML [--png-dir DIR] [--only ID ...] [--screenshot FILE]

The page loads vega, vega-lite and vega-embed from a CDN; they are served here from the npm packages
in scripts/vega/node_modules (`make test` installs them), the same versions, over loopback only.
A plot fails when Vega reports an error or when one of its data marks (line, area, rect, ...) drew
nothing (e.g. a template that encodes a field the data lacks). --png-dir writes each plot as a PNG (Vega's own rendering, in the
browser), --screenshot the whole page as a person sees it. Exit 0 when every plot drew, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vega" / "node_modules"
LIBRARIES = {"vega": "vega/build/vega.min.js", "vega-lite": "vega-lite/build/vega-lite.min.js",
             "vega-embed": "vega-embed/build/vega-embed.min.js"}
CDN_SCRIPT = re.compile(r'<script src="https?://[^"]*/npm/(vega|vega-lite|vega-embed)@[^"]*"></script>')
EMBED_CALL = re.compile(r"vegaEmbed\('#([^']+)'")
# vega-embed notes that a spec's "$schema" names v5 rather than the exact version; that is no fault.
VERSION_NOTE = re.compile(r"uses Vega(-Lite)? v\d+, but (the )?current version")
# Without these a headless Chromium on a closed network waits on refused connections; --no-sandbox as root,
# --disable-dev-shm-usage in a container's 64 MB /dev/shm (the GitHub workflow's).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1", "--disable-dev-shm-usage"]

# Wraps vegaEmbed: waits for every plot, counts the marks each view drew, exports it as PNG, posts the result.
PROBE = """<script>
(function () {
  const embed = window.vegaEmbed, runs = [], pageErrors = [];
  window.addEventListener('error', (e) => pageErrors.push(String(e.message || e)));
  for (const level of ['error', 'warn']) {
    const original = console[level];
    console[level] = function (...args) { pageErrors.push(level + ': ' + args.map(String).join(' ')); original.apply(console, args); };
  }
  function countMarks(mark, counts) {  // items per data mark (not axes, legends, titles), over facet cells
    if (mark.role === 'mark' && mark.marktype !== 'group') counts[mark.name] = (counts[mark.name] || 0) + mark.items.length;
    for (const item of mark.items || []) for (const child of item.items || []) countMarks(child, counts);
    return counts;
  }
  window.vegaEmbed = function (el, spec, opts) {
    const id = String(el).replace(/^#/, '');
    const run = embed(el, spec, opts).then(async (result) => ({
      id, marks: countMarks(result.view.scenegraph().root, {}), png: WANT_PNG ? await result.view.toImageURL('png', 2) : null,
    }), (err) => ({id, error: String(err && err.message || err)}));
    runs.push(run);
    return run;
  };
  window.addEventListener('load', async () => {
    const plots = await Promise.all(runs);
    const body = JSON.stringify({plots, pageErrors, height: document.documentElement.scrollHeight});
    await fetch('/__result__', {method: 'POST', body});
  });
})();
</script>"""


def fail(message: str) -> None:
    print(f"check_plots: error: {message}", file=sys.stderr)
    sys.exit(2)


def find_chromium() -> str:
    for name in filter(None, (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome")):
        if path := shutil.which(name):
            return path
    fail("no Chromium found; install it (apt-get install chromium) or set CHROMIUM=/path/to/chrome")
    raise AssertionError


def local_page(page: str, want_png: bool) -> tuple[str, list[str]]:
    """The page with the CDN scripts replaced by local copies and the probe added; and its plot ids."""
    found = {m.group(1) for m in CDN_SCRIPT.finditer(page)}
    if found != set(LIBRARIES):
        fail(f"the page does not load {', '.join(sorted(set(LIBRARIES) - found))} like `dvc plots show` "
             "does; pass the index.html that dvc wrote")
    page = CDN_SCRIPT.sub(lambda m: f'<script src="/__vendor__/{m.group(1)}.js"></script>', page)
    last = max(page.rfind(f'/__vendor__/{name}.js"></script>') for name in LIBRARIES)
    end = page.index("</script>", last) + len("</script>")
    probe = PROBE.replace("WANT_PNG", "true" if want_png else "false")
    return page[:end] + probe + page[end:], EMBED_CALL.findall(page)


class Server(http.server.ThreadingHTTPServer):
    def __init__(self, root: Path, page: str):
        super().__init__(("127.0.0.1", 0), Handler)
        self.root, self.page = root.resolve(), page.encode()
        self.result: dict | None = None
        self.done = threading.Event()
        self.not_found: list[str] = []


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            return self.send(self.server.page, "text/html; charset=utf-8")
        if path.startswith("/__vendor__/") and path[12:-3] in LIBRARIES:
            return self.send((VENDOR / LIBRARIES[path[12:-3]]).read_bytes(), "text/javascript")
        file = (self.server.root / path.lstrip("/")).resolve()
        if file.is_file() and file.is_relative_to(self.server.root) and path != "/favicon.ico":
            return self.send(file.read_bytes(), "application/octet-stream")
        if path != "/favicon.ico":
            self.server.not_found.append(path)
        self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        self.server.result = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send(b"{}", "application/json")
        self.server.done.set()


def run_chromium(chromium: str, args: list[str], profile: Path) -> subprocess.Popen:
    return subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    return err.decode(errors="replace").strip().splitlines()[-1:][0] if err.strip() else ""


def check(page_path: Path, png_dir: Path | None, only: list[str], screenshot: Path | None,
          timeout: float) -> list[str]:
    """Problems found, one line each; writes the PNGs and the screenshot."""
    chromium = find_chromium()
    if not all((VENDOR / file).is_file() for file in LIBRARIES.values()):
        fail(f"Vega libraries missing under {VENDOR}; run `npm ci --prefix scripts/vega --legacy-peer-deps`")
    page, ids = local_page(page_path.read_text(encoding="utf-8"), png_dir is not None)
    if not ids:
        fail(f"{page_path}: no Vega plot in the page")
    unknown = sorted(set(only) - set(ids))
    if unknown:
        fail(f"--only: no plot {', '.join(unknown)} in the page (plots: {', '.join(ids)})")
    server = Server(page_path.parent, page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with tempfile.TemporaryDirectory(prefix="check-plots-") as tmp:
        browser = run_chromium(chromium, [url], Path(tmp) / "profile")
        finished = server.done.wait(timeout)
        last_line = stop(browser)
        if not finished:
            server.shutdown()
            return [f"the page did not finish rendering within {timeout:.0f} s (Chromium: {last_line or 'no output'})"]
        result = server.result or {}
        problems = [f"page requested {path}, which is not there" for path in server.not_found]
        problems += [f"page: {message}" for message in result.get("pageErrors", []) if not VERSION_NOTE.search(message)]
        by_id = {plot["id"]: plot for plot in result.get("plots", [])}
        for plot_id in ids:
            plot = by_id.get(plot_id)
            if plot is None:
                problems.append(f"{plot_id}: never embedded")
            elif plot.get("error"):
                problems.append(f"{plot_id}: Vega error: {plot['error']}")
            elif not plot["marks"]:
                problems.append(f"{plot_id}: drew nothing (no data?)")
            elif empty := [name for name, count in plot["marks"].items() if not count]:
                problems.append(f"{plot_id}: drew nothing for mark {', '.join(empty)} (a field the data lacks?)")
            else:
                print(f"{plot_id}: drew {sum(plot['marks'].values())} items in {len(plot['marks'])} marks")
                if png_dir is not None and (not only or plot_id in only):
                    png_dir.mkdir(parents=True, exist_ok=True)
                    png = base64.b64decode(plot["png"].split(",", 1)[1])
                    (png_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', plot_id)}.png").write_bytes(png)
        if screenshot is not None and not problems:
            height = min(int(result.get("height", 2000)) + 20, 16000)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            shot = run_chromium(chromium, [f"--screenshot={screenshot.resolve()}", f"--window-size=1280,{height}",
                                           "--virtual-time-budget=20000", url], Path(tmp) / "shot-profile")
            try:
                shot.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            last_line = stop(shot)
            if not screenshot.is_file():
                problems.append(f"no screenshot written (Chromium: {last_line or 'no output'})")
        server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="index.html written by `dvc plots show/diff -o DIR`, or DIR")
    parser.add_argument("--png-dir", type=Path, help="write each plot that drew as DIR/<plot id>.png")
    parser.add_argument("--only", nargs="+", default=[], metavar="ID", help="PNGs for these plots only")
    parser.add_argument("--screenshot", type=Path, help="write a screenshot of the whole page")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the page")
    args = parser.parse_args(argv)
    page = args.page / "index.html" if args.page.is_dir() else args.page
    if not page.is_file():
        fail(f"{page}: no such file; write it with `dvc plots show -o DIR`")
    problems = check(page, args.png_dir, args.only, args.screenshot, args.timeout)
    for problem in problems:
        print(f"check_plots: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
