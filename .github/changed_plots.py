"""Ids of the plots whose data differ between two revisions, read from `dvc plots diff --json --split`,
as the HTML page of `dvc plots diff -o` spells them (its div ids).

    dvc plots diff BASE --json --split | python .github/changed_plots.py BASE
"""

from __future__ import annotations

import json
import sys

from dvc_render.base import Renderer


def changed_plots(diff: dict, base: str, head: str = "workspace") -> list[str]:
    changed = []
    for plot_id, renderers in diff.get("data", {}).items():
        rows: dict[str, list] = {base: [], head: []}
        for renderer in renderers:
            for row in renderer.get("anchor_definitions", {}).get("<DVC_METRIC_DATA>", []):
                rest = {key: value for key, value in row.items() if key != "rev"}
                rows.setdefault(row.get("rev"), []).append(json.dumps(rest, sort_keys=True))
        if sorted(rows[base]) != sorted(rows[head]):
            changed.append(Renderer.remove_special_chars(plot_id))
    return changed


if __name__ == "__main__":
    print(" ".join(changed_plots(json.load(sys.stdin), sys.argv[1])))
