import json

import pandas as pd
import pytest
from conftest import run_download, tiny_params, write_params

from crossling import combine, sample
from crossling.common import DataError

LANGS = ("english", "french")
LABELS = ("positive", "neutral", "negative")


def pool_frame(per_class=20, languages=LANGS):
    rows = [{"language": lang, "text": f"{lang} {label} {i}", "label_id": c, "label": label, "source": "t"}
            for lang in languages for c, label in enumerate(LABELS) for i in range(per_class)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("size, expected", [(2000, [667, 667, 666]), (100, [34, 33, 33]), (3, [1, 1, 1]),
                                            (2, [1, 1, 0]), (7, [3, 2, 2])])
def test_class_quota(size, expected):
    assert [sample.class_quota(size, 3, c) for c in range(3)] == expected


def test_exact_size_balanced_and_nested():
    ranked = sample.ranked(pool_frame(), LANGS, 3, seed=1)
    previous = set()
    for size in (5, 10, 31, 60):
        s = sample.draw(ranked, size, LANGS, 3)
        counts = s.groupby(["language", "label_id"]).size()
        for lang in LANGS:
            assert counts[lang].sum() == size
            assert counts[lang].max() - counts[lang].min() <= 1
        assert not s["text"].duplicated().any()  # without replacement
        texts = set(s["text"])
        assert previous <= texts  # smaller sample is a subset of the larger
        previous = texts


def test_seed_changes_the_sample_and_same_seed_repeats_it():
    pool = pool_frame()
    a = sample.draw(sample.ranked(pool, LANGS, 3, seed=1), 9, LANGS, 3)
    b = sample.draw(sample.ranked(pool, LANGS, 3, seed=1), 9, LANGS, 3)
    c = sample.draw(sample.ranked(pool, LANGS, 3, seed=2), 9, LANGS, 3)
    assert a.equals(b)
    assert set(a["text"]) != set(c["text"])


def test_pool_row_order_does_not_matter():
    pool = pool_frame()
    shuffled = pool.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a = sample.draw(sample.ranked(pool, LANGS, 3, seed=1), 9, LANGS, 3)
    b = sample.draw(sample.ranked(shuffled, LANGS, 3, seed=1), 9, LANGS, 3)
    assert a["text"].tolist() == b["text"].tolist()


def test_too_small_pool_names_language_class_needed_available():
    pool = pool_frame(per_class=20)
    pool = pool[~((pool["language"] == "french") & (pool["label"] == "neutral") & (pool["text"].str[-1] > "4"))]
    ranked = sample.ranked(pool, LANGS, 3, seed=1)
    with pytest.raises(DataError) as err:
        sample.check_capacity(ranked, 60, LANGS, LABELS, dev_size=9)
    msg = str(err.value)
    assert "needs 20 'neutral' texts in french" in msg and "has 10 after 3 went to the dev split" in msg
    assert "sample.dev_size=9" in msg


def run_data_stages(tmp_path, csv_source, seed=7, name="run", languages=("english", "french")):
    p = tiny_params(csv_source, sizes=(6, 12, 24), languages=languages)
    p["sample"]["seed"] = seed
    params = write_params(tmp_path / f"{name}.yaml", p)
    d = tmp_path / name
    run_download(params, d / "raw.parquet")
    combine.cli(["--params", str(params), "--raw", str(d / "raw.parquet"), "--pool", str(d / "pool.parquet"),
                 "--dev", str(d / "dev"), "--test", str(d / "test.parquet"), "--metrics", str(d / "data.json"),
                 "--plot-json", str(d / "dist.json"), "--plot-png", str(d / "dist.png")])
    sample.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(d / "samples")])
    return d


def test_same_params_give_byte_identical_files(tmp_path, csv_source):
    a = run_data_stages(tmp_path, csv_source, name="a")
    b = run_data_stages(tmp_path, csv_source, name="b")
    c = run_data_stages(tmp_path, csv_source, seed=8, name="c")
    for size in (6, 12, 24):
        fa = sample.sample_path(a / "samples", 42, size).read_bytes()
        assert fa == sample.sample_path(b / "samples", 42, size).read_bytes()
        assert fa != sample.sample_path(c / "samples", 42, size).read_bytes()
    for name in ("raw.parquet", "pool.parquet", "dev/english.parquet", "dev/french.parquet", "test.parquet",
                 "data.json", "dist.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("dev/english.parquet", "dev/french.parquet"):
        assert (a / name).read_bytes() == (c / name).read_bytes()  # fixed: not drawn with sample.seed


def test_samples_never_contain_test_or_dev_texts_and_dev_is_balanced(tmp_path, csv_source):
    d = run_data_stages(tmp_path, csv_source)
    test, dev = pd.read_parquet(d / "test.parquet"), pd.read_parquet(d / "dev")
    per_class = dev.groupby(["language", "label"]).size()
    assert set(per_class) == {5} and len(per_class) == 6  # dev_size 15 in every language, 5 per class
    for size in (6, 12, 24):
        s = pd.read_parquet(sample.sample_path(d / "samples", 42, size))
        assert (s.groupby("language").size() == size).all()
        assert not set(s["text"]) & set(dev["text"])
        for lang in LANGS:
            assert not set(s.loc[s["language"] == lang, "text"]) & set(test.loc[test["language"] == lang, "text"])
    assert not set(dev["text"]) & set(test["text"])
    counts = json.loads((d / "data.json").read_text())
    assert counts["english"]["dev"] == 15 and counts["english"]["dev_neutral"] == 5


def test_samples_stay_nested_with_a_dev_split(tmp_path, csv_source):
    d = run_data_stages(tmp_path, csv_source)
    previous = set()
    for size in (6, 12, 24):
        texts = set(pd.read_parquet(sample.sample_path(d / "samples", 42, size))["text"])
        assert previous < texts
        previous = texts


def test_cli_failure_leaves_no_partial_samples(tmp_path, csv_source, capsys):
    d = run_data_stages(tmp_path, csv_source)
    params = write_params(tmp_path / "big.yaml", tiny_params(csv_source, sizes=(6, 5000)))
    out = tmp_path / "samples_big"
    with pytest.raises(SystemExit) as exit_:
        sample.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(out)])
    assert exit_.value.code == 2
    assert "needs 1667 'positive' texts in english, but its cleaned pool has 25 after 5 went to the dev split" \
        in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".samples_big*"))


def test_validation_protocol_names_the_train_split_when_a_size_does_not_fit():
    ranked = sample.ranked(pool_frame(per_class=10), LANGS, 3, seed=1)
    with pytest.raises(DataError, match=r"needs 20 'positive' texts in english, but its cleaned train split has 10 "
                                        r"\(data.dev_split: validation\)"):
        sample.check_capacity(ranked, 60, LANGS, LABELS, dev_size=None)


def test_a_class_absent_from_a_pool_names_the_labels_not_the_size():
    pool = pool_frame(per_class=10)
    ranked = sample.ranked(pool[~((pool["language"] == "english") & (pool["label_id"] == 1))], LANGS, 3, seed=1)
    with pytest.raises(DataError, match=r"^the cleaned pool of english has no 'neutral' texts; map a source label to "
                                        r"it in data.label_map, remove it from data.labels, or drop english from"):
        sample.check_capacity(ranked, 6, LANGS, LABELS, dev_size=None)


def test_equal_budget_sample_has_a_monolingual_models_examples_spread_over_languages():
    three = ("english", "french", "malay")
    ranked = sample.ranked(pool_frame(per_class=20, languages=three), three, 3, seed=1)
    largest = sample.draw(ranked, 20, three, 3)
    equal = sample.draw(ranked, sample.equal_budget_sizes(20, three), three, 3)
    assert len(equal) == 20 and equal.groupby("language").size().to_dict() == {"english": 7, "french": 7, "malay": 6}
    assert set(equal["text"]) < set(largest["text"])  # nested in the largest sample
    per_class = equal.groupby(["language", "label_id"]).size()
    assert all(per_class[lang].max() - per_class[lang].min() <= 1 for lang in three)


def test_redraw_per_seed_gives_each_seed_its_own_draw(tmp_path, csv_source):
    p = tiny_params(csv_source, sizes=(6, 12))
    p["train"]["seeds"] = [1, 2]
    d = tmp_path / "s"
    for redraw in (False, True):
        p["sample"]["redraw_per_seed"] = redraw
        params = write_params(tmp_path / f"p{redraw}.yaml", p)
        run_download(params, d / "raw.parquet")
        combine.cli(["--params", str(params), "--raw", str(d / "raw.parquet"), "--pool", str(d / "pool.parquet"),
                     "--dev", str(d / "dev"), "--test", str(d / "test.parquet"), "--metrics", str(d / "data.json"),
                     "--plot-json", str(d / "dist.json"), "--plot-png", str(d / "dist.png")])
        out = tmp_path / f"samples{redraw}"
        sample.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(out)])
        one, two = (sample.sample_path(out, seed, 12).read_bytes() for seed in (1, 2))
        assert (one == two) is not redraw
    # seed 1's files without redraw are those of sample.seed alone, whatever the training seed
    assert sample.sample_path(tmp_path / "samplesFalse", 1, 6).read_bytes() == \
        sample.sample_path(tmp_path / "samplesFalse", 2, 6).read_bytes()


def test_each_language_part_of_the_largest_sample_has_its_own_file(tmp_path):
    from conftest import make_csv_source

    src = make_csv_source(tmp_path / "src", languages=("english", "french", "malay"))
    two = run_data_stages(tmp_path, src, name="two") / "samples" / "seed42"
    three = run_data_stages(tmp_path, src, name="three", languages=("english", "french", "malay")) / "samples" / "seed42"
    joint = pd.read_parquet(two / "sample_24.parquet")
    for lang in ("english", "french"):
        part = pd.read_parquet(two / f"sample_24_{lang}.parquet")
        assert part.equals(joint[joint["language"] == lang].reset_index(drop=True))
        # adding a language leaves this language's file byte for byte as it was
        assert (two / f"sample_24_{lang}.parquet").read_bytes() == (three / f"sample_24_{lang}.parquet").read_bytes()
    assert not (two / "sample_12_english.parquet").exists()


def test_removing_a_pool_text_changes_the_sample_by_that_text_only():
    pool = pool_frame(per_class=40)
    full = sample.draw(sample.ranked(pool, LANGS, 3, seed=1), 30, LANGS, 3)
    gone = full["text"].iloc[0]  # e.g. a text that a new language's test split now holds
    less = sample.draw(sample.ranked(pool[pool["text"] != gone], LANGS, 3, seed=1), 30, LANGS, 3)
    kept, now = set(full["text"]) - {gone}, set(less["text"])
    assert kept < now and len(now - kept) == 1  # one other text of its class takes its place
    assert less[less["language"] == "french"].reset_index(drop=True).equals(
        full[full["language"] == "french"].reset_index(drop=True))


def test_a_class_the_dev_split_took_whole_names_dev_size_not_the_labels():
    """A pool of exactly dev_size texts per language (150 by default): combine carves all of them, and sample
    used to tell the user to name labels in data.label_map, which cannot help."""
    pool = pool_frame(per_class=10)
    ranked = sample.ranked(pool[~((pool["language"] == "french") & (pool["label_id"] == 2))], LANGS, 3, seed=1)
    with pytest.raises(DataError) as err:
        sample.check_capacity(ranked, 6, LANGS, LABELS, dev_size=30)
    msg = str(err.value)
    assert msg.startswith("sample.dev_size: the dev split (30 per language) took every 'negative' text of french's")
    assert "lower sample.dev_size" in msg and "label_map" not in msg
