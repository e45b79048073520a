"""Device and precision choice, decided from a device's properties, so every case is tested on CPU."""

import pytest
import torch

from crossling.config import ConfigError
from crossling.modeling import DeviceInfo, check_device, choose_precision, inference_device, one_device_per_process

H100 = DeviceInfo("cuda", "NVIDIA H100", (9, 0))
A100 = DeviceInfo("cuda", "NVIDIA A100", (8, 0))
T4 = DeviceInfo("cuda", "Tesla T4", (7, 5))  # torch.cuda.is_bf16_supported() says yes here (emulated)
V100 = DeviceInfo("cuda", "Tesla V100", (7, 0))
MAC_14 = DeviceInfo("mps", "Apple MPS", mps_bf16=True)
MAC_13 = DeviceInfo("mps", "Apple MPS", mps_bf16=False)
CPU = DeviceInfo("cpu", "CPU")


@pytest.mark.parametrize("info, expected", [
    (H100, "bf16"), (A100, "bf16"), (T4, "fp16"), (V100, "fp16"), (MAC_14, "fp32"), (MAC_13, "fp32"), (CPU, "fp32"),
])
def test_auto_precision_fits_the_device(info, expected):
    assert choose_precision("auto", info) == expected


@pytest.mark.parametrize("requested, info", [
    ("fp32", H100), ("fp32", T4), ("fp32", CPU), ("fp32", MAC_13), ("bf16", A100), ("fp16", H100), ("fp16", T4),
    ("bf16", MAC_14), ("fp16", MAC_13), ("bf16", CPU),
])
def test_explicit_precision_the_device_serves(requested, info):
    assert choose_precision(requested, info) == requested


@pytest.mark.parametrize("requested, info, fragment", [
    ("bf16", T4, "compute capability 7.5 < 8.0"),
    ("bf16", V100, "compute capability 7.0 < 8.0"),
    ("bf16", MAC_13, "needs macOS 14"),
    ("fp16", CPU, "needs a CUDA or MPS device"),
])
def test_precision_the_device_cannot_serve_is_a_one_line_error(requested, info, fragment):
    with pytest.raises(ConfigError) as err:
        choose_precision(requested, info)
    assert err.value.field == "train.precision"
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("requested, found", [("auto", "cpu"), ("auto", "cuda"), ("auto", "mps"), ("cpu", "cpu"),
                                              ("cuda", "cuda"), ("mps", "mps")])
def test_device_the_libraries_found_is_used(requested, found):
    assert check_device(requested, torch.device(found)).type == found


@pytest.mark.parametrize("requested, found", [("cuda", "cpu"), ("mps", "cpu"), ("cuda", "mps"), ("mps", "cuda")])
def test_missing_device_is_refused_never_replaced(requested, found):
    with pytest.raises(ConfigError) as err:
        check_device(requested, torch.device(found))
    assert err.value.field == "train.device"
    assert f"{requested} was requested but the libraries found only {found}" in str(err.value)


def test_this_machine_through_accelerate():
    assert inference_device("cpu", "auto") == (torch.device("cpu"), "fp32")
    if not torch.cuda.is_available():  # the CI machines
        with pytest.raises(ConfigError, match="train.device: cuda was requested"):
            inference_device("cuda", "auto")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="train.device: mps was requested"):
            inference_device("mps", "auto")


@pytest.mark.parametrize("processes, visible, expected", [
    (1, None, "0"), (1, "2,3", "2"), (1, "1", "1"), (1, "", ""), (2, None, None), (2, "0,1", "0,1"),
])
def test_one_process_sees_one_gpu(processes, visible, expected):
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    one_device_per_process(env, processes)
    assert env.get("CUDA_VISIBLE_DEVICES") == expected


def test_the_thread_count_is_recorded_on_cpu_only(monkeypatch):
    """CPU results differ in the last bits between thread counts; a GPU run's do not depend on the node's cores."""
    from crossling import modeling

    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # what configure_threads set
    assert modeling.provenance(torch.device("cpu"), "fp32", {})["cpu_threads"] == 3
    monkeypatch.setattr(modeling, "device_info", lambda device: H100)
    assert modeling.provenance(torch.device("cuda"), "bf16", {})["cpu_threads"] is None


def test_a_model_without_a_position_limit_takes_any_length():
    """T5's relative positions and BLOOM's ALiBi have no max_position_embeddings, XLNet's is -1: nothing bounds
    train.max_length there (reading the entry once crashed train, predict and classify on them)."""
    from transformers import (BertConfig, BertForSequenceClassification, BloomConfig, BloomForSequenceClassification,
                              T5Config, T5ForSequenceClassification, XLNetConfig, XLNetForSequenceClassification)

    from crossling.modeling import check_max_length, usable_length

    unbounded = [T5ForSequenceClassification(T5Config(vocab_size=50, d_model=8, d_kv=4, d_ff=16, num_layers=1,
                                                      num_heads=2, num_labels=3)),
                 BloomForSequenceClassification(BloomConfig(vocab_size=50, hidden_size=8, n_layer=1, n_head=2,
                                                            num_labels=3)),
                 XLNetForSequenceClassification(XLNetConfig(vocab_size=50, d_model=8, n_layer=1, n_head=2, d_inner=16,
                                                            num_labels=3))]
    for model in unbounded:
        assert usable_length(model) is None
        check_max_length(model, 4096)
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=16,
                                                    max_position_embeddings=32))
    assert usable_length(bert) == 32
    with pytest.raises(Exception, match="train.max_length=33 exceeds the 32 positions"):
        check_max_length(bert, 33)


def test_dev_scores_take_the_logits_of_an_encoder_decoder():
    """T5ForSequenceClassification's evaluation returns (logits, encoder states): the dev scores keep the logits."""
    from crossling.train import logits_only

    logits, states = torch.zeros(4, 3), torch.zeros(4, 5, 8)
    assert logits_only((logits, states), None) is logits and logits_only(logits, None) is logits


def test_a_model_whose_tokenizer_cannot_pad_is_one_line(tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from crossling.base import train_tokenizer
    from crossling.common import DataError
    from crossling.modeling import load_classifier

    tok = train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    tok.pad_token = None
    GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_embd=8, n_layer=1, n_head=2, n_positions=32,
                                             num_labels=3, pad_token_id=None)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(DataError, match="neither its tokenizer nor its config.json names a pad token; run it through"):
        load_classifier(tmp_path)


def test_a_cpu_request_does_not_fix_the_device_of_later_requests(monkeypatch):
    """accelerate's state is process-wide: a first `cpu` once made a later `auto` CPU on a GPU machine (a notebook
    calling classify twice), and a later `cuda` an error."""
    from accelerate import PartialState

    for name, fake in (("is_available", lambda: True), ("device_count", lambda: 1),
                       ("get_device_name", lambda *a: "NVIDIA H100"), ("get_device_capability", lambda *a: (9, 0))):
        monkeypatch.setattr(torch.cuda, name, fake)
    PartialState._reset_state()
    try:
        assert inference_device("cpu", "auto") == (torch.device("cpu"), "fp32")
        device, precision = inference_device("auto", "auto")
        assert (device.type, precision) == ("cuda", "bf16")
        assert inference_device("cpu", "auto") == (torch.device("cpu"), "fp32")
    finally:
        PartialState._reset_state()


def test_non_finite_logits_are_refused_not_read_as_the_first_label():
    """fp16 overflow (T5 family) gives NaN probabilities, whose argmax is label 0: a silent 'collapse'."""
    from transformers import BertConfig, BertForSequenceClassification

    from crossling.base import train_tokenizer
    from crossling.common import DataError
    from crossling.modeling import predict_proba

    tok = train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(tok), hidden_size=8, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=16, num_labels=3,
                                                     max_position_embeddings=32))
    texts = ["good day", "bad day", "a day"]
    assert predict_proba(model, tok, texts, 16, 2, torch.device("cpu"), "fp32").shape == (3, 3)
    with torch.no_grad():
        model.classifier.bias[1:] = float("inf")
    with pytest.raises(DataError, match="^the model gives non-finite logits \\(NaN or inf\\) under fp32 for 2 of 2 "
                                        "texts in a batch; check its training log for a non-finite loss$"):
        predict_proba(model, tok, texts, 16, 2, torch.device("cpu"), "fp32")
    with pytest.raises(DataError) as err:
        predict_proba(model, tok, texts, 16, 2, torch.device("cpu"), "bf16")
    assert str(err.value).endswith("under bf16 for 2 of 2 texts in a batch; predict in fp32 (classify --precision "
                                   "fp32; in the pipeline train.precision: fp32, which trains again too) or check "
                                   "its training log for a non-finite loss")
