import dataclasses
import json

import pandas as pd
import pytest
from conftest import headless_bert, stage_error, with_defaults, write_params

from crossling import base
from crossling.common import DataError
from crossling.config import ScratchConfig

LABELS = ("positive", "neutral", "negative")
TINY = ScratchConfig(vocab_size=200, dim=16, layers=1, heads=2, hidden_dim=32, max_position_embeddings=32, dropout=0.1)


def test_scratch_tokenizer_learns_only_the_pool():
    pool = ["wonderful movie"] * 5 + ["terrible phone"] * 5 + ["ok"] * 5
    tok = base.train_tokenizer(pool, vocab_size=200)
    assert "wonderful" in tok.get_vocab()
    assert "zebracorn" not in tok.get_vocab()  # a test-only word cannot be in the vocabulary
    ids = tok("wonderful movie")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id


def test_scratch_model_is_deterministic_and_has_our_labels():
    tok = base.train_tokenizer(["a b c d e f"] * 10, vocab_size=200)
    import torch

    torch.manual_seed(1)
    m1 = base.scratch_model(TINY, len(tok), tok.pad_token_id, LABELS)
    torch.manual_seed(1)
    m2 = base.scratch_model(TINY, len(tok), tok.pad_token_id, LABELS)
    assert m1.config.id2label == {0: "positive", 1: "neutral", 2: "negative"}
    for (_, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert (a == b).all()


def run_base(tmp_path, checkpoint, pool_texts=("good day", "bad day", "a day") * 10):
    pool = tmp_path / "pool.parquet"
    pd.DataFrame({"text": list(pool_texts)}).to_parquet(pool)
    params = write_params(tmp_path / "params.yaml", with_defaults(
        {"model": {"checkpoint": str(checkpoint), "scratch": dataclasses.asdict(TINY)}, "train": {"max_length": 32}}))
    out = tmp_path / "base"
    base.cli(["--params", str(params), "--pool", str(pool), "--out", str(out)])
    return out


def test_scratch_base_is_saved_as_safetensors(tmp_path):
    out = run_base(tmp_path, "scratch")
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "tokenizer.json" in names and "config.json" in names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)


def test_local_checkpoint_directory_works(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_base(tmp_path / "a", "scratch")
    out = run_base(tmp_path / "b", first)
    assert (out / "model.safetensors").exists()


def test_missing_local_checkpoint_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_base(tmp_path, tmp_path / "no_such_model")
    assert exit_.value.code == 2
    err = stage_error(capsys.readouterr().err)
    assert "model.checkpoint: no checkpoint at" in err
    assert not (tmp_path / "base").exists()


def test_checkpoint_with_other_label_count_is_refused(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tok = base.train_tokenizer(["good bad"] * 10, vocab_size=200)
    cfg = DistilBertConfig(vocab_size=len(tok), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                           max_position_embeddings=32, num_labels=2)
    two = tmp_path / "two_labels"
    DistilBertForSequenceClassification(cfg).save_pretrained(two)
    tok.save_pretrained(two)
    with pytest.raises(DataError, match="has 2 labels .* data.labels has 3"):
        base.pretrained(str(two), "main", LABELS)


def test_unreachable_hub_points_offline():
    # HF_HUB_OFFLINE=1 (conftest) makes every hub lookup fail as it does without network.
    with pytest.raises(DataError) as err:
        base.pretrained("distilbert-base-multilingual-cased", "main", LABELS)
    assert "Hugging Face Hub" in str(err.value) and "model.checkpoint=scratch" in str(err.value)


def test_checkpoint_location():
    assert base.checkpoint_location("distilbert-base-multilingual-cased") == "hub"
    assert base.checkpoint_location("org/name") == "hub"
    assert base.checkpoint_location("./models/x") == "local"
    assert base.checkpoint_location("/abs/path") == "local"


def test_tokenizer_training_is_deterministic():
    # tokenizers' own WordPieceTrainer differs run to run (huggingface/tokenizers#1794); ours must not.
    from conftest import synthetic_rows

    texts = [r["text"] for lang in ("english", "french", "malay") for r in synthetic_rows(lang, "train", 60)]
    texts += ["購入後2週間もたたないうちに剥がれた", "とても良い商品です", "普通です"] * 3
    first = base.train_tokenizer(texts, vocab_size=150).backend_tokenizer.to_str()
    for _ in range(3):
        assert base.train_tokenizer(texts, vocab_size=150).backend_tokenizer.to_str() == first
    tok = base.train_tokenizer(texts, vocab_size=150)
    assert len(tok) <= 150
    assert tok.unk_token_id not in tok("en really great film")["input_ids"]  # every seen character is covered


def test_checkpoint_with_other_label_names_is_refused(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tok = base.train_tokenizer(["good bad"] * 10, vocab_size=200)
    names = {0: "negative", 1: "positive", 2: "mixed"}
    cfg = DistilBertConfig(vocab_size=len(tok), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                           max_position_embeddings=32, num_labels=3, id2label=names,
                           label2id={v: k for k, v in names.items()})
    other = tmp_path / "other_labels"
    DistilBertForSequenceClassification(cfg).save_pretrained(other)
    tok.save_pretrained(other)
    with pytest.raises(DataError, match="would be read with the wrong names"):
        base.pretrained(str(other), "main", LABELS)


def test_headless_checkpoint_gets_a_head_and_records_it(tmp_path, caplog, capfd):
    tok = base.train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    ckpt = headless_bert(tmp_path / "bert", tok)
    out = run_base(tmp_path, ckpt)
    record = json.loads((out / "crossling_init.json").read_text())
    assert record == {"scratch": False, "created_weights": ["classifier.bias", "classifier.weight"]}
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "positive", "1": "neutral", "2": "negative"}
    assert "created for the 3 labels: classifier.bias, classifier.weight" in caplog.text
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "Loading weights" not in err  # transformers' tables and bars are quiet
