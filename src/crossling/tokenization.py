"""tokenization: how the base tokenizer treats each language, on the training pool and the test split.

Per language and split: subword tokens per whitespace word (per character for a language written mostly in
scripts without spaces between words: common.unit_of), unknown-token rate, share of texts truncated at
train.max_length, and mean length in tokens ([CLS] and [SEP] included). Lets the "slower languages tokenize
worse" hypothesis be checked against the learning curves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crossling.common import (log, log_params, read_parquet, run_stage, script_shares, stage_parser, unit_of,
                              write_json)
from crossling.config import Config


def diagnostics(tokenizer, texts: list[str], unit: str, max_length: int) -> dict:
    """The measures of one language's texts, with tokens counted per `unit` ("word" or "character": unit_of)."""
    ids = tokenizer(texts, add_special_tokens=True, truncation=False, return_attention_mask=False)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    content = lengths - tokenizer.num_special_tokens_to_add()
    no_space = unit == "character"
    units = sum(len("".join(t.split())) if no_space else len(t.split()) for t in texts)
    # guarded: without an unknown token, every read of unk_token_id logs an error (a verbose tokenizer)
    unk = sum(x.count(tokenizer.unk_token_id) for x in ids) if tokenizer.unk_token_id is not None else 0
    return {"tokens_per_unit": round(float(content.sum() / max(units, 1)), 4),
            "unit": "character" if no_space else "word",
            "unk_rate": round(float(unk / max(content.sum(), 1)), 6),
            "truncated_share": round(float((lengths > max_length).mean()), 6),
            "mean_tokens": round(float(lengths.mean()), 2), "texts": len(texts)}


def tokenization_report(tokenizer, frames: dict[str, pd.DataFrame], languages: tuple[str, ...],
                        max_length: int) -> tuple[dict, list[dict]]:
    """Flat metrics per language ({split}_{measure}) and plot rows (language, split, measures); the unit of a
    language is decided by the scripts of its pool (frames["pool"]), for every split."""
    metrics, rows = {}, []
    pool = frames["pool"]
    for lang in languages:
        metrics[lang] = {}
        unit = unit_of(script_shares(pool.loc[pool["language"] == lang, "text"]))
        for split, frame in frames.items():
            d = diagnostics(tokenizer, frame.loc[frame["language"] == lang, "text"].tolist(), unit, max_length)
            metrics[lang] |= {f"{split}_{k}": v for k, v in d.items() if k not in ("unit", "texts")}
            rows.append({"language": lang, "split": split, **d})
    return metrics, rows


def main(args, cfg: Config) -> None:
    from transformers import AutoTokenizer

    from crossling import figures

    log_params("tokenization", data={"languages": cfg.data.languages}, train={"max_length": cfg.train.max_length})
    tokenizer = AutoTokenizer.from_pretrained(args.base, trust_remote_code=False)
    frames = {"pool": read_parquet(args.pool, "training pool"), "test": read_parquet(args.test, "test split")}
    metrics, rows = tokenization_report(tokenizer, frames, cfg.data.languages, cfg.train.max_length)
    write_json(metrics, args.metrics)
    write_json(rows, Path(args.plots) / "tokenization.json")
    figures.tokenization(pd.DataFrame(rows), Path(args.plots) / "tokenization.png")
    for lang, m in metrics.items():
        log.info("%s: %s", lang, m)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0], "base", "pool", "test", "metrics", "plots")
    run_stage("tokenization", main, parser, argv)


if __name__ == "__main__":
    cli()
