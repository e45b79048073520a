import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import (make_config, make_csv_source, run_download, stage_error, synthetic_rows, tiny_params, write_csv,
                      write_params)

from crossling import combine, download, sample
from crossling.common import DataError
from crossling.config import DataConfig

LABELS = ("positive", "neutral", "negative")


def data_cfg(source, languages=("english", "french"), **kw) -> DataConfig:
    """params.yaml's data section with these values."""
    return make_config({"data": {"source": str(source), "languages": list(languages), **kw}}).data


def hub_cfg(repo, languages, **kw) -> DataConfig:
    return data_cfg("hub", languages, hub_id=str(repo), **kw)


@pytest.fixture(scope="module")
def hub_constants():
    # Imported by a module-scoped fixture, as test_tokenization's tokenizer imports transformers: such a fixture is
    # set up before any function-scoped one, and huggingface_hub reads the environment once, on import.
    # The environment as a module fixture sees it: the constants alone pass whenever an earlier test in this
    # process imported the library under a function-scoped setting.
    env = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME")}
    from huggingface_hub import constants

    return env, constants


def test_huggingface_hub_imported_by_a_module_fixture_is_offline_with_the_tests_cache(hub_constants,
                                                                                      tmp_path_factory):
    env, constants = hub_constants
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert Path(env["HF_HOME"]).is_relative_to(tmp_path_factory.getbasetemp())
    assert constants.HF_HUB_OFFLINE
    assert Path(constants.HF_HUB_CACHE).is_relative_to(tmp_path_factory.getbasetemp())


def test_local_source_is_normalized(csv_source):
    df, _ = download.read_source(data_cfg(csv_source))
    assert list(df.columns) == download.RAW_SCHEMA.names
    assert list(dict.fromkeys(df["language"])) == ["english", "french"]
    assert set(df["split"]) == {"train", "validation", "test"}
    # label ids follow data.labels, by name
    for name, i in zip(LABELS, range(3)):
        assert (df.loc[df["label"] == name, "label_id"] == i).all()


def test_label_order_comes_from_params_not_from_the_file(csv_source):
    df, _ = download.read_source(data_cfg(csv_source, labels=["negative", "neutral", "positive"]))
    assert (df.loc[df["label"] == "negative", "label_id"] == 0).all()
    assert (df.loc[df["label"] == "positive", "label_id"] == 2).all()


def test_valid_only_language_is_fine(tmp_path):
    root = make_csv_source(tmp_path / "src", languages=("english", "japanese"), valid_only=("japanese",))
    df, _ = download.read_source(data_cfg(root, languages=("english", "japanese")))
    assert set(df.loc[df["language"] == "japanese", "split"]) == {"validation", "test"}


def test_absent_language_is_named_with_what_the_source_has(csv_source):
    with pytest.raises(DataError, match=r"language\(s\) hindi absent from .* \(found: english, french\)"):
        download.read_source(data_cfg(csv_source, languages=("english", "hindi")))


def test_a_source_one_folder_too_high_names_data_source_and_the_folder_meant(csv_source, tmp_path):
    """No folder of the CSV layout at all: the path is wrong, not data.languages."""
    with pytest.raises(DataError, match=rf"^data.source: {csv_source.parent} holds no <language>/\{{train,valid,test"
                                        rf"\}}.csv \(its folders: {csv_source.name}\); give the folder that holds "
                                        rf"them, e.g. {csv_source} \(make: MIRROR=<folder>\)$"):
        download.read_source(data_cfg(csv_source.parent))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no .* \(its folders: none\); give the folder that holds them \(make"):
        download.read_source(data_cfg(tmp_path / "empty"))
    # the right folder without any configured language: the languages are named, not the path
    with pytest.raises(DataError, match=r"^language\(s\) hindi absent from .* \(found: english, french\)"):
        download.read_source(data_cfg(csv_source, languages=("hindi",)))
    (tmp_path / "other" / "german").mkdir(parents=True)  # the language's folder, without the split files
    (tmp_path / "other" / "german" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"^.*/other/german: none of train.csv, valid.csv, test.csv; the layout"):
        download.read_source(data_cfg(tmp_path / "other", languages=("german",)))


def test_an_unreadable_language_folder_is_one_line(csv_source, monkeypatch):
    real = download.os.access  # tests may run as root, for whom every folder is readable: the check is faked
    for unreadable, message in (("french", "/french: cannot be read"),
                                (csv_source.name, "data.source: .* cannot be read")):
        monkeypatch.setattr(download.os, "access", lambda path, mode: Path(path).name != unreadable
                            and real(path, mode))
        with pytest.raises(DataError, match=rf"^.*{message} \(permission denied\); make the folder readable$"):
            download.read_source(data_cfg(csv_source))


def test_any_language_folder_runs_through_the_data_stages(tmp_path):
    # Neither language was known to the project before: languages come from the source's folders.
    source = make_csv_source(tmp_path / "source", languages=("swahili", "tagalog"))
    params = write_params(tmp_path / "params.yaml", tiny_params(source, languages=("swahili", "tagalog")))
    d = tmp_path / "run"
    run_download(params, d / "raw.parquet")
    combine.cli(["--params", str(params), "--raw", str(d / "raw.parquet"), "--pool", str(d / "pool.parquet"),
                 "--dev", str(d / "dev"), "--test", str(d / "test.parquet"), "--metrics", str(d / "data.json"),
                 "--plot-json", str(d / "dist.json"), "--plot-png", str(d / "dist.png")])
    sample.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(d / "samples")])
    drawn = pd.read_parquet(sample.sample_path(d / "samples", 42, 12))
    assert drawn.groupby("language").size().to_dict() == {"swahili": 12, "tagalog": 12}


def integer_label_copy(named_root, root, ids):
    """The same CSV source with each label name replaced by its integer id."""
    for path in named_root.rglob("*.csv"):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        (root / path.relative_to(named_root)).parent.mkdir(parents=True, exist_ok=True)
        df.assign(label=df["label"].map(ids)).to_csv(root / path.relative_to(named_root), index=False)
    return root


def test_integer_labels_with_label_map_give_the_named_counts(tmp_path, csv_source):
    ids = {"negative": "0", "neutral": "1", "positive": "2"}  # another order than data.labels
    numbered = integer_label_copy(csv_source, tmp_path / "numbered", ids)
    named_raw, _ = download.read_source(data_cfg(csv_source))
    numbered_cfg = data_cfg(numbered, label_map={0: "negative", 1: "neutral", 2: "positive"})
    numbered_raw, _ = download.read_source(numbered_cfg)
    cols = ["language", "split", "text", "label", "label_id"]
    assert numbered_raw[cols].equals(named_raw[cols])
    *_, named_report = combine.combine(named_raw, data_cfg(csv_source), dev_size=15)
    *_, numbered_report = combine.combine(numbered_raw, numbered_cfg, dev_size=15)
    assert numbered_report == named_report
    assert named_report["english"]["pool_positive"] > 0 and named_report["english"]["pool_unknown_label"] == 0


def test_label_map_renames_other_spellings(tmp_path, csv_source):
    short = {"positive": "pos", "neutral": "neu", "negative": "neg"}
    spelled = integer_label_copy(csv_source, tmp_path / "short", short)
    df, _ = download.read_source(data_cfg(spelled, label_map={"pos": "positive", "neu": "neutral", "neg": "negative"}))
    assert set(df["label"]) == set(LABELS) and df["label_id"].notna().all()
    unmapped, _ = download.read_source(data_cfg(spelled))
    assert unmapped["label_id"].isna().all()  # never guessed: combine counts and drops them


def test_absent_test_split_is_named(csv_source):
    (csv_source / "french" / "test.csv").unlink()
    with pytest.raises(DataError, match="'french' has no test split"):
        download.read_source(data_cfg(csv_source))


def test_a_language_with_only_a_test_split_is_named_with_the_fix(csv_source):
    for name in ("train.csv", "valid.csv"):
        (csv_source / "french" / name).unlink()
    with pytest.raises(DataError, match=r"'french' has neither a train nor a validation split, nothing to train on; "
                                        r"add its train split \(train.csv\) or remove the language from "
                                        r"data.languages"):
        download.read_source(data_cfg(csv_source))


def test_a_relative_source_that_is_absent_says_queued_runs_need_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"^data.source: my-data is not a directory \(relative to .*give an absolute "
                                        r"path\); use 'hub'"):
        download.read_source(data_cfg("my-data"))
    with pytest.raises(DataError, match=r"^data.source: /nowhere/my-data is not a directory; use 'hub'"):
        download.read_source(data_cfg("/nowhere/my-data"))


def test_missing_column(csv_source):
    write_csv(csv_source / "english" / "train.csv", synthetic_rows("english", "train", 3), fieldnames=("text", "source"))
    with pytest.raises(DataError, match="train.csv: missing column 'label' \\(found: 'text', 'source'\\); the "
                                        "layout is text,label,source$"):
        download.read_source(data_cfg(csv_source))
    (csv_source / "english" / "train.csv").write_text("text, label\ngood, positive\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing column 'label' \\(found: 'text', ' label'\\); the layout is "
                                        "text,label,source, without spaces around the commas of the header"):
        download.read_source(data_cfg(csv_source))


def test_an_unquoted_comma_in_the_first_row_is_refused_not_read_as_an_index(csv_source):
    path = csv_source / "english" / "test.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    text, label, source = lines[1].rsplit(",", 2)
    lines[1] = f"{text}, with a comma,{label},{source}"  # pandas would shift every row's columns by one
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="test.csv: the first data row has more fields than the header "
                                        "\\(text, label, source\\); quote texts that contain commas"):
        download.read_source(data_cfg(csv_source))


def test_numeric_labels_without_label_map_are_refused(csv_source):
    rows = [dict(r, label=str(i % 3)) for i, r in enumerate(synthetic_rows("english", "train", 3))]
    write_csv(csv_source / "english" / "train.csv", rows)
    with pytest.raises(DataError, match="'label' holds numbers without names \\(0, 1, 2\\); name each in data.label_map"):
        download.read_source(data_cfg(csv_source))


def test_numbers_that_are_the_class_names_need_no_label_map(csv_source):
    """Star ratings: data.labels ['1', '2', '3'] name the numbers the CSV holds; refusing them asked for a map
    {"1": "1"} of every class to itself."""
    to_star = {"negative": "1", "neutral": "2", "positive": "3"}
    for lang in ("english", "french"):
        for split, name in (("train", "train.csv"), ("validation", "valid.csv"), ("test", "test.csv")):
            rows = [dict(r, label=to_star[r["label"]]) for r in synthetic_rows(lang, split, 3)]
            write_csv(csv_source / lang / name, rows)
    df, _ = download.read_source(data_cfg(csv_source, labels=["3", "2", "1"]))
    assert df.groupby("label")["label_id"].first().to_dict() == {"1": 2, "2": 1, "3": 0}


def test_numbers_none_named_are_refused_beside_a_blank_label_and_a_partial_map_leaves_the_rest_to_count(csv_source):
    rows = [dict(r, label=str([10, 2, -1][i % 3])) for i, r in enumerate(synthetic_rows("english", "train", 3))]
    rows[0]["label"] = ""  # one blank cell does not make the column names
    write_csv(csv_source / "english" / "train.csv", rows)
    with pytest.raises(DataError, match="holds numbers without names \\(-1, 2, 10\\)"):  # in numeric order
        download.read_source(data_cfg(csv_source))
    # classes the study leaves out (or -1 for unlabelled): kept unnamed, for combine to count and drop
    df, _ = download.read_source(data_cfg(csv_source, label_map={"2": "negative", "10": "positive"}))
    train = df[(df["language"] == "english") & (df["split"] == "train")]
    assert train.groupby("label", dropna=False)["label_id"].first().isna().to_dict() == {
        "": True, "-1": True, "negative": False, "positive": False}


def test_float_ids_are_named_with_a_quoted_key_as_the_refusal_suggests(csv_source):
    rows = [dict(r, label=f"{i % 3}.0") for i, r in enumerate(synthetic_rows("english", "train", 3))]
    write_csv(csv_source / "english" / "train.csv", rows)
    with pytest.raises(DataError, match='e.g. {"0.0": <one of positive, neutral, negative>}'):
        download.read_source(data_cfg(csv_source))
    df, _ = download.read_source(data_cfg(csv_source,
                                          label_map={"0.0": "negative", "1.0": "neutral", "2.0": "positive"}))
    assert df.loc[(df["language"] == "english") & (df["split"] == "train"), "label_id"].notna().all()


@pytest.mark.parametrize("fault", ["empty file", "directory", "no csv at all"])
def test_a_split_file_that_cannot_be_read_is_one_line(csv_source, fault):
    folder = csv_source / "french"
    if fault == "empty file":
        (folder / "valid.csv").write_bytes(b"")
        expected = f"{folder / 'valid.csv'}: empty file (not even a header)"
    elif fault == "directory":
        (folder / "valid.csv").unlink()
        (folder / "valid.csv").mkdir()
        expected = f"{folder / 'valid.csv'}: cannot be read (Is a directory)"
    else:
        for path in folder.iterdir():
            path.unlink()
        expected = f"{folder}: none of train.csv, valid.csv, test.csv"
    with pytest.raises(DataError) as err:
        download.read_source(data_cfg(csv_source, languages=("french",)))
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_unknown_label_names_are_kept_for_combine_to_count(csv_source):
    rows = synthetic_rows("english", "train", 3)
    rows[0]["label"] = "mixed"
    write_csv(csv_source / "english" / "train.csv", rows)
    df, _ = download.read_source(data_cfg(csv_source))
    odd = df[df["label"] == "mixed"]
    assert len(odd) == 1 and odd["label_id"].isna().all()


def test_non_utf8_file(csv_source):
    (csv_source / "french" / "valid.csv").write_bytes("text,label,source\ncaf\xe9 horrible,negative,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="valid.csv: not valid UTF-8"):
        download.read_source(data_cfg(csv_source))


def test_cli_reports_one_line_and_writes_nothing(tmp_path, csv_source, capsys):
    (csv_source / "french" / "test.csv").unlink()
    params = write_params(tmp_path / "params.yaml", tiny_params(csv_source))
    out = tmp_path / "out" / "dataset.parquet"
    with pytest.raises(SystemExit) as exit_:
        run_download(params, out)
    assert exit_.value.code == 2
    err = stage_error(capsys.readouterr().err)
    assert err.startswith("crossling.download: error:") and "french" in err
    assert not out.exists()


def test_cli_writes_parquet_with_explicit_schema(tmp_path, csv_source):
    params = write_params(tmp_path / "params.yaml", tiny_params(csv_source))
    out = tmp_path / "dataset.parquet"
    run_download(params, out)
    assert pq.read_schema(out).equals(download.RAW_SCHEMA)


# --- the hub source: the script-free Parquet export layout (<config>/<split>/*.parquet) built locally ---

def make_hub_export(root, names=("negative", "neutral", "positive"), per_language_configs=False, all_config=True,
                    languages=("english", "french", "german"), class_label=True):
    """What `refs/convert/parquet` of a dataset holds, with ClassLabel features (or plain integer ids):
    config 'all' (with a language column), or one config per language (and an 'all' without that column,
    or none: the layout of cardiffnlp/tweet_sentiment_multilingual)."""
    import datasets

    columns = {"text": datasets.Value("string"), "source": datasets.Value("string"),
               "label": datasets.ClassLabel(names=list(names)) if class_label else datasets.Value("int64")}
    for split, tag in (("train", "train"), ("validation", "valid"), ("test", "test")):
        rows = [dict(r, language=lang, label=names.index(r["label"])) for lang in languages
                for r in synthetic_rows(lang, tag, 4)]
        folders = {"all": rows}
        if per_language_configs:
            folders = {"all": [{k: v for k, v in r.items() if k != "language"} for r in rows]} if all_config else {}
            folders |= {lang: [{k: v for k, v in r.items() if k != "language"} for r in rows if r["language"] == lang]
                        for lang in languages}
        for config, config_rows in folders.items():
            features = datasets.Features(columns | ({"language": datasets.Value("string")}
                                                    if "language" in config_rows[0] else {}))
            ds = datasets.Dataset.from_list(config_rows, features=features)
            (root / config / split).mkdir(parents=True)
            ds.to_parquet(str(root / config / split / "0000.parquet"))
    return root


def test_hub_source_reads_label_names_from_classlabel(tmp_path, monkeypatch):
    # ClassLabel order (negative, neutral, positive) differs from data.labels: ids must be remapped by name.
    repo = make_hub_export(tmp_path / "hub")
    df, _ = download.read_source(hub_cfg(repo, ("french", "english")))
    assert list(dict.fromkeys(df["language"])) == ["french", "english"]  # german left out, order as configured
    expected = {r["text"]: r["label"] for r in synthetic_rows("english", "train", 4)}
    got = df[(df["language"] == "english") & (df["split"] == "train")].set_index("text")["label"].to_dict()
    assert got == expected
    assert (df.loc[df["label"] == "positive", "label_id"] == 0).all()
    assert (df.loc[df["label"] == "negative", "label_id"] == 2).all()


def test_hub_source_and_csv_source_agree(tmp_path):
    repo = make_hub_export(tmp_path / "hub")
    csv_root = tmp_path / "csv"
    for lang in ("english", "french"):
        for tag in ("train", "valid", "test"):
            write_csv(csv_root / lang / f"{tag}.csv", synthetic_rows(lang, tag, 4))
    hub, _ = download.read_source(hub_cfg(repo, ("english", "french")))
    local, _ = download.read_source(data_cfg(csv_root))
    cols = ["language", "split", "text", "label", "label_id"]
    assert hub[cols].sort_values(cols).reset_index(drop=True).equals(local[cols].sort_values(cols).reset_index(drop=True))


def test_hub_all_without_language_column_reads_per_language_configs(tmp_path):
    repo = make_hub_export(tmp_path / "hub", per_language_configs=True)
    df, _ = download.read_source(hub_cfg(repo, ("french", "english")))
    assert list(dict.fromkeys(df["language"])) == ["french", "english"]
    expected = {r["text"]: r["label"] for r in synthetic_rows("french", "test", 4)}
    got = df[(df["language"] == "french") & (df["split"] == "test")].set_index("text")["label"].to_dict()
    assert got == expected


def test_tweet_sentiment_multilingual_layout_loads_per_language_configs(tmp_path):
    # cardiffnlp/tweet_sentiment_multilingual: one config per language, no 'all', no language column,
    # ClassLabel ordered negative, neutral, positive (the reverse of data.labels).
    langs = ("arabic", "english", "hindi", "portuguese")
    repo = make_hub_export(tmp_path / "hub", per_language_configs=True, all_config=False, languages=langs)
    assert download.hub_configs(hub_cfg(repo, langs)) == sorted(langs)
    df, _ = download.read_source(hub_cfg(repo, ("portuguese", "hindi")))
    assert list(dict.fromkeys(df["language"])) == ["portuguese", "hindi"]
    for lang in ("portuguese", "hindi"):
        expected = {r["text"]: r["label"] for r in synthetic_rows(lang, "train", 4)}
        got = df[(df["language"] == lang) & (df["split"] == "train")].set_index("text")["label"].to_dict()
        assert got == expected
    assert (df.loc[df["label"] == "positive", "label_id"] == 0).all()
    assert (df.loc[df["label"] == "negative", "label_id"] == 2).all()
    found = r"\(found: arabic, english, hindi, portuguese\)"
    with pytest.raises(DataError, match=r"swahili absent from the configs of .*" + found):
        download.read_source(hub_cfg(repo, ("english", "swahili")))


def test_hub_integer_labels_need_a_label_map(tmp_path):
    repo = make_hub_export(tmp_path / "hub", class_label=False)  # ids 0, 1, 2 = negative, neutral, positive
    with pytest.raises(DataError, match="'label' is int64 without ClassLabel names; name each id in data.label_map"):
        download.read_source(hub_cfg(repo, ("english",)))
    df, _ = download.read_source(hub_cfg(repo, ("english",), label_map={0: "negative", 1: "neutral", 2: "positive"}))
    named, _ = download.read_source(hub_cfg(make_hub_export(tmp_path / "named"), ("english",)))
    cols = ["language", "split", "text", "label", "label_id"]
    assert df[cols].equals(named[cols])
    stars, _ = download.read_source(hub_cfg(repo, ("english",), labels=["2", "1", "0"]))  # the ids are the names
    assert stars.groupby("label")["label_id"].first().to_dict() == {"0": 2, "1": 1, "2": 0}


def test_hub_integer_ids_with_a_null_stay_integers(tmp_path):
    # pandas reads an integer column holding a null as floats; the ids must still match data.label_map's keys
    import datasets

    repo = make_hub_export(tmp_path / "hub", class_label=False)
    train = datasets.Dataset.from_parquet(str(repo / "all" / "train" / "0000.parquet"))
    datasets.Dataset.from_list(train.to_list() + [dict(train[0], text="no label", label=None)],
                               features=train.features).to_parquet(str(repo / "all" / "train" / "0000.parquet"))
    df, _ = download.read_source(hub_cfg(repo, ("english",), label_map={0: "negative", 1: "neutral", 2: "positive"}))
    assert df["label_id"].isna().sum() == 1 and df.loc[df["label_id"].isna(), "text"].tolist() == ["no label"]


def test_hub_label_names_as_large_strings_need_no_label_map(tmp_path):
    # Parquet written with large strings (polars' default) gives datasets a large_string label: names, not ids
    import pyarrow as pa

    repo = make_hub_export(tmp_path / "hub")  # ClassLabel ids of negative, neutral, positive
    for path in (repo / "all").glob("*/0000.parquet"):
        table = pq.read_table(path)
        names = [("negative", "neutral", "positive")[i] for i in table.column("label").to_pylist()]
        pq.write_table(table.set_column(table.schema.get_field_index("label"), "label",
                                        pa.array(names, pa.large_string())).replace_schema_metadata(None), path)
    df, _ = download.read_source(hub_cfg(repo, ("english",)))
    named, _ = download.read_source(hub_cfg(make_hub_export(tmp_path / "named"), ("english",)))
    cols = ["language", "split", "text", "label", "label_id"]
    assert df[cols].equals(named[cols])


def test_hub_missing_language_is_named(tmp_path):
    repo = make_hub_export(tmp_path / "hub")
    with pytest.raises(DataError, match="hindi absent from"):
        download.read_source(hub_cfg(repo, ("english", "hindi")))


def test_hub_failure_points_to_the_offline_recipe():
    # HF_HUB_OFFLINE is set for every test, and the cache is empty: nothing to read
    with pytest.raises(DataError) as err:
        download.read_source(make_config().data)
    msg = str(err.value)
    assert "could not load 'tyqiangz/multilingual-sentiments' (files, revision 'refs/convert/parquet') from the " \
           "Hugging Face Hub" in msg
    assert "data.source" in msg and "offline" in msg.lower()
    assert "offline? run once online to put it in the Hugging Face cache, or set data.source" in msg


def test_hub_failure_without_hf_hub_offline_points_to_it(monkeypatch):
    # no network and HF_HUB_OFFLINE unset: the configs are listed online, which no cache replaces
    from huggingface_hub import HfApi, constants

    def unreachable(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HfApi, "list_repo_tree", unreachable)
    with pytest.raises(DataError, match=r"\(list of configs, .*Name or service not known; offline\? set "
                                        r"HF_HUB_OFFLINE=1 if an online run put it in the Hugging Face cache, or "
                                        r"set data.source"):
        download.read_source(make_config().data)


def hub_cache(repo_id: str, revision: str, commit: str) -> Path:
    """What huggingface_hub leaves in its cache after downloading `revision` of a dataset repo: the files under
    snapshots/<commit>/ and refs/<revision> naming that commit (the layout the library reads offline)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="dataset")
    make_hub_export(folder / "snapshots" / commit)
    (folder / "refs" / revision).parent.mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    return folder


def test_hub_source_loads_offline_from_the_cache_and_records_the_commit(tmp_path, monkeypatch):
    from huggingface_hub import HfApi, constants

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked while HF_HUB_OFFLINE is set")

    monkeypatch.setattr(HfApi, "list_repo_tree", no_network)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    hub_cache("tyqiangz/multilingual-sentiments", "refs/convert/parquet", commit)
    data = make_config({"data": {"languages": ["english", "french"]}}).data
    df, source = download.read_source(data)
    assert source == {"source": "hub", "hub_id": "tyqiangz/multilingual-sentiments",
                      "revision": "refs/convert/parquet", "commit": commit}
    local = make_hub_export(tmp_path / "export")  # the same files read as a local copy of the export
    assert df.equals(download.read_source(hub_cfg(local, ("english", "french")))[0])


def test_hub_cache_of_one_config_loads_offline(tmp_path, monkeypatch):
    # an online run of config 'all' downloads only all/* but caches the tree listing of the whole export: offline,
    # huggingface_hub refuses the whole snapshot as incomplete, so the configs come from that listing
    import json

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = hub_cache("tyqiangz/multilingual-sentiments", "refs/convert/parquet", commit)
    snapshot = folder / "snapshots" / commit
    listed = [p.relative_to(snapshot).as_posix() for p in sorted(snapshot.rglob("*.parquet"))]
    listed += [f"english/{split}/0000.parquet" for split in ("train", "validation", "test")] + [".gitattributes"]
    (folder / "trees").mkdir()
    (folder / "trees" / f"{commit}.json").write_text(json.dumps(
        {"format_version": 1, "files": {path: {"size": 1, "blob_id": "0" * 40} for path in listed}}))
    data = make_config({"data": {"languages": ["english", "french"]}}).data
    assert download.hub_configs(data) == ["all", "english"]  # as the Hub lists them, cached or not
    df, source = download.read_source(data)
    assert source["commit"] == commit and set(df["language"]) == {"english", "french"}
    # one config per language asked for, not in the cache: the error says which files are missing
    with pytest.raises(DataError, match=r"config 'english'.*IncompleteSnapshotError.*english/test/0000.parquet"):
        download.read_source(make_config({"data": {"languages": ["english"], "hub_config": "none"}}).data)


def test_local_source_is_identified_by_its_content(tmp_path, csv_source):
    data = data_cfg(csv_source)
    first = download.read_source(data)[1]
    assert first["source"] == "local" and first["files"] == 6  # english, french: train, valid, test
    assert download.read_source(data)[1] == first
    path = csv_source / "french" / "test.csv"
    path.write_text(path.read_text() + "one more,positive,t\n")
    assert download.read_source(data)[1]["content_md5"] != first["content_md5"]


def test_local_copy_of_the_hub_export_is_identified_by_the_content_of_the_configs_read(tmp_path):
    export = make_hub_export(tmp_path / "export", per_language_configs=True)
    first = download.read_source(hub_cfg(export, ("english", "french"), hub_config="none"))[1]
    # one config per language read: english and french, three splits each; 'all' and german are not read
    assert first["commit"] is None and first["revision"] is None and first["files"] == 6
    make_hub_export(tmp_path / "other", per_language_configs=True, languages=("english", "french"))
    (tmp_path / "other" / "all").rename(tmp_path / "unread")
    hidden = tmp_path / "other" / "french" / "test" / ".ipynb_checkpoints"  # datasets skips it too
    hidden.mkdir()
    (hidden / "0000.parquet").write_bytes(b"an editor's copy")
    assert download.read_source(hub_cfg(tmp_path / "other", ("english", "french"), hub_config="none"))[1] == (
        first | {"hub_id": str(tmp_path / "other")})
    test = export / "french" / "test" / "0000.parquet"
    frame = pd.read_parquet(test)
    frame.iloc[:1].to_parquet(test)
    assert download.read_source(hub_cfg(export, ("english", "french"), hub_config="none"))[1]["content_md5"] != (
        first["content_md5"])
    root = Path("/export/english")  # what datasets leaves out below a config folder, and what it reads
    assert download.skipped(root / "test" / ".cache" / "0.parquet", root) and download.skipped(root / ".x", root)
    assert download.skipped(root / "__pycache__" / "0.parquet", root)
    assert not download.skipped(root / "test" / "__0.parquet", root)
    # one config with a language column: its three files, german rows included (read, then left out)
    single = download.read_source(hub_cfg(make_hub_export(tmp_path / "single"), ("english",)))[1]
    assert single["files"] == 3 and single["content_md5"] != first["content_md5"]


def test_bad_params_exit_2_and_write_nothing(tmp_path, csv_source, capsys):
    params = tiny_params(csv_source)
    params["trian"] = {"epochs": 3}
    path = write_params(tmp_path / "params.yaml", params)
    out = tmp_path / "dataset.parquet"
    with pytest.raises(SystemExit) as exit_:
        run_download(path, out)
    assert exit_.value.code == 2
    assert "trian: unknown key" in stage_error(capsys.readouterr().err)
    assert not out.exists()
    with pytest.raises(SystemExit):  # the file named once
        run_download(tmp_path / "nope.yaml", out)
    assert stage_error(capsys.readouterr().err) == (f"crossling.download: error: {tmp_path / 'nope.yaml'}: file not "
                                                    "found; run from the project root or pass --params")


def test_missing_hub_text_becomes_empty_and_is_counted(tmp_path):
    import datasets

    from crossling import combine

    features = datasets.Features({"text": datasets.Value("string"), "language": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
    rows = {"train": [("a good one", 2), (None, 0), ("meh", 1)],
            "test": [("fine", 1), (None, 2), ("great", 2), ("awful", 0)]}
    for split, items in rows.items():
        ds = datasets.Dataset.from_list([{"text": t, "language": "english", "label": y} for t, y in items],
                                        features=features)
        (tmp_path / "hub" / "all" / split).mkdir(parents=True)
        ds.to_parquet(str(tmp_path / "hub" / "all" / split / "0000.parquet"))
    cfg = hub_cfg(tmp_path / "hub", ("english",))
    raw, _ = download.read_source(cfg)
    assert (raw["text"] == "").sum() == 2
    _, _, _, report = combine.combine(raw, cfg, 0)
    assert report["english"]["pool_empty_text"] == 1 and report["english"]["test_empty_text"] == 1
