"""compare's per-side health: what keeps a paired difference from being marked (the end-to-end comparison of two
queued experiments is in tests/test_pipeline.py)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_config

from crossling.common import joint_name
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


def bilingual_test(gold: np.ndarray) -> pd.DataFrame:
    """A test split of english and french texts, alternating, with these label ids."""
    return pd.DataFrame({"language": ["english", "french"] * (len(gold) // 2),
                         "text": [f"t{i}" for i in range(len(gold))], "label_id": gold,
                         "label": np.array(["negative", "neutral", "positive"])[gold]})


def scored_sides(monkeypatch, seeds_a, seeds_b, shift: int = 0):
    """Two sides on the same 60 test texts whose runs predict alike seed by seed (side b: `shift` more texts right
    per run); the seeds' predictions differ much from each other."""
    from crossling import compare

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 60)
    runs = [np.where(rng.random(60) < quality, gold, (gold + 1) % 3) for quality in (0.3, 0.6, 0.9)]
    test = pd.DataFrame({"language": "english", "text": [f"t{i}" for i in range(60)], "label_id": gold,
                         "label": np.array(["negative", "neutral", "positive"])[gold]})
    sides = [Side(name, None, make_config({"data": {"languages": ["english"]}, "train": {"seeds": seeds}}), {}, test,
                  {}, {}) for name, seeds in (("a", seeds_a), ("b", seeds_b))]

    def predictions(root, side, model, languages):
        if side.name == "a":
            return {"english": runs}
        return {"english": [np.where(np.arange(60) < shift, gold, run) for run in runs]}

    monkeypatch.setattr(compare, "predictions", predictions)
    rows = compare.compare(".", sides, 400, 0.95, "holm", 0)["differences"]
    return next(r for r in rows if r["role"] == "mono_english")


def test_sides_that_trained_the_same_seeds_resample_them_together(monkeypatch):
    same = scored_sides(monkeypatch, [1, 2, 3], [1, 2, 3])
    assert same["difference"] == same["ci_low"] == same["ci_high"] == 0 and same["p"] == 1.0  # run for run alike
    other = scored_sides(monkeypatch, [1, 2, 3], [4, 5, 6])  # other seeds: nothing pairs them, the spread stays
    assert other["difference"] == 0 and other["ci_low"] < -0.05 and other["ci_high"] > 0.05
    shifted = scored_sides(monkeypatch, [1, 2, 3], [1, 2, 3], shift=20)  # b better on the same texts in every run
    assert shifted["difference"] > 0 and shifted["ci_low"] > 0 and shifted["p"] < 0.05


def test_significance_is_an_adjusted_p_below_one_minus_confidence_as_printed(monkeypatch):
    from crossling import compare, stats

    monkeypatch.setattr(Side, "degenerate", lambda self, model, lang: False)  # healthy runs on both sides
    for published, significant in ((0.05, 0), (0.049999, 1)):  # 1 - 0.95 is 0.050000000000000044 in floating point
        monkeypatch.setattr(stats, "adjust", lambda p, method, value=published: dict.fromkeys(p, value))
        row = scored_sides(monkeypatch, [1, 2, 3], [1, 2, 3], shift=20)
        assert (row["p_adjusted"], row["significant"]) == (published, significant)
    result = {"baseline": "a", "revisions": {"a": "1" * 40, "b": "2" * 40}, "test_languages": ["english"],
              "params_that_differ": {}, "provenance": {"a": {}, "b": {}}, "bootstrap_samples": 10,
              "confidence": 0.975, "correction": "holm", "differences": []}
    out = compare.markdown(result)
    assert "97.5% percentile intervals" in out and "**bold**: adjusted p below 0.025;" in out
    row = {"experiment": "b", "role": "mono_english", "baseline_model": "mono_english", "model": "mono_english",
           "test_language": "english", "baseline_macro_f1": 0.5, "macro_f1": 0.6, "difference": 0.1, "ci_low": 0.01,
           "ci_high": 0.19, "p_adjusted": 0.049999, "significant": 1, "degenerate_model": 0}
    out = compare.markdown(result | {"confidence": 0.95123456789, "differences": [row]})
    assert "95.12345679% percentile" in out and "adjusted p below 0.04876543211;" in out
    assert "| **+0.100 [+0.010, +0.190]** | 0.049999 |" in out  # the published p: never a bold "0.05"


def test_the_report_shows_the_shared_identity_and_only_the_provenance_that_differs_after_the_differences():
    from crossling import compare

    a = {"train.device": "cpu", "train.versions.torch": "2.13.0", "data.content_md5": "abc", "train.seed": "1"}
    result = {"baseline": "a", "revisions": {"a": "1" * 40, "b": "2" * 40}, "test_languages": ["english"],
              "params_that_differ": {}, "provenance": {"a": a, "b": a | {"train.device": "cuda"}},
              "bootstrap_samples": 10, "confidence": 0.95, "correction": "holm", "differences": []}
    out = compare.markdown(result)
    assert out.index("## Differences in macro-F1") < out.index("## Provenance")
    assert "| train.device | cpu | cuda |" in out and "train.versions.torch" not in out
    assert "- Same on every side: data.content_md5 = abc; 2 more entries (library versions" in out  # versions counted
    result["provenance"]["b"] = a
    out = compare.markdown(result)
    assert "| train.device |" not in out and "data.content_md5 = abc; train.device = cpu; 2 more entries" in out
    result["provenance"] = {"a": {"train.device": "cpu, cuda"}, "b": {"train.device": "cpu"}}  # a ran on both
    out = compare.markdown(result)
    assert "- Same on every side: none;" in out and "| train.device | cpu, cuda | cpu |" in out


def test_a_side_without_provenance_is_named_never_counted_as_the_same():
    from crossling import compare

    none = compare.provenance_summary({})
    result = {"baseline": "a", "revisions": {"a": "1" * 40, "b": "2" * 40}, "test_languages": ["english"],
              "params_that_differ": {}, "provenance": {"a": none, "b": none},
              "bootstrap_samples": 10, "confidence": 0.95, "correction": "holm", "differences": []}
    out = compare.markdown(result)
    assert "- a: none recorded: metrics/provenance.json absent" in out and "- b: none recorded" in out
    assert "Same on every side" not in out
    result["provenance"]["b"] = {"train.device": "cuda"}
    out = compare.markdown(result)
    assert "- a: none recorded" in out and "- b's record: train.device = cuda;" in out and "Same on" not in out


def test_one_language_on_both_sides_compares_the_monolingual_run_once(monkeypatch):
    from crossling import compare

    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 60)
    test = pd.DataFrame({"language": "english", "text": [f"t{i}" for i in range(60)], "label_id": gold,
                         "label": np.array(["negative", "neutral", "positive"])[gold]})
    monkeypatch.setattr(compare, "predictions", lambda root, side, model, languages: {
        "english": [np.where(rng.random(60) < 0.7, gold, (gold + 1) % 3) for _ in side.cfg.train.seeds]})

    def result(other_languages: list[str]) -> dict:
        sides = [Side(name, None, make_config({"data": {"languages": langs}, "sample": {"leave_one_out": []}}), {},
                      test, {}, {}) for name, langs in (("a", ["english"]), ("b", other_languages))]
        return compare.compare(".", sides, 200, 0.95, "holm", 0)

    one = result(["english"])
    sizes = make_config().sample.sizes
    assert [r["role"] for r in one["differences"]] == [joint_name(s) for s in sizes[:-1]] + ["mono_english"]
    assert one["left_out"] == ["b: joint_largest and joint_equal_budget, which with one language on both sides "
                               "repeat the monolingual run (compared as mono_english)"]
    assert "Not compared: b: joint_largest and joint_equal_budget" in compare.markdown(one)
    two = result(["english", "french"])  # adding french: the joint models are other runs now
    assert {"joint_largest", "joint_equal_budget", "mono_english"} <= {r["role"] for r in two["differences"]}
    assert two["left_out"] == ["a and b: b's mono_french (none in a)"]  # named, never dropped without a word
    assert "Not compared: a and b: b's mono_french (none in a)." in compare.markdown(two)


def test_models_of_one_side_without_their_role_on_the_other_are_named_per_pair(monkeypatch):
    from crossling import compare

    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, 60)
    test = bilingual_test(gold)
    monkeypatch.setattr(compare, "predictions", lambda root, side, model, languages: {
        lang: [rng.integers(0, 3, 30) for _ in side.cfg.train.seeds] for lang in languages})
    sides = [Side(name, None, make_config({"data": {"languages": ["english", "french"]},
                                           "sample": {"sizes": sizes, "leave_one_out": loo}}), {}, test, {}, {})
             for name, sizes, loo in (("a", [12, 24, 48], []), ("b", [12, 24], ["french"]), ("c", [12, 24, 48], []))]
    result = compare.compare(".", sides, 200, 0.95, "holm", 0)
    assert result["left_out"] == [
        "a and b: a's joint_24 (b's joint_24 is its largest, compared as joint_largest), b's loo_french (none in a)"]
    compared = {(r["experiment"], r["role"], r["baseline_model"], r["model"]) for r in result["differences"]}
    assert ("b", "joint_largest", "joint_48", "joint_24") in compared and ("c", "joint_24", "joint_24",
                                                                             "joint_24") in compared


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_the_correction_asked_for_adjusts_every_difference_together(monkeypatch, correction):
    from crossling import compare, stats

    rng = np.random.default_rng(2)
    gold = rng.integers(0, 3, 60)
    test = bilingual_test(gold)
    quality = {"a": 0.6, "b": 0.75}
    monkeypatch.setattr(compare, "predictions", lambda root, side, model, languages: {
        lang: [np.where(rng.random(30) < quality[side.name], gold[test["language"] == lang],
                        (gold[test["language"] == lang] + 1) % 3) for _ in side.cfg.train.seeds]
        for lang in languages})
    monkeypatch.setattr(Side, "degenerate", lambda self, model, lang: False)
    cfg = make_config({"data": {"languages": ["english", "french"]}, "sample": {"leave_one_out": []}})
    sides = [Side(name, None, cfg, {}, test, {}, {}) for name in "ab"]
    result = compare.compare(".", sides, 200, 0.95, correction, 0)
    rows = result["differences"]
    raw = {str(i): r["p"] for i, r in enumerate(rows)}
    assert len(rows) > 2 and stats.adjust(raw, "holm") != stats.adjust(raw, "bh")
    assert [r["p_adjusted"] for r in rows] == list(map(stats.adjust(raw, correction).get, raw))
    named = {"holm": "Holm (family-wise error rate)", "bh": "Benjamini-Hochberg (false discovery rate)"}
    assert named[correction] in compare.markdown(result)
    assert named[{"holm": "bh", "bh": "holm"}[correction]] not in compare.markdown(result)


def test_compare_outside_a_dvc_project_is_one_line(tmp_path, capsys):
    from crossling.compare import main

    with pytest.raises(SystemExit) as exit_:
        main(["one", "two", "--repo", str(tmp_path), "--out", str(tmp_path / "compare.json")])
    assert exit_.value.code == 2 and not (tmp_path / "compare.json").exists()
    assert capsys.readouterr().err == (f"crossling.compare: error: {tmp_path} is not a DVC project (no .dvc); run "
                                       "this in the crossling checkout\n")


@pytest.mark.parametrize("options, message", [
    (["a", "b", "a"], "a given twice: a side compared with itself; give each once"),
    (["a", "b", "--bootstrap-samples", "1"], "--bootstrap-samples: must be at least 100, got 1"),
    (["a", "b", "--confidence", "1.5"], "--confidence: must be in [0.5, 1), got 1.5"),
    (["a", "b", "--seed", "-1"], "--seed: must be in [0, 2**32), got -1"),
    (["a", "b", "--out", "{tmp}"], "--out {tmp}: is a directory; give a file name, e.g. {tmp}/compare.json"),
])
def test_bad_options_are_one_line_before_any_work(tmp_path, capsys, options, message):
    # before any work: tmp_path is no DVC project, so an option checked later would give that error instead
    from crossling.compare import main

    with pytest.raises(SystemExit) as exit_:
        main([o.format(tmp=tmp_path) for o in options] + ["--repo", str(tmp_path)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"crossling.compare: error: {message.format(tmp=tmp_path)}\n"


def test_a_workspace_that_is_not_reproduced_is_refused(tmp_path):
    # predictions of a run that params.yaml no longer gives must not be credited to the params that differ
    import subprocess
    import sys

    from crossling import compare
    from crossling.common import DataError
    from crossling.project import open_repo

    dvc = [str(Path(sys.executable).with_name("dvc"))]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(dvc + ["init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  s1:\n    cmd: echo ${a} > out.txt\n    params: [a]\n    outs: [out.txt]\n"
                                       "  s2:\n    cmd: cp out.txt out2.txt\n    deps: [out.txt]\n    outs: [out2.txt]\n")
    subprocess.run(dvc + ["repro", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("a: 2\n")
    with open_repo(tmp_path) as repo, pytest.raises(DataError) as err:
        compare.load_side(str(tmp_path), repo, compare.WORKSPACE)
    assert str(err.value) == ("the workspace is not reproduced: dvc status finds 1 changed stage(s) (s1); run dvc repro "
                              "first, or compare committed experiments")
    subprocess.run(dvc + ["repro", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "out.txt").unlink()  # reproduced, an output not checked out (or not pulled): read from the cache
    with open_repo(tmp_path) as repo, pytest.raises(DataError) as err:
        compare.load_side(str(tmp_path), repo, compare.WORKSPACE)
    assert str(err.value).startswith("params.yaml of workspace: ")  # read on (these params are no study's)
    # s1 re-run alone, then both outputs absent (a fresh clone): s2's input is not what s1 now locks
    (tmp_path / "params.yaml").write_text("a: 3\n")
    subprocess.run(dvc + ["repro", "-q", "-s", "s1"], cwd=tmp_path, check=True)
    (tmp_path / "out.txt").unlink()
    (tmp_path / "out2.txt").unlink()
    with open_repo(tmp_path) as repo, pytest.raises(DataError, match=r"finds 1 changed stage\(s\) \(s2\)"):
        compare.check_reproduced(repo)
    with open_repo(tmp_path) as running, running.lock, open_repo(tmp_path) as repo:  # a dvc repro under way
        with pytest.raises(DataError, match="the workspace is locked by another dvc command"):
            compare.check_reproduced(repo)


def test_sides_with_different_test_texts_are_refused():
    from crossling import compare
    from crossling.common import DataError

    test = pd.DataFrame({"language": "english", "text": ["good", "bad"], "label": ["positive", "negative"]})
    cfg = make_config({"data": {"languages": ["english"]}})
    sides = [Side(name, None, cfg, {}, frame, {}, {}) for name, frame in
             (("a", test), ("b", test.assign(text=["good", "bad!"])))]
    with pytest.raises(DataError, match="the english test texts differ between a and b"):
        compare.check_same_texts(sides)


def test_a_past_revision_without_keys_added_since_is_read_unless_compare_reads_them(monkeypatch):
    # a revision from before the slurm section: its keys come from the workspace's params.yaml (compare reads none of
    # them, and "Params that differ" shows them as null on its side); one without what compare reads is refused
    import copy

    import yaml

    from crossling import compare
    from crossling.common import DataError
    from crossling.config import ConfigError, config_from_dict

    current = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text(encoding="utf-8"))
    monkeypatch.setattr(compare, "read_bytes", lambda root, path, rev, what: yaml.safe_dump(current).encode())

    def load(raw, rev="abc123"):
        try:
            return config_from_dict(raw)
        except ConfigError as exc:
            return compare.older_params(".", "old", rev, raw, exc)

    old = copy.deepcopy(current)
    del old["slurm"], old["train"]["lora"]
    old["train"]["seeds"] = [7]
    cfg = load(old)
    assert cfg.train.seeds == (7,) and cfg.slurm.workdir == current["slurm"]["workdir"]
    with pytest.raises(DataError, match=r"^params.yaml of old: train.lora: missing; add it \(the repository"):
        load(old, rev=None)  # the workspace's own params are never completed
    # a mapping param is one value, never completed entry by entry from the workspace's
    current["data"]["label_map"] = {"pos": "positive"}
    two = copy.deepcopy(old) | {"data": old["data"] | {"labels": ["good", "bad"], "label_map": {}}}
    assert load(two).data.label_map == {}
    del old["train"]["seeds"]
    with pytest.raises(DataError) as err:
        load(old)
    assert str(err.value) == ("params.yaml of old: train.seeds: missing, and compare reads it (made by another version "
                              "of the pipeline: compare revisions made with this one)")
    current["slurm"]["time"] = "4h"  # the workspace's own params, mid-edit, are not blamed on the old revision
    with pytest.raises(DataError, match=r"^params.yaml of old: train.seeds: missing, and the workspace's params.yaml, "
                                        r"which could complete it, is not valid: slurm.time: "):
        load(old)
    current["slurm"]["time"] = "04:00:00"
    bad = copy.deepcopy(current)
    del bad["slurm"]
    bad["train"]["epochs"] = 0  # a bad value is reported as such, after the missing keys are taken
    with pytest.raises(DataError, match=r"^params.yaml of old: train.epochs: must be a positive integer, got 0 \(made by"):
        load(bad)
