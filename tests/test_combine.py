import json

import pandas as pd
from conftest import make_config, tiny_params, write_params

from crossling import combine, download

DATA = make_config({"data": {"source": "local", "languages": ["english", "french"]}}).data


def raw_rows(rows):
    """rows: (language, split, text, label) -> a raw frame as download writes it."""
    df = pd.DataFrame(rows, columns=["language", "split", "text", "label"]).assign(source="t")
    return download.normalize(df, DATA)


def base_rows(lang):
    return [(lang, "train", f"{lang} good {i}", "positive") for i in range(3)] + \
           [(lang, "test", f"{lang} test {i}", "negative") for i in range(2)]


def test_removals_are_counted_per_language():
    rows = base_rows("english") + base_rows("french") + [
        ("english", "train", "   ", "neutral"),                 # whitespace only
        ("english", "validation", "", "neutral"),             # empty
        ("english", "train", "so so", "mixed"),               # unknown label
        ("english", "train", "english good 0 ", "positive"),  # duplicate (differs only by whitespace)
        ("english", "validation", "english good 1", "positive"),  # duplicate across train/validation
        ("english", "train", "contested", "positive"),        # conflicting labels: all copies go
        ("english", "validation", "contested", "negative"),
        ("english", "train", "english test 0", "negative"),   # leaks into test
        ("english", "test", "english test 0", "negative"),    # duplicate inside test: kept, counted
        ("english", "test", "", "positive"),                  # empty test text
    ]
    pool, test, report = combine.combine(raw_rows(rows), DATA)
    en = report["english"]
    assert en["pool_empty_text"] == 2
    assert en["pool_unknown_label"] == 1
    assert en["pool_duplicate_rows"] == 2
    assert en["pool_conflicting_label_rows"] == 2
    assert en["pool_test_overlap_rows"] == 1
    assert en["test_empty_text"] == 1
    assert en["test_duplicate_rows_kept"] == 1
    assert en["pool"] == 3 and en["test"] == 3
    assert en["raw_train"] + en["raw_validation"] == 3 + 8
    assert report["french"]["pool"] == 3 and report["french"]["pool_duplicate_rows"] == 0
    # nothing removed silently: raw pool rows = kept + every removal counted
    removed = sum(en[k] for k in ("pool_empty_text", "pool_unknown_label", "pool_duplicate_rows",
                                  "pool_conflicting_label_rows", "pool_test_overlap_rows",
                                  "pool_other_language_test_overlap_rows"))
    assert en["raw_train"] + en["raw_validation"] == en["pool"] + removed
    assert "contested" not in set(pool["text"])
    en_pool = pool[pool["language"] == "english"]
    assert not set(en_pool["text"].str.strip()) & set(test.loc[test["language"] == "english", "text"].str.strip())


def test_overlap_with_another_languages_test_split_is_removed_and_counted_apart():
    # joint models train on every pool and are tested on every test split
    rows = base_rows("english") + base_rows("french") + [("french", "train", "english test 0", "negative")]
    pool, _, report = combine.combine(raw_rows(rows), DATA)
    assert report["french"]["pool_test_overlap_rows"] == 0
    assert report["french"]["pool_other_language_test_overlap_rows"] == 1
    assert "english test 0" not in set(pool["text"])


def test_label_distribution_rows():
    _, _, report = combine.combine(raw_rows(base_rows("english") + base_rows("french")), DATA)
    dist = combine.label_distribution(report, DATA.labels)
    assert len(dist) == 2 * 2 * 3
    row = next(r for r in dist if r["language"] == "english" and r["split"] == "pool" and r["label"] == "positive")
    assert row["count"] == 3 and row["share"] == 1.0


def test_cli_writes_all_outputs(tmp_path, csv_source):
    params = write_params(tmp_path / "params.yaml", tiny_params(csv_source))
    raw = tmp_path / "raw.parquet"
    download.cli(["--params", str(params), "--out", str(raw)])
    out = {k: tmp_path / v for k, v in dict(pool="pool.parquet", test="test.parquet", metrics="data.json",
                                             pj="dist.json", png="dist.png").items()}
    combine.cli(["--params", str(params), "--raw", str(raw), "--pool", str(out["pool"]), "--test", str(out["test"]),
                 "--metrics", str(out["metrics"]), "--plot-json", str(out["pj"]), "--plot-png", str(out["png"])])
    report = json.loads(out["metrics"].read_text())
    assert set(report) == {"english", "french"}
    assert report["english"]["pool"] == 90 and report["english"]["test"] == 30
    assert out["png"].read_bytes()[:4] == b"\x89PNG"
