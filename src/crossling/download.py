"""download: the raw dataset, from the Hugging Face Hub or a local copy, as one normalized Parquet file.

Both sources give the same columns (language, split, text, label, label_id, source). `label` is the
name found in the data; `label_id` is its position in `data.labels` (null for a name outside it, which
`combine` counts and drops). Hub labels are ClassLabel ids, turned into names through the dataset's own
features, never through an assumed id order.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa

from crossling.common import DataError, log, log_params, run_stage, stage_parser, write_parquet
from crossling.config import Config, DataConfig

SPLITS = ("train", "validation", "test")
CSV_FILES = {"train": "train.csv", "validation": "valid.csv", "test": "test.csv"}
OFFLINE_HINT = ("offline? set data.source to a local copy in the upstream CSV layout "
                "(<language>/{train,valid,test}.csv), e.g. make offline (see README, Without network access)")

RAW_SCHEMA = pa.schema([
    ("language", pa.string()),
    ("split", pa.string()),
    ("text", pa.string()),
    ("label", pa.string()),
    ("label_id", pa.int8()),
    ("source", pa.string()),
])


def read_split_csv(path: Path, labels: tuple[str, ...]) -> pd.DataFrame:
    """One upstream CSV (text,label,source) as strings; refuses files that cannot be read as intended."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                        "re-encode the file as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).strip()})") from None
    missing = [c for c in ("text", "label") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r} (found: {', '.join(df.columns)}); "
                        "the layout is text,label,source")
    values = df["label"].str.strip()
    if len(values) and values.str.fullmatch(r"-?\d+(\.\d+)?").all():
        raise DataError(f"{path}: column 'label' holds numbers (e.g. {values.iloc[0]!r}); "
                        f"this source needs label names ({', '.join(labels)})")
    if "source" not in df.columns:
        df["source"] = ""
    return df[["text", "label", "source"]]


def load_local(root: Path, languages: tuple[str, ...], labels: tuple[str, ...]) -> pd.DataFrame:
    if not root.is_dir():
        raise DataError(f"data.source: {root} is not a directory; use 'hub' or a local copy in the CSV layout")
    frames = []
    for lang in languages:
        folder = root / lang
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DataError(f"language {lang!r} is absent from {root} (found: {', '.join(found) or 'nothing'}); "
                            "remove it from data.languages")
        for split in SPLITS:
            path = folder / CSV_FILES[split]
            if not path.exists():
                log.warning("%s: no %s split (%s absent)", lang, split, path.name)
                continue
            df = read_split_csv(path, labels)
            frames.append(df.assign(language=lang, split=split))
    return pd.concat(frames, ignore_index=True)


def load_hub_config(data: DataConfig, config: str) -> pd.DataFrame:
    """One config folder of the Parquet export; `language` is the config's name when it has no such column."""
    import datasets  # heavy import, only for the hub source

    try:
        dsd = datasets.load_dataset(data.hub_id, data_dir=config, revision=data.revision)
    except Exception as exc:  # network, auth, missing revision: all end the same way
        raise DataError(f"could not load {data.hub_id!r} (config {config!r}, revision {data.revision!r}) "
                        f"from the Hugging Face Hub: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}; "
                        f"{OFFLINE_HINT}") from None
    frames = []
    for split, ds in dsd.items():
        if split not in SPLITS:
            log.warning("hub split %r ignored (expected %s)", split, ", ".join(SPLITS))
            continue
        label_feature = ds.features.get("label")
        if label_feature is None or "text" not in ds.features:
            raise DataError(f"{data.hub_id} split {split}: needs columns 'text' and 'label' (found: {', '.join(ds.features)})")
        df = ds.to_pandas()
        if isinstance(label_feature, datasets.ClassLabel):
            df["label"] = [label_feature.int2str(int(i)) if i >= 0 else "" for i in df["label"]]
        elif label_feature.dtype != "string":
            raise DataError(f"{data.hub_id} split {split}: 'label' is {label_feature.dtype} without ClassLabel "
                            "names; cannot tell which id is which label")
        if "language" not in df.columns:
            df["language"] = None if config == "all" else config
        if "source" not in df.columns:
            df["source"] = ""
        frames.append(df.assign(split=split)[["language", "split", "text", "label", "source"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RAW_SCHEMA.names)


def load_hub(data: DataConfig) -> pd.DataFrame:
    raw = load_hub_config(data, data.hub_config)
    if data.hub_config == "all" and raw["language"].isna().all():
        log.info("config 'all' has no language column: loading one config per language")
        raw = pd.concat([load_hub_config(data, lang) for lang in data.languages], ignore_index=True)
    present = set(raw["language"].dropna())
    missing = [lang for lang in data.languages if lang not in present]
    if missing:
        raise DataError(f"language(s) {', '.join(missing)} absent from {data.hub_id} config {data.hub_config!r} "
                        f"(found: {', '.join(sorted(present))}); remove them from data.languages")
    return raw[raw["language"].isin(data.languages)]


def normalize(raw: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """Fixed column order and row order (language as configured, then split, then source order)."""
    df = raw.copy()
    df["text"] = df["text"].astype(object).where(df["text"].notna(), "").astype(str)
    df["label"] = df["label"].astype(str).str.strip()
    df["label_id"] = df["label"].map({name: i for i, name in enumerate(data.labels)}).astype("Int8")
    df["source"] = df["source"].fillna("").astype(str)
    df["_lang"] = df["language"].map({lang: i for i, lang in enumerate(data.languages)})
    df["_split"] = df["split"].map({s: i for i, s in enumerate(SPLITS)})
    df = df.reset_index(drop=True).reset_index(names="_row")
    df = df.sort_values(["_lang", "_split", "_row"], kind="stable")
    for lang in data.languages:
        if not ((df["language"] == lang) & (df["split"] == "test")).any():
            raise DataError(f"language {lang!r} has no test split in the source; add it or remove the language")
        if not ((df["language"] == lang) & (df["split"] != "test")).any():
            raise DataError(f"language {lang!r} has neither a train nor a validation split; nothing to train on")
    return df[RAW_SCHEMA.names].reset_index(drop=True)


def download(data: DataConfig) -> pd.DataFrame:
    raw = load_hub(data) if data.is_hub else load_local(Path(data.source), data.languages, data.labels)
    return normalize(raw, data)


def main(args, cfg: Config) -> None:
    log_params("download", data=asdict(cfg.data))
    df = download(cfg.data)
    write_parquet(df, RAW_SCHEMA, args.out)
    counts = df.groupby(["language", "split"], sort=False).size()
    log.info("wrote %d rows to %s: %s", len(df), args.out, counts.to_dict())


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/raw/dataset.parquet")
    run_stage("download", main, parser, argv)


if __name__ == "__main__":
    cli()
