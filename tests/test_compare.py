"""compare's per-side health: what keeps a paired difference from being marked (the end-to-end comparison of two
queued experiments is in tests/test_pipeline.py)."""

import pandas as pd
from conftest import make_config

from crossling.compare import Side


def side(health: dict) -> Side:
    cfg = make_config({"train": {"seeds": [1, 2]}})
    return Side("exp", None, cfg, {}, pd.DataFrame(), {}, health)


def test_a_collapsed_cell_marks_only_its_language_and_a_degenerate_seed_marks_every_one():
    healthy = {"degenerate": 0}
    s = side({"mono_english_seed1": healthy | {"collapsed_on_french": 1}, "mono_english_seed2": healthy,
              "mono_french_seed1": healthy, "mono_french_seed2": {"degenerate": 1}})
    assert s.degenerate("mono_english", "french") and not s.degenerate("mono_english", "english")
    assert s.degenerate("mono_french", "french") and s.degenerate("mono_french", "english")


def test_unknown_health_is_never_a_finding():
    assert side({}).degenerate("mono_english", "english")  # no metrics/health.json: an older pipeline's run
    assert side({"mono_english_seed1": {"degenerate": 0}}).degenerate("mono_english", "english")  # seed2 missing
