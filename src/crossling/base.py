"""base: the ready-to-fine-tune base checkpoint (weights, tokenizer, config) as a DVC output.

`model.checkpoint` is a hub id, a local checkpoint directory, or `scratch`: a small DistilBERT built
from `model.scratch` with a WordPiece tokenizer trained on the training pool only (never the test
split). Later stages load only this directory, so nothing after this stage touches the network.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch

from crossling.common import DataError, content_hash, log, log_params, read_parquet, run_stage, stage_parser, write_json
from crossling.config import Config, ConfigError, ScratchConfig
from crossling.modeling import INIT_RECORD, SPECIAL_TOKENS, check_labels, draw_weights, head_modules, quiet_transformers

OFFLINE_HINT = ("offline? use a local checkpoint directory, a checkpoint already in the Hugging Face cache with "
                "HF_HUB_OFFLINE=1, or -S model.checkpoint=scratch (see README, Set up and run)")


def label_maps(labels: tuple[str, ...]) -> dict:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}}


def train_tokenizer(texts: list[str], vocab_size: int):
    """A cased WordPiece tokenizer (BERT-style normalization, CJK characters split) learned from `texts`.

    tokenizers' WordPieceTrainer gives a different vocabulary on every run (huggingface/tokenizers#1794:
    '##' pieces get ids in hash-map order), so the pieces come from a BPE training, which is
    deterministic, and become WordPiece entries in the form they take in the training texts
    (word-initial, or '##' continuation), most frequent first, ties broken by the piece itself.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    def prepared(model):
        tok = Tokenizer(model)
        tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        return tok

    bpe = prepared(models.BPE(unk_token="[UNK]"))
    bpe.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), min_frequency=2, show_progress=False))
    counts = Counter(piece if word != previous else f"##{piece}"
                     for enc in bpe.encode_batch(texts, add_special_tokens=False)
                     for piece, word, previous in zip(enc.tokens, enc.word_ids, [None, *enc.word_ids]))
    # Single characters first, so no word becomes [UNK] for lack of one of its characters.
    ranked = sorted(counts, key=lambda p: (len(p.removeprefix("##")) > 1, -counts[p], p))
    pieces = [p for p in ranked if p not in SPECIAL_TOKENS][: vocab_size - len(SPECIAL_TOKENS)]
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *pieces])}

    tok = prepared(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"])


def scratch_model(scratch: ScratchConfig, vocab_size: int, pad_id: int, labels: tuple[str, ...]):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=vocab_size, dim=scratch.dim, n_layers=scratch.layers, n_heads=scratch.heads,
                              hidden_dim=scratch.hidden_dim, max_position_embeddings=scratch.max_position_embeddings,
                              dropout=scratch.dropout, attention_dropout=scratch.dropout, pad_token_id=pad_id,
                              **label_maps(labels))
    return DistilBertForSequenceClassification(config)


def is_local(checkpoint: str) -> bool:
    """An existing directory or anything spelled like a path, not a hub id."""
    return Path(checkpoint).expanduser().exists() or checkpoint.startswith(("/", "./", "../", "~"))


def head_names(config, head_label_map: dict[str, str]) -> tuple[str, ...]:
    """The names a checkpoint's classification head gives its outputs; generic ones through model.head_label_map."""
    names = tuple(config.id2label[i] for i in range(config.num_labels))
    unknown = sorted(set(head_label_map) - set(names))
    if unknown:
        raise ConfigError("model.head_label_map", f"{unknown} are not labels of the checkpoint's head ({list(names)})")
    return tuple(head_label_map.get(name, name) for name in names)


def pretrained(checkpoint: str, revision: str, labels: tuple[str, ...], head_label_map: dict[str, str]):
    """The checkpoint with a classification head for `labels`, the names of the weights created here, and the
    checkpoint's resolved commit (hub) or content hash (local directory)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    # transformers would otherwise, for revision main and a checkpoint without safetensors, load a conversion bot's
    # weights from refs/pr/N: another revision than the one asked for
    os.environ["DISABLE_SAFETENSORS_CONVERSION"] = "1"
    local, path = is_local(checkpoint), Path(checkpoint).expanduser()
    if local and not (path / "config.json").exists():
        raise DataError(f"model.checkpoint: no checkpoint at {checkpoint} (expected a directory with config.json "
                        "and .safetensors weights)")
    if local and not any(path.glob("*.safetensors")):
        raise DataError(f"model.checkpoint: {checkpoint} has no .safetensors weights (only those are loaded: a "
                        "pickle can run code); convert it: load it with transformers and save_pretrained it")
    where = "the local directory" if local else f"the Hugging Face Hub (revision {revision})"
    failed = f"model.checkpoint: could not load {checkpoint!r} from {where}"
    try:
        config = AutoConfig.from_pretrained(checkpoint, revision=revision, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, revision=revision, trust_remote_code=False)
    except (OSError, ValueError, ImportError, KeyError) as exc:
        raise DataError(f"{failed}: {' '.join(str(exc).split())[:300]}; {OFFLINE_HINT}") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    if type(config) not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:
        raise DataError(f"model.checkpoint: {checkpoint} is a {config.model_type} model, for which transformers has "
                        "no sequence-classification model; use a checkpoint of an architecture that has one")
    kept_head = False
    if any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])):
        if config.num_labels != len(labels):
            check_labels(config, labels, f"model.checkpoint {checkpoint}")  # refused: another task's head
        generic = all(config.id2label[i] == f"LABEL_{i}" for i in range(config.num_labels))
        if generic and not head_label_map:
            log.info("model.checkpoint %s: its head has generic labels %s: re-initialized (set model.head_label_map "
                     "to keep it)", checkpoint, list(config.id2label.values()))
        else:
            config.id2label = dict(enumerate(head_names(config, head_label_map)))
            check_labels(config, labels, f"model.checkpoint {checkpoint}")  # by name, in data.labels' order
            kept_head = True
    elif head_label_map:
        raise ConfigError("model.head_label_map", f"{checkpoint} has no classification head (its config.json names "
                                                  "no *ForSequenceClassification architecture); empty the map")
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            checkpoint, revision=revision, use_safetensors=True, trust_remote_code=False, output_loading_info=True,
            **label_maps(labels))
    except OSError as exc:
        raise DataError(f"{failed}: {' '.join(str(exc).split())[:300]}; {OFFLINE_HINT}") from None
    except ValueError as exc:
        raise DataError(f"{failed}: {' '.join(str(exc).split())[:300]}") from None
    if info["mismatched_keys"]:
        raise DataError(f"model.checkpoint: {checkpoint} has weights of the wrong shape: {info['mismatched_keys']}")
    unused = sorted(info["unexpected_keys"])
    if unused:
        log.info("not used from the checkpoint (no classification task needs them): %s", ", ".join(unused))
    created = set(info["missing_keys"])
    head = {f"{m}.{p}" for m in head_modules(model) for p, _ in model.get_submodule(m).named_parameters()}
    # a pooler inside the base model (BERT's) is part of the head for this task; an MLM-only checkpoint lacks it
    absent = sorted(k for k in created - head if "pooler" not in k.split(".")[:-1])
    if absent:  # drawn at random they would make a pretrained run train from scratch without a word
        params = dict(model.named_parameters())
        share = sum(params[k].numel() for k in absent if k in params) / model.num_parameters()
        raise DataError(f"model.checkpoint: {checkpoint} lacks {len(absent)} weights of {type(model).__name__} "
                        f"outside its classification head ({share:.0%} of the parameters, e.g. "
                        f"{', '.join(absent[:3])}): they would be random, not pretrained; use a checkpoint saved with "
                        "save_pretrained by this architecture (weight names without a wrapper's prefix)")
    if model.config.problem_type not in (None, "single_label_classification"):  # a kept head's own task
        log.info("the checkpoint's problem_type %s is replaced by single_label_classification (one label per text, "
                 "cross-entropy loss)", model.config.problem_type)
        model.config.problem_type = "single_label_classification"
    if not kept_head:  # a head under assumed names is never reused
        created |= head
        draw_weights(model, sorted(created))
    text = model.config.get_text_config()  # composite configs (Gemma 3) keep the pad id there
    if text.pad_token_id is not None and not 0 <= text.pad_token_id < len(tokenizer):
        log.info("config.json's pad_token_id %s is no token of the tokenizer: ignored", text.pad_token_id)
        text.pad_token_id = None  # old Llama conversions: -1
    if tokenizer.pad_token is None and text.pad_token_id is not None:  # the checkpoint's config names it
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(text.pad_token_id)
    if tokenizer.pad_token is None:  # decoders (Llama, Gemma): pad with the end-of-sequence token
        if tokenizer.eos_token is None:
            raise DataError(f"model.checkpoint: {checkpoint}'s tokenizer has neither a pad nor an end-of-sequence "
                            "token; add a pad token to the checkpoint's tokenizer")
        tokenizer.pad_token = tokenizer.eos_token
        log.info("the tokenizer has no pad token: padding with its end-of-sequence token %r", tokenizer.eos_token)
    if text.pad_token_id is None:  # the classifier of a decoder reads the last token before padding
        text.pad_token_id = tokenizer.pad_token_id
    elif text.pad_token_id != tokenizer.pad_token_id:  # padded positions would be read as text
        raise DataError(f"model.checkpoint: {checkpoint}'s config.json has pad_token_id {text.pad_token_id} "
                        f"but its tokenizer pads with {tokenizer.pad_token!r} (id {tokenizer.pad_token_id}); make "
                        "them agree in the checkpoint")
    if local:
        identity = content_hash(sorted(p for p in path.rglob("*") if p.is_file()), path)
    else:  # the commit the revision resolved to: the snapshot the library read config.json from
        from transformers.utils.hub import cached_file, extract_commit_hash

        identity = extract_commit_hash(cached_file(checkpoint, "config.json", revision=revision), None)
    return model, tokenizer, sorted(created), identity


def main(args, cfg: Config) -> None:
    quiet_transformers()
    log_params("base", model=asdict(cfg.model), data={"labels": cfg.data.labels})
    torch.manual_seed(cfg.model.init_seed)  # the weights created here: all (scratch) or the new head
    # a hub revision only: recorded for a local directory, it would change the base (and retrain) for nothing
    revision = None if cfg.model.is_scratch or is_local(cfg.model.checkpoint) else cfg.model.revision
    if cfg.model.is_scratch:
        pool = read_parquet(args.pool, "training pool")
        tokenizer = train_tokenizer(pool["text"].tolist(), cfg.model.scratch.vocab_size)
        model = scratch_model(cfg.model.scratch, len(tokenizer), tokenizer.pad_token_id, cfg.data.labels)
        log.info("scratch DistilBERT: %d parameters, vocabulary %d (trained on %d pool texts)",
                 model.num_parameters(), len(tokenizer), len(pool))
    else:
        model, tokenizer, created, commit = pretrained(cfg.model.checkpoint, cfg.model.revision, cfg.data.labels,
                                                       cfg.model.head_label_map)
        log.info("loaded %s (%s): %d parameters; created for the %d labels: %s", cfg.model.checkpoint,
                 f"revision {revision}" if revision else "a local directory: no revision applied",
                 model.num_parameters(), len(cfg.data.labels), ", ".join(created) or "nothing")
    # how it was loaded (HF_HUB_OFFLINE), not what it is: the same base online and offline
    tokenizer.init_kwargs.pop("local_files_only", None)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    # the resolved commit (hub) or content hash (local) of the checkpoint: training runs record it as provenance
    write_json({"scratch": cfg.model.is_scratch, "created_weights": [] if cfg.model.is_scratch else created,
                "init_seed": cfg.model.init_seed, "checkpoint": cfg.model.checkpoint, "revision": revision,
                "commit": None if cfg.model.is_scratch else commit}, Path(args.out) / INIT_RECORD)
    log.info("wrote base checkpoint to %s", args.out)


def cli(argv: list[str] | None = None) -> None:
    run_stage("base", main, stage_parser(__doc__.splitlines()[0], "pool", "out"), argv)


if __name__ == "__main__":
    cli()
