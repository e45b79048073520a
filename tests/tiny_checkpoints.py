"""Tiny random-weight checkpoints of the architectures users bring, saved as a user's download would look
(`save_pretrained` of a base model and its tokenizer): hidden size 32, 2 layers, vocabularies learned from the
synthetic texts of conftest. docs/checkpoints.md lists what each needs."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import synthetic_rows

LANGS = ("english", "french", "german")
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def texts() -> list[str]:
    return [r["text"] for lang in LANGS for split in ("train", "test") for r in synthetic_rows(lang, split, 40)]


def unigram(specials: list[str], unk: str, vocab_size: int = 300):
    """A Unigram (SentencePiece-style) tokenizer, as XLM-R and mDeBERTa ship."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts(), trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                            unk_token=unk, show_progress=False))
    return tok


def xlm_roberta(path: Path) -> Path:
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    tok = unigram(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>")
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    # RoBERTa positions start after the pad id: 34 embeddings take 32 tokens
    cfg = XLMRobertaConfig(vocab_size=len(fast), max_position_embeddings=34, pad_token_id=1, **SMALL)
    XLMRobertaModel(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def bert_style_unigram():
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = unigram(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]",
                                   pad_token="[PAD]", mask_token="[MASK]")


def deberta_v2(path: Path) -> Path:
    from transformers import DebertaV2Config, DebertaV2Model

    fast = bert_style_unigram()
    cfg = DebertaV2Config(vocab_size=len(fast), max_position_embeddings=64, relative_attention=True,
                          position_buckets=16, pos_att_type=["p2c", "c2p"], position_biased_input=False,
                          pad_token_id=fast.pad_token_id, **SMALL)
    DebertaV2Model(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def modernbert_bare(path: Path) -> Path:
    """ModernBERT saved as a bare ModernBertModel: its head (dense + LayerNorm) is created by the base stage."""
    from transformers import ModernBertConfig, ModernBertModel

    from crossling.base import train_tokenizer

    tok = train_tokenizer(texts(), vocab_size=300)
    cfg = ModernBertConfig(vocab_size=len(tok), max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                           cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                           bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                           global_attn_every_n_layers=2, local_attention=16, **SMALL)
    ModernBertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def llama_without_pad(path: Path) -> Path:
    """A Llama-style decoder with a byte-level BPE tokenizer that has no pad token (as Llama and Gemma ship)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts(), trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                         show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    assert fast.pad_token is None
    cfg = LlamaConfig(vocab_size=len(fast), max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
                      pad_token_id=None, num_key_value_heads=1, **SMALL)
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def sentencepiece_only(path: Path) -> Path:
    """A DeBERTa-v2 checkpoint that ships only a SentencePiece model file (spm.model), no tokenizer.json."""
    import sentencepiece as spm
    from transformers import DebertaV2Config, DebertaV2Model

    path.mkdir(parents=True, exist_ok=True)
    corpus = path.parent / f"{path.name}_corpus.txt"
    corpus.write_text("\n".join(texts()) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(path / "spm"), vocab_size=60, hard_vocab_limit=False,
                                   model_type="unigram", pad_id=0, unk_id=3, bos_id=1, eos_id=2,
                                   pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]",
                                   user_defined_symbols=["[MASK]"], minloglevel=2, num_threads=1)
    (path / "spm.vocab").unlink()
    (path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False, "vocab_file": "spm.model",
         "bos_token": "[CLS]", "eos_token": "[SEP]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]",
         "pad_token": "[PAD]", "mask_token": "[MASK]", "split_by_punct": False}))
    cfg = DebertaV2Config(vocab_size=64, max_position_embeddings=64, relative_attention=True, position_buckets=16,
                          pos_att_type=["p2c", "c2p"], position_biased_input=False, pad_token_id=0, **SMALL)
    DebertaV2Model(cfg).save_pretrained(path)
    return path


def mt5(path: Path) -> Path:
    """An mT5-style encoder-decoder: relative positions (no max_position_embeddings) and an evaluation that returns
    the encoder's states beside the logits."""
    from tokenizers import processors
    from transformers import MT5Config, MT5ForConditionalGeneration, PreTrainedTokenizerFast

    tok = unigram(["<pad>", "</s>", "<unk>"], "<unk>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    cfg = MT5Config(vocab_size=len(fast), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    MT5ForConditionalGeneration(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


BUILDERS = {"xlm_roberta": xlm_roberta, "deberta_v2": deberta_v2, "modernbert_bare": modernbert_bare,
            "llama_without_pad": llama_without_pad, "sentencepiece_only": sentencepiece_only, "mt5": mt5}
