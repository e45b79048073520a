"""base: the ready-to-fine-tune base checkpoint (weights, tokenizer, config) as a DVC output.

`model.checkpoint` is a hub id, a local checkpoint directory, or `scratch`: a small DistilBERT built
from `model.scratch` with a WordPiece tokenizer trained on the training pool only (never the test
split). Later stages load only this directory, so nothing after this stage touches the network.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from crossling.common import DataError, atomic_dir, log, log_params, read_parquet, run_stage, stage_parser
from crossling.config import Config, ScratchConfig
from crossling.modeling import SPECIAL_TOKENS, check_labels

OFFLINE_HINT = "offline? use -S model.checkpoint=scratch or a local checkpoint directory (see README, Offline)"


def label_maps(labels: tuple[str, ...]) -> dict:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}}


def train_tokenizer(texts: list[str], vocab_size: int):
    """A cased WordPiece tokenizer (BERT-style normalization, CJK characters split) on `texts`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                        min_frequency=2, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"])


def scratch_model(scratch: ScratchConfig, vocab_size: int, pad_id: int, labels: tuple[str, ...]):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=vocab_size, dim=scratch.dim, n_layers=scratch.layers, n_heads=scratch.heads,
                              hidden_dim=scratch.hidden_dim, max_position_embeddings=scratch.max_position_embeddings,
                              dropout=scratch.dropout, attention_dropout=scratch.dropout, pad_token_id=pad_id,
                              **label_maps(labels))
    torch.manual_seed(scratch.init_seed)
    return DistilBertForSequenceClassification(config)


def checkpoint_location(checkpoint: str) -> str:
    """'local' for an existing directory or anything spelled like a path, else 'hub'."""
    if Path(checkpoint).expanduser().exists() or checkpoint.startswith(("/", "./", "../", "~")):
        return "local"
    return "hub"


def pretrained(checkpoint: str, labels: tuple[str, ...]):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    local = checkpoint_location(checkpoint) == "local"
    if local and not (Path(checkpoint).expanduser() / "config.json").exists():
        raise DataError(f"model.checkpoint: no checkpoint at {checkpoint} (expected a directory with config.json "
                        "and .safetensors weights)")
    try:
        config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=False)
    except OSError as exc:
        where = "the local directory" if local else "the Hugging Face Hub"
        raise DataError(f"model.checkpoint: could not load {checkpoint!r} from {where}: "
                        f"{str(exc).splitlines()[0][:300]}; {OFFLINE_HINT}") from None
    if any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])):
        check_labels(config, labels, f"model.checkpoint {checkpoint}")  # a fine-tuned head must fit our labels
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            checkpoint, use_safetensors=True, trust_remote_code=False, **label_maps(labels))
    except OSError as exc:
        raise DataError(f"model.checkpoint: could not load {checkpoint!r}: {str(exc).splitlines()[0][:300]}; "
                        f"{OFFLINE_HINT}") from None
    return model, tokenizer


def main(args, cfg: Config) -> None:
    log_params("base", model=asdict(cfg.model), data={"labels": cfg.data.labels})
    if cfg.model.is_scratch:
        pool = read_parquet(args.pool, "training pool")
        tokenizer = train_tokenizer(pool["text"].tolist(), cfg.model.scratch.vocab_size)
        model = scratch_model(cfg.model.scratch, len(tokenizer), tokenizer.pad_token_id, cfg.data.labels)
        log.info("scratch DistilBERT: %d parameters, vocabulary %d (trained on %d pool texts)",
                 model.num_parameters(), len(tokenizer), len(pool))
    else:
        model, tokenizer = pretrained(cfg.model.checkpoint, cfg.data.labels)
        log.info("loaded %s: %d parameters", cfg.model.checkpoint, model.num_parameters())
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    log.info("wrote base checkpoint to %s", args.out)


def cli(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--pool", default="data/pool.parquet")
    parser.add_argument("--out", default="models/base")
    run_stage("base", main, parser, argv)


if __name__ == "__main__":
    cli()
