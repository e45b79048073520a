import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import headless_bert, stage_error, with_defaults, write_params

from crossling import base
from crossling.common import DataError, content_hash
from crossling.config import ConfigError, ScratchConfig

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


def run_base(tmp_path, checkpoint, pool_texts=("good day", "bad day", "a day") * 10, revision="main", out="base"):
    pool = tmp_path / "pool.parquet"
    pd.DataFrame({"text": list(pool_texts)}).to_parquet(pool)
    params = write_params(tmp_path / "params.yaml", with_defaults(
        {"model": {"checkpoint": str(checkpoint), "revision": revision, "scratch": dataclasses.asdict(TINY)},
         "train": {"max_length": 32}}))
    out = tmp_path / out
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
        base.pretrained(str(two), "main", LABELS, {})


def test_unreachable_hub_points_offline():
    # HF_HUB_OFFLINE=1 (conftest) makes every hub lookup fail as it does without network.
    with pytest.raises(DataError) as err:
        base.pretrained("distilbert-base-multilingual-cased", "main", LABELS, {})
    assert "Hugging Face Hub" in str(err.value) and "model.checkpoint=scratch" in str(err.value)


def test_a_checkpoint_spelled_like_a_path_is_local():
    assert not base.is_local("distilbert-base-multilingual-cased")
    assert not base.is_local("org/name")
    assert base.is_local("./models/x")
    assert base.is_local("/abs/path")


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
        base.pretrained(str(other), "main", LABELS, {})


def test_headless_checkpoint_gets_a_head_and_records_it(tmp_path, caplog, capfd):
    tok = base.train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    ckpt = headless_bert(tmp_path / "bert", tok)
    out = run_base(tmp_path, ckpt)
    record = json.loads((out / "crossling_init.json").read_text())
    assert record == {"scratch": False, "created_weights": ["classifier.bias", "classifier.weight"],
                      "init_seed": 42, "checkpoint": str(ckpt), "revision": None,  # a directory has no revisions
                      "commit": content_hash(sorted(p for p in ckpt.rglob("*") if p.is_file()), ckpt)}
    assert f"loaded {ckpt} (a local directory: no revision applied)" in caplog.text
    # a revision pinned for a hub id and left in place: the same base, so nothing retrains
    other = run_base(tmp_path, ckpt, revision="0123456789abcdef0123456789abcdef01234567", out="base_pinned")
    assert all((other / p.name).read_bytes() == p.read_bytes() for p in out.iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "positive", "1": "neutral", "2": "negative"}
    assert "created for the 3 labels: classifier.bias, classifier.weight" in caplog.text
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "Loading weights" not in err  # transformers' tables and bars are quiet


def fine_tuned(path, names=None):
    """A DistilBERT with a 3-way classification head, with generic label names unless `names` are given."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tok = base.train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    extra = {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}} if names else {}
    cfg = DistilBertConfig(vocab_size=len(tok), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                           max_position_embeddings=32, num_labels=3, **extra)
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, model.state_dict()


def test_head_with_generic_labels_is_reinitialized_never_reused(tmp_path, caplog):
    ckpt, saved = fine_tuned(tmp_path / "generic")
    model, _, created, _ = base.pretrained(str(ckpt), "main", LABELS, {})
    assert set(created) == {"pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"}
    assert not torch.equal(model.state_dict()["classifier.weight"], saved["classifier.weight"])
    assert torch.equal(model.state_dict()["distilbert.embeddings.word_embeddings.weight"],
                       saved["distilbert.embeddings.word_embeddings.weight"])
    assert "its head has generic labels ['LABEL_0', 'LABEL_1', 'LABEL_2']: re-initialized" in caplog.text


def test_head_with_generic_labels_is_kept_when_its_mapping_is_stated(tmp_path):
    ckpt, saved = fine_tuned(tmp_path / "generic")
    mapping = {"LABEL_0": "positive", "LABEL_1": "neutral", "LABEL_2": "negative"}
    model, _, created, _ = base.pretrained(str(ckpt), "main", LABELS, mapping)
    assert created == [] and torch.equal(model.state_dict()["classifier.weight"], saved["classifier.weight"])
    assert model.config.id2label == {0: "positive", 1: "neutral", 2: "negative"}
    swapped = {"LABEL_0": "negative", "LABEL_1": "neutral", "LABEL_2": "positive"}
    with pytest.raises(DataError, match=r"set data.labels to \['negative', 'neutral', 'positive'\]"):
        base.pretrained(str(ckpt), "main", LABELS, swapped)
    with pytest.raises(ConfigError, match="model.head_label_map: \\['LABEL_7'\\] are not labels"):
        base.pretrained(str(ckpt), "main", LABELS, {"LABEL_7": "positive"})


def test_head_with_our_names_is_kept(tmp_path):
    ckpt, saved = fine_tuned(tmp_path / "named", LABELS)
    model, _, created, _ = base.pretrained(str(ckpt), "main", LABELS, {})
    assert created == [] and torch.equal(model.state_dict()["classifier.weight"], saved["classifier.weight"])


def fake_hub_cache(hf_home: Path, repo: str, revisions: dict[str, Path], refs: dict[str, str]) -> None:
    """The Hugging Face cache layout (hub/models--org--name/{refs,snapshots}) holding `revisions` (sha -> files)."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    for sha, files in revisions.items():
        shutil.copytree(files, root / "snapshots" / sha)
    for ref, sha in refs.items():
        (root / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(sha)


def test_pinned_revision_loads_its_own_weights_from_the_hub_cache(tmp_path, monkeypatch):
    """A stand-in for the hub: the HF cache with HF_HUB_OFFLINE=1. The pinned revision's weights are loaded, never
    main's or a conversion bot's refs/pr/1; a revision without safetensors is refused, not replaced."""
    import huggingface_hub.constants
    import transformers.utils.hub

    old, new, pr = "a" * 40, "b" * 40, "c" * 40
    old_dir, old_state = fine_tuned(tmp_path / "old", LABELS)
    torch.manual_seed(1)
    new_dir, new_state = fine_tuned(tmp_path / "new", LABELS)
    bin_only = tmp_path / "bin_only"
    shutil.copytree(old_dir, bin_only)
    (bin_only / "model.safetensors").unlink()
    torch.save(old_state, bin_only / "pytorch_model.bin")
    hf_home = tmp_path / "hf"
    fake_hub_cache(hf_home, "org/tiny", {old: old_dir, new: new_dir, "d" * 40: bin_only, pr: new_dir},
                   {"main": new, "v1": old, "binonly": "d" * 40, "pr/1": pr})
    cache = str(hf_home / "hub")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", cache)
    monkeypatch.setattr(transformers.utils.hub, "HF_HUB_CACHE", cache, raising=False)
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", cache, raising=False)
    for revision, state, sha in ((old, old_state, old), ("v1", old_state, old), ("main", new_state, new)):
        model, _, _, commit = base.pretrained("org/tiny", revision, LABELS, {})
        assert torch.equal(model.state_dict()["classifier.weight"], state["classifier.weight"]) and commit == sha
    with pytest.raises(DataError, match="model.checkpoint: could not load 'org/tiny'.*safetensors"):
        base.pretrained("org/tiny", "binonly", LABELS, {})
    assert os.environ["DISABLE_SAFETENSORS_CONVERSION"] == "1"  # what makes transformers skip refs/pr/N for main


def test_a_checkpoint_missing_weights_outside_the_head_is_refused_a_missing_pooler_is_drawn(tmp_path):
    """transformers draws every weight a checkpoint lacks and goes on: a wrapper's prefixed names (or an encoder-only
    checkpoint of an encoder-decoder) would train from random weights while the results say pretrained."""
    from safetensors.torch import load_file, save_file

    tok = base.train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    ckpt = headless_bert(tmp_path / "bert", tok)
    weights = load_file(ckpt / "model.safetensors")
    prefixed = tmp_path / "prefixed"
    shutil.copytree(ckpt, prefixed)
    save_file({f"auto_model.{k}": v for k, v in weights.items()}, prefixed / "model.safetensors")
    with pytest.raises(DataError) as err:
        base.pretrained(str(prefixed), "main", LABELS, {})
    assert str(err.value).startswith(f"model.checkpoint: {prefixed} lacks ")
    assert re.search(r" \((9\d|100)% of the parameters, e\.g\. bert\.embeddings\.", str(err.value))
    no_pooler = tmp_path / "no_pooler"  # an MLM-only BERT: the pooler is drawn with the head
    shutil.copytree(ckpt, no_pooler)
    save_file({k: v for k, v in weights.items() if "pooler" not in k}, no_pooler / "model.safetensors")
    _, _, created, _ = base.pretrained(str(no_pooler), "main", LABELS, {})
    assert created == ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]


def test_what_a_checkpoint_brings_that_this_task_cannot_use_is_refused_or_set(tmp_path):
    from transformers import BertConfig, CLIPTextConfig

    tok = base.train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    ckpt = headless_bert(tmp_path / "bert", tok)
    with pytest.raises(ConfigError, match=r"model.head_label_map: .* has no classification head \(its config.json"):
        base.pretrained(str(ckpt), "main", LABELS, {"LABEL_0": "positive"})
    pickled = tmp_path / "pickled"  # weights only as pytorch_model.bin
    shutil.copytree(ckpt, pickled, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(DataError, match="has no .safetensors weights .*; convert it"):
        base.pretrained(str(pickled), "main", LABELS, {})
    clip = tmp_path / "clip"  # an architecture without a sequence-classification model
    shutil.copytree(ckpt, clip)
    CLIPTextConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=32).save_pretrained(clip)
    with pytest.raises(DataError, match="is a clip_text_model model, for which transformers has no sequence-"):
        base.pretrained(str(clip), "main", LABELS, {})
    pad = tmp_path / "pad"  # config and tokenizer disagree on the pad token
    shutil.copytree(ckpt, pad)
    BertConfig.from_pretrained(ckpt, pad_token_id=tok.pad_token_id + 1).save_pretrained(pad)
    with pytest.raises(DataError, match=r"config.json has pad_token_id 1 but its tokenizer pads with '\[PAD\]' \(id 0"):
        base.pretrained(str(pad), "main", LABELS, {})
    multi, _ = fine_tuned(tmp_path / "multi", LABELS)  # a kept head fine-tuned for another loss
    config = json.loads((multi / "config.json").read_text())
    (multi / "config.json").write_text(json.dumps(config | {"problem_type": "multi_label_classification"}))
    model, _, created, _ = base.pretrained(str(multi), "main", LABELS, {})
    assert created == [] and model.config.problem_type == "single_label_classification"


def test_a_head_label_map_for_the_scratch_model_is_refused(tmp_path, capsys):
    pd.DataFrame({"text": ["good day", "bad day"] * 10}).to_parquet(tmp_path / "pool.parquet")
    params = write_params(tmp_path / "params.yaml", with_defaults(
        {"model": {"checkpoint": "scratch", "scratch": dataclasses.asdict(TINY),
                   "head_label_map": {"LABEL_0": "positive"}}, "train": {"max_length": 32}}))
    with pytest.raises(SystemExit):
        base.cli(["--params", str(params), "--pool", str(tmp_path / "pool.parquet"), "--out", str(tmp_path / "base")])
    assert stage_error(capsys.readouterr().err).endswith(
        "model.head_label_map: the scratch model has no checkpoint head to name; empty the map")
    assert not (tmp_path / "base").exists()


def test_a_decoder_pads_with_the_id_its_config_names_if_it_is_a_token(tmp_path):
    """A tokenizer without a pad token takes the pad id config.json names; an id that is no token (-1, as old Llama
    conversions carry) is dropped for the end-of-sequence token, never kept beside it (the classifier would then
    read padded positions)."""
    import tiny_checkpoints

    ckpt = tiny_checkpoints.llama_without_pad(tmp_path / "llama")
    config = json.loads((ckpt / "config.json").read_text())
    for pad, token in ((0, "<s>"), (-1, "</s>")):
        (ckpt / "config.json").write_text(json.dumps(config | {"pad_token_id": pad}))
        model, tokenizer, _, _ = base.pretrained(str(ckpt), "main", LABELS, {})
        assert tokenizer.pad_token == token and model.config.pad_token_id == tokenizer.pad_token_id
