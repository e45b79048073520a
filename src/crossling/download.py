"""download: the raw dataset, from the Hugging Face Hub or a local copy, as one normalized Parquet file.

Both sources give the same columns (language, split, text, label, label_id, source). `label` is the
name found in the data, renamed by `data.label_map` where it has an entry; `label_id` is its position in
`data.labels` (null for a name outside it, which `combine` counts and drops). Hub labels are ClassLabel
ids, turned into names through the dataset's own features; ids without names need `data.label_map`.
Languages are whatever the source has: folders of a local source, the `language` column of the hub
config `data.hub_config`, or else one hub config per language.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa

from crossling.common import DataError, log, log_params, run_stage, stage_parser, write_json, write_parquet
from crossling.config import Config, DataConfig

SPLITS = ("train", "validation", "test")
CSV_FILES = {"train": "train.csv", "validation": "valid.csv", "test": "test.csv"}
OFFLINE_HINT = ("set data.source to a local copy in the upstream CSV layout "
                "(<language>/{train,valid,test}.csv), e.g. make offline (see README, Set up and run)")

RAW_SCHEMA = pa.schema([("language", pa.string()), ("split", pa.string()), ("text", pa.string()),
                        ("label", pa.string()), ("label_id", pa.int8()), ("source", pa.string())])


def read_split_csv(path: Path, data: DataConfig) -> pd.DataFrame:
    """One upstream CSV (text,label,source) as strings; refuses files that cannot be read as intended."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                        "re-encode the file as UTF-8") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).strip()})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (not even a header); the layout is text,label,source") from None
    except OSError as exc:  # a directory in its place, no permission
        raise DataError(f"{path}: cannot be read ({exc.strerror}); it must be a CSV file") from None
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the first column for an index, shifting the others
        raise DataError(f"{path}: the first data row has more fields than the header ({', '.join(df.columns)}); "
                        "quote texts that contain commas")
    missing = [c for c in ("text", "label") if c not in df.columns]
    if missing:
        spaced = [c for c in df.columns if c != c.strip()]  # `text, label`: the space is part of the name
        raise DataError(f"{path}: missing column {missing[0]!r} (found: {', '.join(map(repr, df.columns))}); "
                        "the layout is text,label,source"
                        + (", without spaces around the commas of the header" if spaced else ""))
    values = df["label"].str.strip()
    values = values[values != ""]  # a blank label is an unknown one (counted by combine), not a name
    # numbers none of which data.label_map or data.labels names (labels "1".."5": star ratings); a map naming some
    # leaves the others to be counted and dropped (classes the study leaves out, -1 for unlabelled)
    if (len(values) and values.str.fullmatch(r"-?\d+(\.\d+)?").all()
            and not set(values) & (set(data.label_map) | set(data.labels))):
        found = sorted(set(values), key=float)
        raise DataError(f"{path}: column 'label' holds numbers without names ({', '.join(found[:5])}); name each "
                        f"in data.label_map as the dataset documents them, "
                        f"e.g. {{\"{found[0]}\": <one of {', '.join(data.labels)}>}}")
    return df.reindex(columns=["text", "label", "source"], fill_value="")


def subfolders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def require_languages(languages: tuple[str, ...], found, where: str) -> None:
    missing = [lang for lang in languages if lang not in found]
    if missing:
        raise DataError(f"language(s) {', '.join(missing)} absent from {where} "
                        f"(found: {', '.join(sorted(found)) or 'nothing'}); remove them from data.languages")


def load_local(root: Path, data: DataConfig) -> pd.DataFrame:
    if not root.is_dir():
        where = ("" if root.is_absolute() else f" (relative to {Path.cwd()}: `dvc exp run --queue` and --temp run the "
                 "stages in a copy of the repository, without your untracked folders; give an absolute path)")
        raise DataError(f"data.source: {root} is not a directory{where}; use 'hub' or a local copy in the CSV layout")
    if not os.access(root, os.R_OK | os.X_OK):  # else listing it raises PermissionError
        raise DataError(f"data.source: {root} cannot be read (permission denied); make the folder readable")
    found = subfolders(root)
    # no language folder and no folder of the layout: the path is wrong, not data.languages (os.path: False, not
    # an error, where a folder cannot be read)
    if not set(data.languages) & set(found) and not any(os.path.isfile(root / f / name) for f in found
                                                        for name in CSV_FILES.values()):
        inside = [str(root / f) for f in found if any(os.path.isdir(root / f / lang) for lang in data.languages)]
        raise DataError(f"data.source: {root} holds no <language>/{{train,valid,test}}.csv (its folders: "
                        f"{', '.join(found) or 'none'}); give the folder that holds them"
                        f"{', e.g. ' + inside[0] if inside else ''} (make: MIRROR=<folder>)")
    require_languages(data.languages, found, str(root))
    frames = []
    for lang in data.languages:
        if not os.access(root / lang, os.R_OK | os.X_OK):  # else pathlib's exists() raises PermissionError
            raise DataError(f"{root / lang}: cannot be read (permission denied); make the folder readable")
        if not any((root / lang / name).exists() for name in CSV_FILES.values()):
            raise DataError(f"{root / lang}: none of {', '.join(CSV_FILES.values())}; the layout is "
                            "<language>/{train,valid,test}.csv")
        for split in SPLITS:
            path = root / lang / CSV_FILES[split]
            if not path.exists():
                log.warning("%s: no %s split (%s absent)", lang, split, path.name)
                continue
            frames.append(read_split_csv(path, data).assign(language=lang, split=split))
    return pd.concat(frames, ignore_index=True)


def hub_unreachable(data: DataConfig, what: str, exc: Exception) -> DataError:
    from huggingface_hub import constants

    # without HF_HUB_OFFLINE the configs are listed online, which no cache replaces
    cache = ("run once online to put it in the Hugging Face cache" if constants.HF_HUB_OFFLINE
             else "set HF_HUB_OFFLINE=1 if an online run put it in the Hugging Face cache")
    return DataError(f"could not load {data.hub_id!r} ({what}, revision {data.revision!r}) from the Hugging Face "
                     f"Hub: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}; offline? {cache}, or "
                     f"{OFFLINE_HINT}")


def local_export(data: DataConfig) -> bool:
    """data.hub_id names a local copy of the hub export (a folder), read as it is: no revision applies."""
    return Path(data.hub_id).is_dir()


def hub_snapshot(data: DataConfig, config: str | None = None) -> Path:
    """The export's folder at data.revision (or only one config's files) in the local Hugging Face cache, through
    huggingface_hub: downloaded when online; offline (HF_HUB_OFFLINE=1) what the cache holds. Its folder name
    is the commit the revision resolved to. A local copy of the export (data.hub_id a directory) is used as it is."""
    if local_export(data):
        return Path(data.hub_id)
    from huggingface_hub import snapshot_download

    patterns = None if config is None else [f"{config}/*", f"{config}/**"]
    try:
        return Path(snapshot_download(data.hub_id, repo_type="dataset", revision=data.revision,
                                      allow_patterns=patterns))
    except Exception as exc:  # network, auth, missing revision, not in the cache: all end the same way
        raise hub_unreachable(data, f"config {config!r}" if config else "files", exc) from None


def cached_configs(data: DataConfig) -> list[str]:
    """Offline: the top-level folders of the tree listing that an online download cached (every config of the
    export at that commit, as online), else of the cached snapshot. Not the snapshot first: after a download of
    one config, huggingface_hub refuses the whole snapshot as incomplete (IncompleteSnapshotError)."""
    from huggingface_hub import get_cached_repo_tree
    from huggingface_hub.errors import CachedRepoTreeNotFoundError

    try:
        tree = get_cached_repo_tree(data.hub_id, repo_type="dataset", revision=data.revision)
    except CachedRepoTreeNotFoundError:  # a cache without tree listings (an older huggingface_hub filled it)
        return subfolders(hub_snapshot(data))
    return sorted({entry.path.split("/")[0] for entry in tree if "/" in entry.path})


def hub_configs(data: DataConfig) -> list[str]:
    """The configs of the Parquet export: its top-level folders (offline: those the local cache knows)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.hf_api import RepoFolder

    if local_export(data):
        return subfolders(hub_snapshot(data))
    if constants.HF_HUB_OFFLINE:
        return cached_configs(data)
    try:
        tree = HfApi().list_repo_tree(data.hub_id, repo_type="dataset", revision=data.revision)
        return sorted(entry.path for entry in tree if isinstance(entry, RepoFolder))
    except Exception as exc:  # network, auth, missing revision: all end the same way
        raise hub_unreachable(data, "list of configs", exc) from None


def load_hub_config(data: DataConfig, root: Path, config: str, language: str | None = None) -> pd.DataFrame:
    """One config folder of the Parquet export; rows without a `language` column get `language`."""
    import datasets  # heavy import, only for the hub source

    try:
        dsd = datasets.load_dataset(str(root), data_dir=config)
    except Exception as exc:  # unreadable files: name them
        raise hub_unreachable(data, f"config {config!r}", exc) from None
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
        elif label_feature.dtype not in ("string", "large_string"):
            if not data.label_map and not all(re.fullmatch(r"-?\d+", name) for name in data.labels):
                raise DataError(f"{data.hub_id} split {split}: 'label' is {label_feature.dtype} without ClassLabel "
                                "names; name each id in data.label_map as the dataset documents them")
            if label_feature.dtype.startswith(("int", "uint")):  # pandas reads one with a null as floats (2.0)
                df["label"] = ["" if pd.isna(v) else str(int(v)) for v in df["label"]]
        if "language" not in df.columns:
            df["language"] = language
        frames.append(df.assign(split=split).reindex(columns=["language", "split", "text", "label", "source"],
                                                     fill_value=""))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RAW_SCHEMA.names)


def load_hub(data: DataConfig) -> tuple[pd.DataFrame, Path, list[str]]:
    """The configured languages from the hub export, the folder they were read from and the configs read."""
    configs = hub_configs(data)
    if data.hub_config in configs:
        root = hub_snapshot(data, data.hub_config)
        raw = load_hub_config(data, root, data.hub_config)
        if raw["language"].notna().any():
            present = set(raw["language"].dropna())
            require_languages(data.languages, present, f"{data.hub_id} config {data.hub_config!r}")
            return raw[raw["language"].isin(data.languages)], root, [data.hub_config]
        log.info("config %r has no language column: loading one config per language", data.hub_config)
    else:
        log.info("no config %r: loading one config per language", data.hub_config)
    require_languages(data.languages, configs, f"the configs of {data.hub_id}")
    frames = []
    for lang in data.languages:
        root = hub_snapshot(data, lang)
        frames.append(load_hub_config(data, root, lang, lang))
    return pd.concat(frames, ignore_index=True), root, list(data.languages)


def normalize(raw: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """Fixed column order and row order (language as configured, then split, then source order)."""
    df = raw.copy()
    df["text"] = df["text"].astype(object).where(df["text"].notna(), "").astype(str)
    df["label"] = df["label"].astype(str).str.strip().map(lambda found: data.label_map.get(found, found))
    df["label_id"] = df["label"].map({name: i for i, name in enumerate(data.labels)}).astype("Int8")
    df["source"] = df["source"].fillna("").astype(str)
    df["_lang"] = df["language"].map({lang: i for i, lang in enumerate(data.languages)})
    df["_split"] = df["split"].map({s: i for i, s in enumerate(SPLITS)})
    df = df.sort_values(["_lang", "_split"])  # stable on several columns (pandas GH#38426): keeps the source order
    for lang in data.languages:
        if not ((df["language"] == lang) & (df["split"] == "test")).any():
            raise DataError(f"language {lang!r} has no test split in the source; add it or remove the language")
        if not ((df["language"] == lang) & (df["split"] != "test")).any():
            raise DataError(f"language {lang!r} has neither a train nor a validation split, nothing to train on; "
                            "add its train split (train.csv) or remove the language from data.languages")
    return df[RAW_SCHEMA.names].reset_index(drop=True)


def content_md5(root: Path, files: list[Path]) -> str:
    """One md5 over the files' paths (relative to root) and contents: what identifies a local source."""
    digest = hashlib.md5()
    for path in sorted(files):
        digest.update(f"{path.relative_to(root).as_posix()}\0{hashlib.md5(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def skipped(path: Path, root: Path) -> bool:
    """A file datasets does not read below a data folder: hidden (a part starting with "."), or in a "__" folder."""
    parts = path.relative_to(root).parts
    return any(p.startswith(".") for p in parts) or any(p.startswith("__") for p in parts[:-1])


def provenance(data: DataConfig, hub_root: Path | None = None, configs: list[str] | None = None) -> dict:
    """What the raw dataset was read from: the hub commit behind data.revision (the cache folder's name), or the
    content hash of a local source (CSV layout) or of a local copy of the hub export (the files of `configs`, the
    configs read, as datasets finds them: hidden and `__` folders skipped; no revision applies to it)."""
    if data.is_hub and not local_export(data):
        commit = hub_root.name if re.fullmatch(r"[0-9a-f]{40}", hub_root.name) else None
        return {"source": "hub", "hub_id": data.hub_id, "revision": data.revision, "commit": commit}
    if data.is_hub:
        files = [p for c in configs for p in (hub_root / c).rglob("*") if p.is_file() and not skipped(p, hub_root / c)]
        return {"source": "hub", "hub_id": data.hub_id, "revision": None, "commit": None, "files": len(files),
                "content_md5": content_md5(hub_root, files)}
    root = Path(data.source)
    files = [path for path in (root / lang / CSV_FILES[split] for lang in data.languages for split in SPLITS)
             if path.exists()]  # the configured languages' CSV files, as load_local reads them
    return {"source": "local", "path": str(root), "files": len(files), "content_md5": content_md5(root, files)}


def read_source(data: DataConfig) -> tuple[pd.DataFrame, dict]:
    """The normalized raw dataset and its provenance."""
    if data.is_hub:
        raw, root, configs = load_hub(data)
        return normalize(raw, data), provenance(data, root, configs)
    return normalize(load_local(Path(data.source), data), data), provenance(data)


def main(args, cfg: Config) -> None:
    log_params("download", data=asdict(cfg.data))
    df, source = read_source(cfg.data)
    write_parquet(df, RAW_SCHEMA, args.out)
    write_json(source, args.provenance)
    log.info("source: %s", source)
    counts = df.groupby(["language", "split"], sort=False).size()
    log.info("wrote %d rows to %s: %s", len(df), args.out, counts.to_dict())


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "out: the raw dataset (Parquet)",
                          "provenance: the hub commit or the local source's content hash")
    run_stage("download", main, parser, argv)


if __name__ == "__main__":
    cli()
