import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import make_config, run_download, tiny_params, write_params

from crossling import combine, download
from crossling.common import DataError

DATA = make_config({"data": {"source": "local", "languages": ["english", "french"]}}).data


def raw_rows(rows):
    """rows: (language, split, text, label) -> a raw frame as download writes it."""
    df = pd.DataFrame(rows, columns=["language", "split", "text", "label"]).assign(source="t")
    return download.normalize(df, DATA)


def base_rows(lang):
    # every class in the test split, which combine requires; the train rows are all positive
    return [(lang, "train", f"{lang} good {i}", "positive") for i in range(3)] + \
           [(lang, "test", f"{lang} test {i}", label) for i, label in enumerate(TEST_LABELS)]


TEST_LABELS = ("negative", "negative", "neutral", "positive")


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
    pool, dev, test, report = combine.combine(raw_rows(rows), DATA, 0)
    en = report["english"]
    assert en["pool_empty_text"] == 2
    assert en["pool_unknown_label"] == 1
    assert en["pool_duplicate_rows"] == 2
    assert en["pool_conflicting_label_rows"] == 2
    assert en["pool_test_overlap_rows"] == 1
    assert en["test_empty_text"] == 1
    assert en["test_duplicate_rows_kept"] == 1
    assert en["pool"] == 3 and en["test"] == 5
    assert en["raw_train"] + en["raw_validation"] == 3 + 8
    assert report["french"]["pool"] == 3 and report["french"]["pool_duplicate_rows"] == 0
    # nothing removed silently: raw pool rows = kept + every removal counted
    removed = sum(en[k] for k in ("pool_empty_text", "pool_unknown_label", "pool_duplicate_rows",
                                  "pool_conflicting_label_rows", "pool_test_overlap_rows",
                                  "pool_other_language_test_overlap_rows", "pool_other_language_dev_overlap_rows"))
    assert en["raw_train"] + en["raw_validation"] == en["pool"] + en["dev"] + removed
    assert dev.empty and en["dev"] == 0
    assert "contested" not in set(pool["text"])
    en_pool = pool[pool["language"] == "english"]
    assert not set(en_pool["text"].str.strip()) & set(test.loc[test["language"] == "english", "text"].str.strip())


def test_overlap_with_another_languages_test_split_is_removed_and_counted_apart():
    # joint models train on every pool and are tested on every test split
    rows = base_rows("english") + base_rows("french") + [("french", "train", "english test 0", "negative")]
    pool, _, _, report = combine.combine(raw_rows(rows), DATA, 0)
    assert report["french"]["pool_test_overlap_rows"] == 0
    assert report["french"]["pool_other_language_test_overlap_rows"] == 1
    assert "english test 0" not in set(pool["text"])


@pytest.mark.parametrize("part", ["test", "pool"])
def test_a_split_left_empty_by_cleaning_is_refused_with_the_labels_found(part):
    # labels spelled otherwise (capitalized) are unknown: a language left without test texts, or without a pool,
    # is refused here rather than by the dev split (sample.dev_size) or evaluate (no predictions)
    split = "test" if part == "test" else "train"
    rows = base_rows("english") + [(lang, s, t, label.capitalize() if s == split else label)
                                   for lang, s, t, label in base_rows("french")]
    with pytest.raises(DataError) as err:
        combine.combine(raw_rows(rows), DATA, 0)
    n, found = (4, "'Negative', 'Neutral', 'Positive'") if part == "test" else (3, "'Positive'")
    assert str(err.value) == (f"the {part} of french is empty once cleaned ({n} rows: {n} with labels outside "
                              f"data.labels [{found}], 0 with empty text, the "
                              "rest repeats or test texts); name the labels in data.label_map, or drop french from "
                              "data.languages")


def test_validation_protocol_refuses_a_language_without_a_train_split():
    rows = base_rows("english") + [("english", "validation", "english fine", "positive"),
                                   ("french", "validation", "french fine", "positive")] + \
        [("french", "test", f"french test {label}", label) for label in TEST_LABELS[1:]]
    validation = make_config({"data": {"source": "local", "languages": ["english", "french"], "dev_split": "validation"}}).data
    with pytest.raises(DataError, match="french has no train split in the source, and data.dev_split: validation "
                                        "takes the pool from train only; use data.dev_split: carve or drop french"):
        combine.combine(raw_rows(rows), validation, 0)


def test_a_test_split_without_a_class_is_refused():
    # macro-F1 over data.labels would score the absent class 0: a perfect model would top out at 2/3
    rows = base_rows("english") + [row for row in base_rows("french") if row[3] != "neutral" or row[1] != "test"]
    with pytest.raises(DataError) as err:
        combine.combine(raw_rows(rows), DATA, 0)
    assert str(err.value) == ("the test split of french has no 'neutral' texts once cleaned; map a source label to "
                              "it in data.label_map, remove it from data.labels, or drop french from data.languages")


def test_label_distribution_rows():
    _, _, _, report = combine.combine(raw_rows(base_rows("english") + base_rows("french")), DATA, 0)
    dist = combine.label_distribution(report, DATA.labels)
    assert len(dist) == 2 * 2 * 3
    row = next(r for r in dist if r["language"] == "english" and r["split"] == "pool" and r["label"] == "positive")
    assert row["count"] == 3 and row["share"] == 1.0


def test_cli_writes_all_outputs(tmp_path, csv_source):
    params = write_params(tmp_path / "params.yaml", tiny_params(csv_source))
    raw = tmp_path / "raw.parquet"
    run_download(params, raw)
    out = {k: tmp_path / v for k, v in dict(pool="pool.parquet", test="test.parquet", metrics="data.json",
                                             pj="dist.json", png="dist.png", dev="dev").items()}
    combine.cli(["--params", str(params), "--raw", str(raw), "--pool", str(out["pool"]), "--dev", str(out["dev"]),
                 "--test", str(out["test"]),
                 "--metrics", str(out["metrics"]), "--plot-json", str(out["pj"]), "--plot-png", str(out["png"])])
    report = json.loads(out["metrics"].read_text())
    assert set(report) == {"english", "french"}
    dev_size = tiny_params(csv_source)["sample"]["dev_size"]
    assert report["english"]["pool"] + report["english"]["dev"] == 90 and report["english"]["test"] == 30
    dev = pd.read_parquet(out["dev"])
    assert (dev.groupby("language").size() == dev_size).all()
    assert sorted(p.name for p in out["dev"].iterdir()) == ["english.parquet", "french.parquet"]  # one per language
    assert pq.read_schema(out["dev"] / "english.parquet").equals(combine.EXAMPLE_SCHEMA)
    assert out["png"].read_bytes()[:4] == b"\x89PNG"


def balanced_rows(lang, per_class, split="train"):
    suffix = "" if split == "train" else f" {split}"
    return [(lang, split, f"{lang} {label} {i}{suffix}", label) for label in ("positive", "neutral", "negative")
            for i in range(per_class)]


def test_dev_split_is_balanced_fixed_and_carved_out_of_the_pool():
    rows = balanced_rows("english", 10) + balanced_rows("french", 10) + \
        balanced_rows("english", 2, "test") + balanced_rows("french", 2, "test")
    pool, dev, test, report = combine.combine(raw_rows(rows), DATA, 7)
    counts = dev.groupby(["language", "label"]).size()
    assert counts["english"].to_dict() == {"positive": 3, "neutral": 2, "negative": 2}  # as the samples split 7
    assert report["french"]["dev"] == 7 and report["french"]["dev_positive"] == 3 and report["french"]["pool"] == 23
    assert report["english"]["raw_train"] == report["english"]["pool"] + report["english"]["dev"]
    assert not set(dev["text"]) & set(pool["text"]) and not set(dev["text"]) & set(test["text"])
    # the order comes from the texts alone: shuffled input rows give the same dev split, row for row
    shuffled = raw_rows(rows).sample(frac=1.0, random_state=4).reset_index(drop=True)
    _, again, _, _ = combine.combine(shuffled, DATA, 7)
    assert again["text"].tolist() == dev["text"].tolist()
    assert dev["language"].tolist() == ["english"] * 7 + ["french"] * 7
    # a larger dev split keeps the smaller one
    _, larger, _, _ = combine.combine(raw_rows(rows), DATA, 13)
    assert set(dev["text"]) < set(larger["text"])


def test_pool_text_in_another_languages_dev_split_is_removed_and_counted():
    shared = "english positive 0"  # english has one text per class, so its dev split of 3 takes it
    rows = balanced_rows("english", 1) + balanced_rows("french", 10) + [("french", "train", shared, "positive")]
    pool, dev, _, report = combine.combine(raw_rows(rows + balanced_rows("english", 1, "test")
                                                    + balanced_rows("french", 1, "test")), DATA, 3)
    assert shared in set(dev.loc[dev["language"] == "english", "text"])
    assert shared not in set(dev.loc[dev["language"] == "french", "text"])  # the fixed order leaves it in the pool
    assert report["french"]["pool_other_language_dev_overlap_rows"] == 1
    assert shared not in set(pool["text"]) and report["french"]["pool"] == 31 - 3 - 1


def test_dev_split_larger_than_a_class_names_language_class_needed_available():
    rows = balanced_rows("english", 10) + balanced_rows("french", 10)[:25] + \
        balanced_rows("english", 1, "test") + balanced_rows("french", 1, "test")
    with pytest.raises(DataError, match=r"sample.dev_size: 21 per language needs 7 'negative' texts in french "
                                        r"for the dev split, but its cleaned pool has 5"):
        combine.combine(raw_rows(rows), DATA, 21)


def test_a_class_absent_from_a_pool_names_the_labels_not_the_dev_size():
    rows = balanced_rows("english", 10) + [row for row in balanced_rows("french", 10) if row[3] != "negative"] + \
        balanced_rows("english", 1, "test") + balanced_rows("french", 1, "test")
    with pytest.raises(DataError, match=r"^the cleaned pool of french has no 'negative' texts; map a source label to "
                                        r"it in data.label_map, remove it from data.labels, or drop french from"):
        combine.combine(raw_rows(rows), DATA, 3)


VALIDATION = make_config({"data": {"source": "local", "languages": ["english", "french"],
                                   "dev_split": "validation"}}).data


def test_validation_protocol_keeps_the_datasets_validation_split_as_dev():
    rows = base_rows("english") + base_rows("french") + [
        ("english", "validation", "english dev 0", "positive"),
        ("english", "validation", "english dev 1", "neutral"),
        ("english", "validation", "english dev 1", "neutral"),     # duplicate: one copy kept, counted
        ("english", "validation", "", "negative"),                 # empty: removed, counted
        ("english", "validation", "english test 1", "negative"),   # a test text: removed from dev, counted
        ("english", "validation", "french test 0", "negative"),    # another language's test text: counted apart
        ("english", "train", "english dev 0", "positive"),         # a dev text in train: removed from the pool
        ("french", "validation", "french dev 0", "negative"),
        ("french", "train", "english dev 1", "neutral"),           # another language's dev text
    ]
    pool, dev, test, report = combine.combine(raw_rows(rows), VALIDATION, 150)
    en = report["english"]
    assert en["raw_validation"] == 6
    assert sorted(dev.loc[dev["language"] == "english", "text"]) == ["english dev 0", "english dev 1"]
    assert (en["dev"], en["dev_empty_text"], en["dev_duplicate_rows"], en["dev_test_overlap_rows"],
            en["dev_other_language_test_overlap_rows"]) == (2, 1, 1, 1, 1)
    assert en["raw_validation"] == en["dev"] + sum(en[k] for k in ("dev_empty_text", "dev_unknown_label",
                                                                   "dev_duplicate_rows", "dev_conflicting_label_rows",
                                                                   "dev_test_overlap_rows",
                                                                   "dev_other_language_test_overlap_rows"))
    assert en["pool_dev_overlap_rows"] == 1 and report["french"]["pool_other_language_dev_overlap_rows"] == 1
    assert not set(pool["text"]) & set(dev["text"])                 # no sample can hold a dev text
    assert en["raw_train"] == en["pool"] + en["pool_dev_overlap_rows"]  # the pool is train alone, every removal counted


def test_validation_protocol_refuses_a_language_without_a_validation_split():
    rows = base_rows("english") + base_rows("french") + [("english", "validation", "english dev 0", "positive")]
    with pytest.raises(DataError, match=r"data.dev_split: validation needs a validation split, but french has none"):
        combine.combine(raw_rows(rows), VALIDATION, 150)


@pytest.mark.parametrize("text, scripts", [
    ("Good day!", {"Latin": 1.0}),
    ("yeh film bahut achhi thi", {"Latin": 1.0}),          # romanized hindi
    ("फिल्म अच्छी", {"Devanagari": 1.0}),
    ("جميل جدا", {"Arabic": 1.0}),
    ("とても良い商品", {"Kana": 0.5714, "Han": 0.4286}),  # 4 kana, 3 kanji
    ("ｇｏｏｄ 😀 123", {"Latin": 1.0}),                     # fullwidth letters are Latin; emoji and digits no letters
    ("1º piso", {"Latin": 1.0}),                            # the ordinal indicators º ª are Latin letters
    ("ラーメン々", {"Kana": 0.8, "Han": 0.2}),                # the prolonged sound mark is Kana, 々 Han
])
def test_script_shares_count_letters_per_script(text, scripts):
    df = pd.DataFrame({"text": [text], "source": ["s"]})
    assert combine.describe(df)["scripts"] == scripts


def test_data_report_gives_sources_scripts_and_length_per_split():
    rows = [(lang, "train", f"{lang} {label} {i}", label) for lang in ("english", "french")
            for label in ("positive", "neutral", "negative") for i in range(3)]
    raw = raw_rows(rows + base_rows("english") + base_rows("french"))
    raw.loc[raw["language"] == "french", "source"] = "deft_2017"
    _, _, _, report = combine.combine(raw, DATA, 3)
    fr = report["french"]
    assert fr["sources"] == {"pool": {"deft_2017": 9}, "dev": {"deft_2017": 3}, "test": {"deft_2017": 4}}
    assert fr["scripts"]["test"] == {"Latin": 1.0}
    assert fr["mean_chars"]["test"] == len("french test 0")


def test_dropped_labels_are_warned_per_language_with_a_map_for_case_variants(caplog):
    """' Positive' (stripped by download) is not 'positive': dropped, never guessed, and the warning names the
    language it was dropped from and the map that would keep it."""
    rows = base_rows("english") + base_rows("french") + [
        ("french", "train", "très bien", " Positive"), ("french", "train", "bof", "mixed"),
        ("french", "test", "nul", "NEGATIVE "), ("english", "train", "great", "positive")]
    with caplog.at_level("WARNING", logger="crossling"):
        _, _, _, report = combine.combine(raw_rows(rows), DATA, 0)
    assert report["french"]["pool_unknown_label"] == 2 and report["french"]["test_unknown_label"] == 1
    assert report["english"]["pool_unknown_label"] == 0
    assert ("french pool: 2 rows with labels outside data.labels dropped: {'Positive': 1, 'mixed': 1}; if they are "
            "the same classes, map them: data.label_map {Positive: positive}") in caplog.text
    assert "french test: 1 rows with labels outside data.labels dropped: {'NEGATIVE': 1}; if they are the same " \
           "classes, map them: data.label_map {NEGATIVE: negative}" in caplog.text
    assert "english" not in caplog.text
