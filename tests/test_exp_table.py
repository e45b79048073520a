"""scripts/exp_table.py: one row per experiment, only the params that differ between them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from exp_table import rows, table, without_metrics  # noqa: E402


def rev(name, lr, langs, metrics=True):
    data = {"params": {"params.yaml": {"data": {"train": {"learning_rate": lr, "epochs": 5},
                                                "data": {"languages": langs, "source": "/mirror"}}}}}
    if metrics:
        data["metrics"] = {"metrics/headline.json": {"data": {
            "joint_largest_mean_macro_f1": 0.51234, "mono_in_language_mean_macro_f1": 0.4,
            "zero_shot_mean_macro_f1": 0.3, "normalized_transfer_mean": -0.1, "degenerate_runs": 0,
            "joint_equal_budget_minus_mono_mean": 0.02,
            "joint_largest_macro_f1_english": 0.6}}}
    return {"rev": f"{name}0000000", "name": name, "data": data}


def test_rows_skip_revisions_without_metrics_and_columns_are_the_params_that_differ():
    baseline = rev("main", 2e-5, ["english", "french", "arabic"], metrics=False)
    baseline["experiments"] = [{"revs": [rev("lr-low", 1e-4, ["english", "french"])]},
                               {"revs": [rev("lr-high", 1e-3, ["english", "french"])]}]
    found = rows([baseline])
    assert [name for name, _, _ in found] == ["lr-low", "lr-high"]
    lines = table(found).splitlines()
    assert lines[0].split() == ["experiment", "joint", "mono", "equal-budget-minus-mono", "zero-shot", "norm.transfer",
                                "degenerate", "train.learning_rate"]
    assert lines[1].split() == ["lr-low", "0.512", "0.400", "0.020", "0.300", "-0.100", "0", "0.0001"]
    assert "english" not in table(found) and len(lines) == 3


def test_experiments_without_metrics_are_named_with_their_state_not_dropped():
    baseline = rev("main", 2e-5, ["english", "french"], metrics=False)  # a commit without results: not an experiment
    baseline["experiments"] = [{"revs": [rev("done", 1e-4, ["english"])], "executor": None, "name": "done"},
                               {"revs": [rev("failing", 1e-4, ["english"], metrics=False)],
                                "executor": {"state": "failed", "name": "dvc-task"}, "name": "failing"},
                               {"revs": [rev("next", 1e-3, ["english"], metrics=False)],
                                "executor": {"state": "queued"}, "name": None},
                               # dvc exp show reads a failed or running experiment from its stash: the baseline's
                               # committed metrics beside the experiment's own params
                               {"revs": [rev("stashed", 0.5, ["english"])], "executor": {"state": "failed"},
                                "name": "stashed"},
                               {"revs": [rev("now", 0.2, ["english"])], "executor": {"state": "running"},
                                "name": "now"},
                               {"revs": [rev("broken", 0.3, ["english"]) | {"error": {"type": "X", "msg": "m"}}],
                                "executor": None, "name": "broken"}]
    assert [name for name, _, _ in rows([baseline])] == ["done"]
    assert without_metrics([baseline]) == ["failing (failed)", "next (queued)", "stashed (failed)", "now (running)",
                                           "broken (failed)"]
