import pyarrow.parquet as pq
import pytest
from conftest import make_csv_source, stage_error, synthetic_rows, tiny_params, write_csv, write_params

from crossling import download
from crossling.common import DataError
from crossling.config import DataConfig

LABELS = ("positive", "neutral", "negative")


def data_cfg(source, languages=("english", "french"), **kw) -> DataConfig:
    return DataConfig(source=str(source), languages=tuple(languages), **kw)


def test_local_source_is_normalized(csv_source):
    df = download.download(data_cfg(csv_source))
    assert list(df.columns) == download.RAW_SCHEMA.names
    assert list(dict.fromkeys(df["language"])) == ["english", "french"]
    assert set(df["split"]) == {"train", "validation", "test"}
    # label ids follow data.labels, by name
    for name, i in zip(LABELS, range(3)):
        assert (df.loc[df["label"] == name, "label_id"] == i).all()


def test_label_order_comes_from_params_not_from_the_file(csv_source):
    df = download.download(data_cfg(csv_source, labels=("negative", "neutral", "positive")))
    assert (df.loc[df["label"] == "negative", "label_id"] == 0).all()
    assert (df.loc[df["label"] == "positive", "label_id"] == 2).all()


def test_valid_only_language_is_fine(tmp_path):
    root = make_csv_source(tmp_path / "src", languages=("english", "japanese"), valid_only=("japanese",))
    df = download.download(data_cfg(root, languages=("english", "japanese")))
    assert set(df.loc[df["language"] == "japanese", "split"]) == {"validation", "test"}


def test_absent_language_is_named(csv_source):
    with pytest.raises(DataError, match="language 'hindi' is absent"):
        download.download(data_cfg(csv_source, languages=("english", "hindi")))


def test_absent_test_split_is_named(csv_source):
    (csv_source / "french" / "test.csv").unlink()
    with pytest.raises(DataError, match="'french' has no test split"):
        download.download(data_cfg(csv_source))


def test_missing_column(csv_source):
    write_csv(csv_source / "english" / "train.csv", synthetic_rows("english", "train", 3), fieldnames=("text", "source"))
    with pytest.raises(DataError, match="train.csv: missing column 'label'"):
        download.download(data_cfg(csv_source))


def test_numeric_labels_are_refused(csv_source):
    rows = [dict(r, label=str(i % 3)) for i, r in enumerate(synthetic_rows("english", "train", 3))]
    write_csv(csv_source / "english" / "train.csv", rows)
    with pytest.raises(DataError, match="'label' holds numbers"):
        download.download(data_cfg(csv_source))


def test_unknown_label_names_are_kept_for_combine_to_count(csv_source):
    rows = synthetic_rows("english", "train", 3)
    rows[0]["label"] = "mixed"
    write_csv(csv_source / "english" / "train.csv", rows)
    df = download.download(data_cfg(csv_source))
    odd = df[df["label"] == "mixed"]
    assert len(odd) == 1 and odd["label_id"].isna().all()


def test_non_utf8_file(csv_source):
    (csv_source / "french" / "valid.csv").write_bytes("text,label,source\ncaf\xe9 horrible,negative,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="valid.csv: not valid UTF-8"):
        download.download(data_cfg(csv_source))


def test_cli_reports_one_line_and_writes_nothing(tmp_path, csv_source, capsys):
    (csv_source / "french" / "test.csv").unlink()
    params = write_params(tmp_path / "params.yaml", tiny_params(csv_source))
    out = tmp_path / "out" / "dataset.parquet"
    with pytest.raises(SystemExit) as exit_:
        download.cli(["--params", str(params), "--out", str(out)])
    assert exit_.value.code == 2
    err = stage_error(capsys.readouterr().err)
    assert err.startswith("crossling.download: error:") and "french" in err
    assert not out.exists()


def test_cli_writes_parquet_with_explicit_schema(tmp_path, csv_source):
    params = write_params(tmp_path / "params.yaml", tiny_params(csv_source))
    out = tmp_path / "dataset.parquet"
    download.cli(["--params", str(params), "--out", str(out)])
    assert pq.read_schema(out).equals(download.RAW_SCHEMA)


# --- the hub source: the script-free Parquet export layout (<config>/<split>/*.parquet) built locally ---

def make_hub_export(root, names=("negative", "neutral", "positive"), per_language_configs=False):
    """What `refs/convert/parquet` of the dataset holds, with ClassLabel features: config 'all' (with a
    language column), or one config per language (and an 'all' without that column)."""
    import datasets

    columns = {"text": datasets.Value("string"), "source": datasets.Value("string"),
               "label": datasets.ClassLabel(names=list(names))}
    for split, tag in (("train", "train"), ("validation", "valid"), ("test", "test")):
        rows = [dict(r, language=lang, label=names.index(r["label"])) for lang in ("english", "french", "german")
                for r in synthetic_rows(lang, tag, 4)]
        folders = {"all": rows}
        if per_language_configs:
            folders = {"all": [{k: v for k, v in r.items() if k != "language"} for r in rows]}
            folders |= {lang: [{k: v for k, v in r.items() if k != "language"} for r in rows if r["language"] == lang]
                        for lang in ("english", "french", "german")}
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
    cfg = DataConfig(source="hub", hub_id=str(repo), languages=("french", "english"))
    df = download.download(cfg)
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
    hub = download.download(DataConfig(source="hub", hub_id=str(repo), languages=("english", "french")))
    local = download.download(data_cfg(csv_root))
    cols = ["language", "split", "text", "label", "label_id"]
    assert hub[cols].sort_values(cols).reset_index(drop=True).equals(local[cols].sort_values(cols).reset_index(drop=True))


def test_hub_all_without_language_column_reads_per_language_configs(tmp_path):
    repo = make_hub_export(tmp_path / "hub", per_language_configs=True)
    df = download.download(DataConfig(source="hub", hub_id=str(repo), languages=("french", "english")))
    assert list(dict.fromkeys(df["language"])) == ["french", "english"]
    expected = {r["text"]: r["label"] for r in synthetic_rows("french", "test", 4)}
    got = df[(df["language"] == "french") & (df["split"] == "test")].set_index("text")["label"].to_dict()
    assert got == expected


def test_hub_missing_language_is_named(tmp_path):
    repo = make_hub_export(tmp_path / "hub")
    with pytest.raises(DataError, match="hindi absent from"):
        download.download(DataConfig(source="hub", hub_id=str(repo), languages=("english", "hindi")))


def test_hub_failure_points_to_the_offline_recipe(monkeypatch):
    import datasets

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'tyqiangz/multilingual-sentiments' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError) as err:
        download.download(DataConfig())
    msg = str(err.value)
    assert "Hugging Face Hub" in msg and "data.source" in msg and "offline" in msg.lower()


def test_bad_params_exit_2_and_write_nothing(tmp_path, csv_source, capsys):
    params = tiny_params(csv_source)
    params["trian"] = {"epochs": 3}
    path = write_params(tmp_path / "params.yaml", params)
    out = tmp_path / "dataset.parquet"
    with pytest.raises(SystemExit) as exit_:
        download.cli(["--params", str(path), "--out", str(out)])
    assert exit_.value.code == 2
    assert "trian: unknown key" in stage_error(capsys.readouterr().err)
    assert not out.exists()


def test_missing_hub_text_becomes_empty_and_is_counted(tmp_path):
    import datasets

    from crossling import combine

    features = datasets.Features({"text": datasets.Value("string"), "language": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
    rows = {"train": [("a good one", 2), (None, 0), ("meh", 1)], "test": [("fine", 1), (None, 2)]}
    for split, items in rows.items():
        ds = datasets.Dataset.from_list([{"text": t, "language": "english", "label": y} for t, y in items],
                                        features=features)
        (tmp_path / "hub" / "all" / split).mkdir(parents=True)
        ds.to_parquet(str(tmp_path / "hub" / "all" / split / "0000.parquet"))
    cfg = DataConfig(source="hub", hub_id=str(tmp_path / "hub"), languages=("english",))
    raw = download.download(cfg)
    assert (raw["text"] == "").sum() == 2
    _, _, _, report = combine.combine(raw, cfg, 0)
    assert report["english"]["pool_empty_text"] == 1 and report["english"]["test_empty_text"] == 1
