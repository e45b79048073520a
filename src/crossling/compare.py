"""compare: paired comparison of experiments on the same test texts, as the central table of a paper.

`python -m crossling.compare A B [C ...]`: each argument is a DVC experiment name, a git revision, or
`workspace`. Each one's params, test split and predictions are read through DVC (from the cache, or the remote
when missing there). The first is the baseline: for every other one, per model present in both (the largest
joint model, the equal-budget joint model (both left out when both sides have one language: they repeat the
monolingual run), each joint size both have, each monolingual model on every test language both have, i.e.
in-language and zero-shot cells, each leave-one-out model) and test language, the difference of seed-averaged
macro-F1 (other minus baseline) with a two-level paired bootstrap interval (the same resampled test texts on
both sides, and the same resampled seeds where both trained the same seeds; other seed lists are resampled
independently), and p-values adjusted together for multiple comparisons. Refused in one line when the test texts
of a language differ. Prints a Markdown report (params that differ, the differences, the provenance shared and
the entries that differ) and writes all of it as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zlib
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from crossling import stats
from crossling.common import EQUAL_BUDGET, DataError, joint_name, loo_name, mono_name, run_name, write_json
from crossling.config import (Config, ConfigError, EvaluateConfig, YAMLError, _one_line, config_from_dict,
                              read_yaml)
from crossling.project import open_repo
from crossling.report import diff, table

WORKSPACE = "workspace"
CORRECTIONS = {"holm": "Holm (family-wise error rate)", "bh": "Benjamini-Hochberg (false discovery rate)"}


@dataclass
class Side:
    """One experiment, revision or the workspace: its params, test texts and predictions."""

    name: str
    rev: str | None  # None: the workspace
    cfg: Config
    raw_params: dict
    test: pd.DataFrame
    provenance: dict
    health: dict  # metrics/health.json: which runs are degenerate

    def degenerate(self, model: str, lang: str) -> bool:
        """A degenerate run, predictions collapsed on `lang`, or unknown health (no metrics/health.json, or no
        entry for a run): never a finding."""
        return any(h.get("degenerate") or h.get(f"collapsed_on_{lang}")
                   for h in (self.health.get(run_name(model, seed), {"degenerate": 1}) for seed in self.cfg.train.seeds))


def resolve(repo, name: str) -> str | None:
    """The commit an experiment name or git revision stands for; None for the workspace."""
    from dvc.scm import RevError, resolve_rev

    if name == WORKSPACE:
        return None
    try:
        return resolve_rev(repo.scm, name)
    except RevError as exc:
        if "ambiguous" in str(exc):  # an experiment name on several commits
            raise DataError(f"{name!r}: {str(exc).splitlines()[0]}; give the experiment's commit instead") from None
        raise DataError(f"{name!r} is neither a DVC experiment (dvc exp list) nor a git revision; "
                        f"give one of those, or {WORKSPACE}") from None


def read_bytes(root: str, path: str, rev: str | None, what: str) -> bytes:
    """A file of the project at `rev` through DVC: git-tracked, or a DVC output from the cache or the remote."""
    import dvc.api

    try:
        return dvc.api.read(path, repo=root, rev=rev, mode="rb")
    except Exception as exc:  # not in git, not in the cache, no remote: all end the same way
        where = rev[:10] if rev else WORKSPACE
        raise DataError(f"{what} ({path}) of {where} cannot be read: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200] if str(exc) else ''}; run `dvc pull` (or `dvc exp pull`) "
                        "where it was made, or re-run it") from None


def check_reproduced(repo) -> None:
    """Refuse a workspace whose outputs params.yaml and the code no longer give: they would be credited to the
    params that differ. Outputs merely absent (not pulled, not checked out) are read from the cache or the remote,
    as `dvc repro --allow-missing` treats them."""
    from dvc.lock import LockError

    try:
        with repo.lock:  # a stage's status is read under the repo lock
            graph = repo.index.graph  # upstream: an absent input whose producer's locked output differs has changed
            stale = [stage.addressing.rsplit(":", 1)[-1] for stage in repo.index.stages
                     if stage.changed(allow_missing=True, upstream=list(graph.successors(stage)))]
    except LockError:
        raise DataError(f"the {WORKSPACE} is locked by another dvc command (dvc repro?); compare once it is done, "
                        "or compare committed experiments") from None
    if stale:
        raise DataError(f"the {WORKSPACE} is not reproduced: dvc status finds {len(stale)} changed stage(s) "
                        f"({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}); run dvc repro first, "
                        "or compare committed experiments")


# The params compare reads; a past revision must have them, whatever keys the pipeline added since.
READ = ("data.labels", "data.languages", "sample.sizes", "sample.leave_one_out", "train.seeds")


def with_missing(raw: dict, current: dict, section: type = Config, prefix: str = "") -> tuple[dict, list[str]]:
    """`raw` with every key of `current` it lacks taken from `current`, and the dotted names taken. Only sections
    are completed key by key; a mapping value (data.label_map) is one param, kept whole."""
    merged, added = dict(raw), []
    for key, value in current.items():
        field = section.__pydantic_fields__.get(key)
        if key not in raw:
            merged[key] = value
            added.append(f"{prefix}{key}")
        elif field and is_dataclass(field.annotation) and isinstance(value, dict) and isinstance(raw[key], dict):
            merged[key], more = with_missing(raw[key], value, field.annotation, f"{prefix}{key}.")
            added += more
    return merged, added


def older_params(root: str, name: str, rev: str | None, raw: Any, exc: ConfigError) -> Config:
    """The params of a revision made before keys compare does not read were added (a `slurm` section, say): those
    keys from the workspace's params.yaml, shown as null on its side under "Params that differ"."""
    if rev is None or not isinstance(raw, dict):
        raise DataError(f"params.yaml of {name}: {exc}") from None
    try:
        current = read_yaml(read_bytes(root, "params.yaml", None, "params"))
        config_from_dict(current)
    except (YAMLError, ConfigError, DataError) as current_exc:
        raise DataError(f"params.yaml of {name}: {exc.field}: {exc.message.split(';')[0]}, and the workspace's "
                        f"params.yaml, which could complete it, is not valid: {str(current_exc).splitlines()[0]}") from None
    merged, added = with_missing(raw, current)
    read = [key for key in added if any(r == key or r.startswith(f"{key}.") for r in READ)]
    if read:
        raise DataError(f"params.yaml of {name}: {read[0]}: missing, and compare reads it (made by another version "
                        "of the pipeline: compare revisions made with this one)")
    if added:
        try:
            return config_from_dict(merged)
        except ConfigError as merged_exc:
            exc = merged_exc
    raise DataError(f"params.yaml of {name}: {exc} (made by another version of the pipeline: compare revisions made "
                    "with this one)") from None


def load_side(root: str, repo, name: str) -> Side:
    rev = resolve(repo, name)
    if rev is None:
        check_reproduced(repo)
    raw = read_yaml(read_bytes(root, "params.yaml", rev, "params"))
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        cfg = older_params(root, name, rev, raw, exc)
    test = pd.read_parquet(io.BytesIO(read_bytes(root, "data/test.parquet", rev, "test split")))
    optional = {}
    for what in ("provenance", "health"):
        try:
            optional[what] = json.loads(read_bytes(root, f"metrics/{what}.json", rev, what))
        except DataError:
            optional[what] = {}  # made by an older version of the pipeline: health unknown, marked ⚠
    return Side(name, rev, cfg, raw, test, **optional)


def check_same_texts(sides: list[Side]) -> tuple[str, ...]:
    """The test languages all sides share, refusing any whose test texts (and labels) differ between sides."""
    base = sides[0]
    for other in sides[1:]:
        if base.cfg.data.labels != other.cfg.data.labels:
            raise DataError(f"{base.name} and {other.name} have different data.labels ({list(base.cfg.data.labels)} "
                            f"vs {list(other.cfg.data.labels)}): their predictions cannot be compared")
    shared = tuple(lang for lang in base.cfg.data.languages if all(lang in s.cfg.data.languages for s in sides))
    if not shared:
        raise DataError(f"{', '.join(s.name for s in sides)} share no test language; nothing to compare")
    for lang in shared:
        parts = {s.name: s.test[s.test["language"] == lang] for s in sides}
        hashes = {name: hashlib.sha256("\n".join(p["text"] + "\t" + p["label"]).encode("utf-8")).hexdigest()
                  for name, p in parts.items()}
        if len(set(hashes.values())) > 1:
            raise DataError(f"the {lang} test texts differ between {' and '.join(hashes)} (hashes "
                            f"{', '.join(h[:12] for h in hashes.values())}): a paired comparison needs the same test "
                            "texts; compare experiments made on the same data")
    return shared


def roles(cfg: Config) -> dict[str, str]:
    """Model role -> model name: the same role in two experiments is compared even when sizes differ."""
    out = {"joint_largest": joint_name(cfg.sample.largest), "joint_equal_budget": EQUAL_BUDGET}
    out |= {joint_name(s): joint_name(s) for s in cfg.sample.sizes[:-1]}  # the largest is joint_largest
    out |= {mono_name(lang): mono_name(lang) for lang in cfg.data.languages}
    return out | {loo_name(lang): loo_name(lang) for lang in cfg.sample.leave_one_out}


def predictions(root: str, side: Side, model: str, languages: tuple[str, ...]) -> dict[str, list[np.ndarray]]:
    """Per test language, each seed's predicted ids in test-split order."""
    per_lang = {lang: [] for lang in languages}
    for seed in side.cfg.train.seeds:
        run = run_name(model, seed)
        frame = pd.read_parquet(io.BytesIO(read_bytes(root, f"data/predictions/{run}.parquet", side.rev,
                                                      f"predictions of {run}")))
        for lang in languages:
            per_lang[lang].append(frame[frame["language"] == lang].sort_values("test_row")["pred_id"].to_numpy())
    return per_lang


def compare(root: str, sides: list[Side], resamples: int, confidence: float, correction: str, seed: int) -> dict:
    languages = check_same_texts(sides)
    base = sides[0]
    gold = {lang: base.test[base.test["language"] == lang]["label_id"].to_numpy() for lang in languages}
    idx = {lang: stats.resample_indices(len(gold[lang]), resamples, [seed, zlib.crc32(lang.encode())])
           for lang in languages}
    cache: dict[tuple[str, str], dict] = {}

    def scored(side: Side, model: str) -> dict[str, tuple[float, np.ndarray]]:
        if (side.name, model) not in cache:
            # drawn from the seed list: sides that trained the same seeds (the same sample draws and data order)
            # resample them together, paired like the test texts; other seed lists are drawn independently
            seeds = stats.resample_indices(len(side.cfg.train.seeds), resamples,
                                           [seed, zlib.crc32(b"seeds"), *side.cfg.train.seeds])
            cache[side.name, model] = {
                lang: (float(np.mean([stats.scores(gold[lang], p, side.cfg.data.labels)["macro_f1"] for p in runs])),
                       stats.resampled_means(gold[lang], runs, idx[lang], len(side.cfg.data.labels), seeds)["macro_f1"])
                for lang, runs in predictions(root, side, model, languages).items()}
        return cache[side.name, model]

    rows, left_out = [], []
    base_roles = roles(base.cfg)
    for other in sides[1:]:
        other_roles = roles(other.cfg)
        repeats = set()
        if len(base.cfg.data.languages) == len(other.cfg.data.languages) == 1:
            repeats = {"joint_largest", "joint_equal_budget"}  # on each side the same texts and seeds as mono
            left_out.append(f"{other.name}: joint_largest and joint_equal_budget, which with one language on both "
                            f"sides repeat the monolingual run (compared as {mono_name(languages[0])})")
        alone = []  # a size, language or held-out language of one side without that role on the other
        for side, side_roles, partner, partner_roles in ((base, base_roles, other, other_roles),
                                                         (other, other_roles, base, base_roles)):
            for role, model in side_roles.items():
                if role not in partner_roles:
                    alone.append(f"{side.name}'s {model} (" + (
                        f"{partner.name}'s {model} is its largest, compared as joint_largest)"
                        if partner_roles["joint_largest"] == model else f"none in {partner.name})"))
        if alone:
            left_out.append(f"{base.name} and {other.name}: {', '.join(alone)}")
        for role, model in base_roles.items():
            if role not in other_roles or role in repeats:
                continue
            a, b = scored(base, model), scored(other, other_roles[role])
            for lang in languages:
                if role.startswith("loo_") and lang != role.removeprefix("loo_"):
                    continue  # a leave-one-out model is meant for its held-out language
                d = stats.difference(b[lang][0] - a[lang][0], b[lang][1] - a[lang][1], confidence)
                rows.append({"experiment": other.name, "role": role, "baseline_model": model,
                             "model": other_roles[role], "test_language": lang,
                             "baseline_macro_f1": round(a[lang][0], 6), "macro_f1": round(b[lang][0], 6), **d,
                             "degenerate_model": int(base.degenerate(model, lang) or
                                                         other.degenerate(other_roles[role], lang))})
    adjusted = stats.adjust({str(i): r["p"] for i, r in enumerate(rows)}, correction)
    alpha = stats.significance_level(confidence)
    for i, row in enumerate(rows):
        row |= {"p_adjusted": adjusted[str(i)],
                "significant": int(adjusted[str(i)] < alpha and not row["degenerate_model"])}
    return {"baseline": base.name, "revisions": {s.name: s.rev or WORKSPACE for s in sides},
            "test_languages": list(languages), "params_that_differ": params_that_differ(sides),
            "provenance": {s.name: provenance_summary(s.provenance) for s in sides},
            "bootstrap_samples": resamples, "confidence": confidence, "correction": correction, "differences": rows,
            "left_out": left_out}


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        out |= flatten(value, f"{name}.") if isinstance(value, dict) and value else {name: value}
    return out


def params_that_differ(sides: list[Side]) -> dict[str, dict[str, object]]:
    flat = {s.name: flatten(s.raw_params) for s in sides}
    return {k: {name: values.get(k) for name, values in flat.items()} for k in sorted(set().union(*flat.values()))
            if len({json.dumps(values.get(k), sort_keys=True) for values in flat.values()}) > 1}


NO_RECORD = "metrics/provenance.json absent: made before provenance was recorded"
IDENTITY = ("checkpoint", "checkpoint_commit", "device", "device_name", "precision", "source", "hub_id", "revision",
            "commit", "path", "content_md5")  # the provenance entries a reader checks first


def provenance_summary(provenance: dict) -> dict[str, object]:
    """What produced a side's runs: each distinct device/precision/versions/checkpoint, and the data's identity."""
    if not provenance:
        return {"recorded": f"no ({NO_RECORD})"}
    seen: dict[str, set] = {}
    for run in provenance.get("runs", {}).values():
        for stage, record in run.items():
            for key, value in flatten(record or {}, f"{stage}.").items():
                seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    return flatten(provenance.get("data", {}), "data.") | {
        key: ", ".join(sorted(str(json.loads(v)) for v in values)) for key, values in sorted(seen.items())}


def markdown(result: dict) -> str:
    names = list(result["revisions"])
    lines = [f"# Paired comparison against {result['baseline']}", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
             "| revision | " + " | ".join(str(r)[:12] for r in result["revisions"].values()) + " |", "",
             "## Params that differ", ""]
    differ = result["params_that_differ"]
    lines.append(table(["param", *names], [[k, *(json.dumps(v.get(n)) for n in names)] for k, v in differ.items()],
                       left=len(names) + 1) if differ else "None.")
    lines += ["", "## Differences in macro-F1 (other minus baseline, paired on the same test texts)", "",
              f"{result['confidence'] * 100:.10g}% percentile intervals of a two-level bootstrap "
              f"({result['bootstrap_samples']} resamples: the same test texts on both sides, seeds resampled together "
              "where both sides trained the same seeds, independently otherwise); p-values from the bootstrap standard "
              f"error, adjusted together with {CORRECTIONS[result['correction']]}; **bold**: adjusted p below "
              f"{stats.significance_level(result['confidence']):.10g}; ⚠: a degenerate run on either side, or "
              "predictions collapsed on that test language (metrics/health.json; without it, health unknown), never "
              "marked.", ""]
    rows = []
    for r in result["differences"]:
        model = r["role"] if r["baseline_model"] == r["model"] else f"{r['role']} ({r['baseline_model']} vs {r['model']})"
        rows.append([r["experiment"], model, r["test_language"], f"{r['baseline_macro_f1']:.3f}", f"{r['macro_f1']:.3f}",
                     diff(r, "significant"), f"{r['p_adjusted']:g}"])
    lines.append(table(["experiment", "model", "test language", "baseline", "other", "difference", "adjusted p"],
                       rows, left=3))
    lines += ["", "Not compared: " + "; ".join(result["left_out"]) + "."] if result.get("left_out") else []
    # identity first (what ran, on what, from which data); identical library versions would bury the few that differ
    prov = result["provenance"]
    missing = [n for n in names if "recorded" in prov[n]]
    recorded = [n for n in names if n not in missing]
    keys = sorted(set().union(*(prov[n].keys() for n in recorded)))
    differ = [k for k in keys if len({str(prov[n].get(k, "—")) for n in recorded}) > 1]
    same = [k for k in keys if k not in differ]
    # predict.trained_with.* repeats the training run's record (train.*): a row where it differs, never in this line
    shown = [k for k in same if k.rsplit(".", 1)[-1] in IDENTITY and ".trained_with." not in k]
    lines += ["", "## Provenance", ""]
    lines += [f"- {n}: none recorded: {NO_RECORD}" for n in missing]
    if recorded:  # a side's values are joined with ", " (several devices in one grid): entries take "; "
        entries = [f"{k} = {prov[recorded[0]][k]}" for k in shown]
        if rest := len(same) - len(shown):
            entries.append(f"{rest} {'more ' if shown else ''}entr{'y' if rest == 1 else 'ies'} "
                           "(library versions, training settings)")
        head = f"{recorded[0]}'s record" if len(recorded) == 1 else "Same on every side" + " with a record" * bool(missing)
        lines += [f"- {head}: " + ("; ".join(entries) or "none") + "; the JSON output holds them all."]
    lines += ["", table(["differs", *recorded], [[k, *(prov[n].get(k, "—") for n in recorded)] for k in differ],
                        left=len(recorded) + 1)] if differ else []
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m crossling.compare", description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                        help=f"DVC experiment names, git revisions or {WORKSPACE}; the first is the baseline")
    parser.add_argument("--out", default="compare.json", help="JSON file of the comparison (default: compare.json)")
    parser.add_argument("--repo", default=".", help="the project (default: the current directory)")
    parser.add_argument("--bootstrap-samples", type=int, default=1000)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--correction", choices=sorted(CORRECTIONS), default="holm")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if len(args.experiments) < 2:
        parser.error("give at least two experiments, revisions or workspace")
    try:
        check_options(args)
        with open_repo(args.repo) as repo:
            sides = [load_side(args.repo, repo, name) for name in args.experiments]
            result = compare(args.repo, sides, args.bootstrap_samples, args.confidence, args.correction, args.seed)
        try:
            write_json(result, Path(args.out))
        except OSError as exc:
            raise DataError(f"--out {args.out}: cannot be written ({exc.strerror})") from None
    except DataError as exc:
        print(f"crossling.compare: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(markdown(result), end="")


def check_options(args: argparse.Namespace) -> None:
    """The options evaluate takes from params.yaml, checked by the same model before any work."""
    repeated = sorted({name for name in args.experiments if args.experiments.count(name) > 1})
    if repeated:
        raise DataError(f"{', '.join(repeated)} given twice: a side compared with itself; give each once")
    try:  # collapse_share is not compare's: any valid value
        EvaluateConfig(bootstrap_samples=args.bootstrap_samples, confidence=args.confidence, seed=args.seed,
                       correction=args.correction, collapse_share=1)
    except ValidationError as exc:
        error = _one_line(exc)
        raise DataError(f"--{error.field.replace('_', '-')}: {error.message}") from None
    if Path(args.out).is_dir():
        raise DataError(f"--out {args.out}: is a directory; give a file name, e.g. {Path(args.out) / 'compare.json'}")


if __name__ == "__main__":
    main()
