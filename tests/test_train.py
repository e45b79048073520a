import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
import torch
from conftest import make_csv_source, run_download, tiny_params, write_params

from crossling import base, combine, predict, sample, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Data stages and a tiny scratch base on synthetic data, shared by this module's tests."""
    d = tmp_path_factory.mktemp("train")
    src = make_csv_source(d / "source", pool_per_class=40, test_per_class=15)
    params = write_params(d / "params.yaml", tiny_params(src, sizes=(12, 30), train__epochs=20))
    run_download(params, d / "raw.parquet")
    combine.cli(["--params", str(params), "--raw", str(d / "raw.parquet"), "--pool", str(d / "pool.parquet"),
                 "--dev", str(d / "dev"), "--test", str(d / "test.parquet"), "--metrics", str(d / "data.json"),
                 "--plot-json", str(d / "dist.json"), "--plot-png", str(d / "dist.png")])
    sample.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(d / "samples")])
    base.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(d / "base")])
    return d, params


def run_train(d, params, name, sample_size=30, language=None, extra=()):
    """The train stage, then the predict stage on its model, as dvc.yaml runs them."""
    args = ["--params", str(params), "--name", name, "--sample", str(d / "samples" / "seed42" / f"sample_{sample_size}.parquet"),
            "--base", str(d / "base"), "--out", str(d / "models" / name), "--live", str(d / "logs" / name)]
    if language:
        args += ["--language", language]
    train.cli(args + list(extra))
    predict.cli(["--params", str(params), "--model", str(d / "models" / name), "--test", str(d / "test.parquet"),
                 "--out", str(d / "predictions" / f"{name}.parquet")])
    return pd.read_parquet(d / "predictions" / f"{name}.parquet")


def test_joint_model_outputs(prepared, capsys):
    d, params = prepared
    preds = run_train(d, params, "joint_30")
    from crossling import classify

    capsys.readouterr()
    classify.main(["--model", str(d / "models" / "joint_30"), "--device", "cpu", "a text"])
    assert "training record" not in capsys.readouterr().err  # a trained model: no warning
    # an argument's invalid bytes reach Python as surrogates (os.fsdecode), which once ended in a tokenizer traceback
    with pytest.raises(SystemExit) as exit_:
        classify.main(["--model", str(d / "models" / "joint_30"), "--device", "cpu", "fine", os.fsdecode(b"bad \xff")])
    assert exit_.value.code == 2 and capsys.readouterr().err == (
        "crossling.classify: error: text argument 2 is not valid UTF-8 (byte 0xff at character 4); pass UTF-8 text, "
        "or a UTF-8 file with --file\n")
    # auto beside a GPU this torch cannot use: refused before the model is loaded, named after the option
    from crossling import devices

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(devices, "_cuda_built", lambda: True)
        mp.setenv("CUDA_VISIBLE_DEVICES", "0")
        mp.setattr(classify, "load_classifier", None)  # not reached
        with pytest.raises(SystemExit) as exit_:
            classify.main(["--model", str(d / "models" / "joint_30"), "a text"])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.startswith("crossling.classify: error: --device: auto found no usable GPU, but ")
        with pytest.raises(SystemExit) as exit_:  # the predict stage too (params: train.device auto)
            predict.cli(["--params", str(params), "--model", str(d / "models" / "joint_30"),
                         "--test", str(d / "test.parquet"), "--out", str(d / "unused.parquet")])
    assert exit_.value.code == 2 and "train.device: auto found no usable GPU" in capsys.readouterr().err
    assert not (d / "unused.parquet").exists()
    # a reader that stops early (| head -1) ends it quietly, not with a BrokenPipeError traceback
    texts = d / "texts.txt"
    texts.write_text("a good text\n" * 20000, encoding="utf-8")
    import subprocess
    import sys

    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "crossling.classify", "--model", str(d / "models" / "joint_30"),
                             "--device", "cpu", "--file", str(texts)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    assert proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0 and "Traceback" not in proc.stderr.read().decode()
    files = {p.name for p in (d / "models" / "joint_30").iterdir()}
    # what from_pretrained needs, nothing more (no optimizer state, no training args)
    assert files == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    schema = pq.read_schema(d / "predictions" / "joint_30.parquet")
    assert schema.equals(predict.prediction_schema(("positive", "neutral", "negative")))
    test = pd.read_parquet(d / "test.parquet")
    assert len(preds) == len(test)
    assert (preds["label_id"].to_numpy() == test["label_id"].to_numpy()).all()
    probs = preds[["prob_positive", "prob_neutral", "prob_negative"]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-5
    assert (probs.argmax(axis=1) == preds["pred_id"].to_numpy()).all()
    loss = pd.read_csv(d / "logs" / "joint_30" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert len(loss) >= 2 and not (d / "logs" / "joint_30" / "dvc.yaml").exists()


def test_model_learns_the_synthetic_task(prepared):
    d, params = prepared
    preds = run_train(d, params, "joint_learn")
    accuracy = (preds["pred_id"] == preds["label_id"]).mean()
    assert accuracy > 0.5  # chance is 1/3


def test_same_params_same_predictions(prepared):
    d, params = prepared
    a = run_train(d, params, "repeat_a", sample_size=12)
    b = run_train(d, params, "repeat_b", sample_size=12)
    assert a.equals(b)
    ma = (d / "models" / "repeat_a" / "model.safetensors").read_bytes()
    assert ma == (d / "models" / "repeat_b" / "model.safetensors").read_bytes()


def test_mono_trains_on_one_language_and_predicts_all(prepared, caplog):
    d, params = prepared
    preds = run_train(d, params, "mono_french", language="french")
    assert set(preds["language"]) == {"english", "french"}
    assert "30 training examples ({'french': 30})" in caplog.text
    assert 'train mono_french params: {"data": {"labels"' in caplog.text  # the log says what produced it


def test_unknown_mono_language_fails_cleanly(prepared, capsys):
    d, params = prepared
    with pytest.raises(SystemExit) as exit_:
        run_train(d, params, "mono_hindi", language="hindi")
    assert exit_.value.code == 2
    assert "'hindi' has no rows in the sample" in capsys.readouterr().err
    assert not (d / "models" / "mono_hindi").exists()


def finite_loss_guard():
    return next(cb for cb in train.callbacks("joint_30_seed1", "logs", ["english"], {}, first=False)
                if type(cb).__name__ == "FiniteLoss")


@pytest.mark.parametrize("loss", [float("nan"), float("inf")])
def test_non_finite_training_loss_stops_training_in_one_line(loss):
    from types import SimpleNamespace

    from crossling.common import DataError

    guard, model = finite_loss_guard(), torch.nn.Linear(2, 2)
    state, args = SimpleNamespace(global_step=7), SimpleNamespace(learning_rate=3e-4, fp16=False)
    guard.on_log(args, state, None, logs={"loss": 1.09}, model=model)  # a finite loss passes
    with pytest.raises(DataError, match=rf"joint_30_seed1: the training loss is {loss} at optimizer step 7; "
                                        r"lower train.learning_rate \(now 0.0003\)"):
        guard.on_log(args, state, None, logs={"loss": loss}, model=model)  # fp32 or bf16: the weights are poisoned


def test_under_fp16_one_overflowed_log_is_reported_and_two_in_a_row_or_broken_weights_stop(caplog):
    """Under fp16 the gradient scaler skips a step whose forward pass overflowed: the weights stay finite and the run
    recovers, so one non-finite log is a warning; a second log in a row, counted across a resume, or non-finite
    weights stop the run."""
    from types import SimpleNamespace

    from crossling.common import DataError

    guard, model = finite_loss_guard(), torch.nn.Linear(2, 2)
    args, nan = SimpleNamespace(learning_rate=3e-4, fp16=True), float("nan")
    for step, loss in ((2, nan), (4, 1.09), (6, nan)):
        guard.on_log(args, SimpleNamespace(global_step=step), None, logs={"loss": loss}, model=model)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w.split(":")[1] for w in warnings] == [" the training loss is nan at optimizer step 2",
                                                   " the training loss is nan at optimizer step 6"]
    with pytest.raises(DataError, match="the training loss is nan at optimizer step 8;"):
        guard.on_log(args, SimpleNamespace(global_step=8), None, logs={"loss": nan}, model=model)
    resumed = finite_loss_guard()  # from a checkpoint whose last log was the one at step 6
    resumed.on_train_begin(args, SimpleNamespace(log_history=[{"loss": 1.09, "step": 4}, {"loss": nan, "step": 6},
                                                               {"eval_macro_f1_english": 0.4, "step": 6}]), None)
    with pytest.raises(DataError, match="the training loss is nan at optimizer step 8;"):
        resumed.on_log(args, SimpleNamespace(global_step=8), None, logs={"loss": nan}, model=model)
    with torch.no_grad():
        model.weight[0, 0] = nan
    with pytest.raises(DataError, match="the training loss is inf at optimizer step 2;"):
        finite_loss_guard().on_log(args, SimpleNamespace(global_step=2), None, logs={"loss": float("inf")},
                                   model=model)


def test_a_diverging_run_stops_at_its_first_non_finite_logged_loss(prepared, tmp_path, capsys):
    """The Trainer by default (logging_nan_inf_filter) replaces a NaN or infinite step loss in the log by a share of
    the losses before it since the last log, 0.0 when none: a diverged run looks perfectly trained and FiniteLoss
    never fires.
    train logs the loss as it is, so the stage stops in one line at the first log after the weights diverge."""
    d, _ = prepared
    from transformers import TrainingArguments

    library = library_trainer(prepared, tmp_path / "library", train__learning_rate=1e10)
    library.args.logging_nan_inf_filter = TrainingArguments.__dataclass_fields__["logging_nan_inf_filter"].default
    library.train()
    assert not all(torch.isfinite(p).all() for p in library.model.parameters())
    assert [entry["loss"] for entry in library.state.log_history if "loss" in entry][1:] == [0.0] * 13

    params = write_params(tmp_path / "params.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=3,
                                                                 train__batch_size=7, train__learning_rate=1e10))
    with pytest.raises(SystemExit) as exit_info:
        run_train(d, params, "joint_diverged", extra=["--checkpoints", str(tmp_path / "checkpoints")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == ("crossling.train: error: joint_diverged: the training loss is nan at optimizer "
                                    "step 2; lower train.learning_rate (now 1e+10), or train on fp32/bf16 if "
                                    "train.precision gave fp16")
    assert not (d / "models" / "joint_diverged").exists()


def test_max_length_beyond_the_model_is_refused(prepared, tmp_path, capsys):
    d, _ = prepared
    p = tiny_params(d / "source", sizes=(12, 30))
    p["model"]["checkpoint"] = str(d / "base")  # a local checkpoint: the scratch limit does not apply
    p["train"]["max_length"] = 64
    params = write_params(tmp_path / "long.yaml", p)
    with pytest.raises(SystemExit):
        run_train(d, params, "too_long")
    assert "train.max_length=64 exceeds the 32 positions the model can take" in capsys.readouterr().err
    from crossling import classify

    with pytest.raises(SystemExit):  # classify refuses too, where it once cut the texts shorter without a word
        classify.main(["--model", str(d / "base"), "--max-length", "64", "--device", "cpu", "a text"])
    assert capsys.readouterr().err.strip().endswith("--max-length=64 exceeds the 32 positions the model can take; "
                                                    "use --max-length <= 32")
    with pytest.raises(SystemExit):
        classify.main(["--model", str(d / "base"), "--max-length", "2", "--device", "cpu", "a text"])
    assert capsys.readouterr().err.strip().endswith("--max-length=2 is below 3 ([CLS], [SEP] and one text token); "
                                                    "use --max-length >= 3")
    classify.main(["--model", str(d / "base"), "--device", "cpu", "--json", "a text"])  # default: the model's 32
    out = capsys.readouterr()
    assert json.loads(out.out)["text"] == "a text"
    assert "holds no crossling training record: if it is the base stage's output, its classification head is " \
           "untrained" in out.err  # the base model's head was never trained


@pytest.mark.parametrize("damage", ["no tokenizer", "bad config", "truncated weights"])
def test_a_damaged_model_directory_is_one_line_never_an_empty_tokenizer(prepared, tmp_path, capsys, damage):
    # without its tokenizer files, transformers builds a tokenizer of special tokens only: every word [UNK],
    # every text the same answer
    from crossling import classify

    d, _ = prepared
    model = tmp_path / "model"
    shutil.copytree(d / "base", model)
    if damage == "no tokenizer":
        for path in model.glob("tokenizer*"):
            path.unlink()
        expected = f"no tokenizer at {model} (a vocabulary of special tokens only"
    elif damage == "bad config":
        (model / "config.json").write_text("{bad")
        expected = f"{model}: cannot be loaded (OSError: "
    else:
        weights = next(model.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:1000])
        expected = f"{model}: cannot be loaded (SafetensorError: "
    with pytest.raises(SystemExit) as exit_info:
        classify.main(["--model", str(model), "--device", "cpu", "a text"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"crossling.classify: error: {expected}") and err.count("\n") == 1


def test_a_deberta_directory_without_tokenizer_files_is_refused(tmp_path):
    # DeBERTa-v2's tokenizer built without files counts holes in its ids: len() exceeds its special tokens
    import tiny_checkpoints

    from crossling.common import DataError
    from crossling.modeling import load_classifier

    model = tiny_checkpoints.deberta_v2(tmp_path / "deberta")
    load_classifier(model)  # whole: accepted
    for path in model.glob("tokenizer*"):
        path.unlink()
    with pytest.raises(DataError, match=f"no tokenizer at {model} \\(a vocabulary of special tokens only"):
        load_classifier(model)


def test_classify_reads_one_text_per_line_of_a_utf8_file(prepared, tmp_path, capsys):
    from crossling import classify

    d, _ = prepared
    texts = tmp_path / "texts.txt"
    texts.write_bytes("one\u2028still one\r\ntwo\x0cstill\rtwo\n\n".encode())
    classify.main(["--model", str(d / "base"), "--device", "cpu", "--json", "--file", str(texts)])
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.strip().split("\n")] == [
        "one\u2028still one", "two\x0cstill\rtwo"]
    for path, why in ((tmp_path, "Is a directory"), (tmp_path / "none.txt", "No such file or directory")):
        with pytest.raises(SystemExit):
            classify.main(["--model", str(d / "base"), "--device", "cpu", "--file", str(path)])
        assert capsys.readouterr().err == f"crossling.classify: error: --file {path}: cannot be read as UTF-8 text ({why})\n"
    texts.write_bytes(b"caf\xe9\n")
    with pytest.raises(SystemExit):
        classify.main(["--model", str(d / "base"), "--device", "cpu", "--file", str(texts)])
    assert "cannot be read as UTF-8 text (invalid continuation byte)" in capsys.readouterr().err


def test_data_parallel_training_on_two_cpu_processes(prepared, tmp_path):
    # train.processes=2 relaunches the stage under torchrun; the Trainer trains with DDP over gloo.
    d, _ = prepared
    p = tiny_params(d / "source", sizes=(12, 30), train__epochs=10, train__processes=2, train__batch_size=1)
    params = write_params(tmp_path / "ddp.yaml", p)
    preds = run_train(d, params, "joint_ddp")  # 60 examples, global batch 2: 30 steps per epoch, logged every 7
    assert (d / "models" / "joint_ddp" / "model.safetensors").exists()
    assert (preds["pred_id"] == preds["label_id"]).mean() > 0.5
    loss = pd.read_csv(d / "logs" / "joint_ddp" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert loss["loss"].iloc[-1] < loss["loss"].iloc[0]
    assert loss["step"].iloc[-1] == 300  # the last step is logged on every process, or the gather would hang
    # a mean loss per example, as with one process: about ln(labels) before training, not that times 2
    assert loss["loss"].iloc[0] == pytest.approx(math.log(len(p["data"]["labels"])), abs=0.25)


def test_progress_is_reported_while_training(prepared, caplog, capfd):
    d, params = prepared
    run_train(d, params, "joint_progress")
    lines = [r.getMessage() for r in caplog.records if "joint_progress: step " in r.getMessage()]
    assert lines and "step 160/160 (100%)" in lines[-1]  # 60 examples / batch 8 = 8 steps x 20 epochs
    assert all("examples/s" in line and "left, loss" in line for line in lines)
    assert "training on cpu (CPU), precision fp32, 1 process(es), global batch 8, 160 optimizer steps" in caplog.text
    err = capfd.readouterr()
    assert "Loading weights" not in err.err and "{'loss'" not in err.out  # no bars, no raw log dicts


def test_dvclive_steps_are_optimizer_steps(prepared):
    d, params = prepared
    run_train(d, params, "joint_steps", sample_size=12)  # 24 examples, batch 8: 3 steps per epoch, 20 epochs
    metrics = d / "logs" / "joint_steps" / "plots" / "metrics"
    loss = pd.read_csv(metrics / "loss.tsv", sep="\t")
    epoch = pd.read_csv(metrics / "epoch.tsv", sep="\t")
    assert loss["step"].is_monotonic_increasing and loss["step"].iloc[0] == 1 and loss["step"].iloc[-1] == 60
    assert epoch["epoch"].iloc[-1] == pytest.approx(20.0)
    assert (epoch["epoch"] * 3 - epoch["step"]).abs().max() < 1e-6  # step = epoch x steps per epoch


def test_loss_is_logged_at_the_last_optimizer_step(prepared, tmp_path):
    d, _ = prepared
    params = write_params(tmp_path / "params.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=3,
                                                                 train__batch_size=7))
    run_train(d, params, "joint_last", sample_size=30)  # 60 examples, batch 7: 9 steps per epoch, logged every 2
    loss = pd.read_csv(d / "logs" / "joint_last" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert loss["step"].iloc[-1] == 27 and loss["step"].iloc[-2] == 26  # the curve reaches the end of training


def test_seeds_redraw_the_created_weights_unless_fixed(prepared):
    from crossling.modeling import load_classifier

    d, _ = prepared
    base_model, _ = load_classifier(d / "base")
    drawn = {}
    for seed in (42, 7, 8):
        model, _ = load_classifier(d / "base")
        assert train.draw_created_weights(model, train.init_record(d / "base"), seed) == "all weights"  # scratch
        drawn[seed] = model.state_dict()
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(drawn[42], base_model.state_dict())  # the base stage drew with model.init_seed=42
    assert not same(drawn[7], drawn[8])


def test_pretrained_base_redraws_only_its_new_head(tmp_path):
    from conftest import headless_bert
    from test_base import run_base

    from crossling.modeling import load_classifier

    tok = base.train_tokenizer(["good day bad day a day"] * 10, vocab_size=200)
    out = run_base(tmp_path, headless_bert(tmp_path / "bert", tok))
    states = []
    for seed in (1, 2):
        model, _ = load_classifier(out)
        assert train.draw_created_weights(model, train.init_record(out), seed) == "classifier"
        states.append(model.state_dict())
    changed = {k for k in states[0] if not torch.equal(states[0][k], states[1][k])}
    assert changed == {"classifier.weight"}  # the bias starts at zero for every seed
    assert torch.equal(states[0]["classifier.bias"], torch.zeros(3))


def test_dev_split_scored_every_epoch_and_best_epoch_kept(prepared, tmp_path, caplog):
    d, _ = prepared
    pool = pd.read_parquet(d / "pool.parquet")
    (tmp_path / "dev").mkdir()
    for lang, part in pool.groupby("language"):
        part.groupby("label_id").head(4).to_parquet(tmp_path / "dev" / f"{lang}.parquet")
    params = write_params(tmp_path / "best.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=4,
                                                               train__select="best"))
    run_train(d, params, "joint_best", extra=["--dev", str(tmp_path / "dev")])
    dev = d / "logs" / "joint_best" / "plots" / "metrics" / "dev"
    for lang in ("english", "french"):
        f1 = pd.read_csv(dev / f"macro_f1_{lang}.tsv", sep="\t")
        assert list(f1["step"]) == [8, 16, 24, 32]  # after each epoch of 8 optimizer steps
        assert f1[f"macro_f1_{lang}"].between(0, 1).all()
    mean = pd.read_csv(dev / "macro_f1_mean.tsv", sep="\t")["macro_f1_mean"]
    best = int(mean.to_numpy().argmax()) + 1
    assert f"kept epoch {best} of 4 (best mean dev macro-F1 {mean.max():.4f})" in caplog.text
    assert json.loads((d / "logs" / "joint_best" / "metrics.json").read_text())["selected_epoch"] == best
    # the saved model is that epoch's: it scores the logged best mean dev macro-F1 again
    from sklearn.metrics import f1_score

    from crossling.modeling import load_classifier, predict_proba

    model, tok = load_classifier(d / "models" / "joint_best")
    frame = pd.concat([pd.read_parquet(tmp_path / "dev" / f"{lang}.parquet") for lang in ("english", "french")])
    pred = predict_proba(model, tok, frame["text"].tolist(), 32, 8, CPU, "fp32").argmax(axis=1)
    again = [f1_score(frame["label_id"][frame["language"] == lang], pred[(frame["language"] == lang).to_numpy()],
                      labels=[0, 1, 2], average="macro", zero_division=0) for lang in ("english", "french")]
    assert sum(again) / 2 == pytest.approx(mean.max(), abs=1e-6)


def test_a_run_stopped_mid_epoch_by_max_steps_counts_the_epoch_it_began(prepared, tmp_path, caplog):
    d, _ = prepared
    params = write_params(tmp_path / "steps.yaml", tiny_params(d / "source", sizes=(12, 30), train__max_steps=4,
                                                                train__select="best"))
    run_train(d, params, "joint_4steps", sample_size=12, extra=["--dev", str(d / "dev")])  # 3 steps per epoch
    scored = [line.split(":")[0] for line in caplog.messages if ": mean dev macro-F1 " in line]
    assert scored == ["epoch 1", "epoch 2"]  # after step 3, and after step 4 (the Trainer's epoch 1.33)
    summary = json.loads((d / "logs" / "joint_4steps" / "metrics.json").read_text())
    assert f"kept epoch {summary['selected_epoch']} of 2 " in caplog.text


def test_best_epoch_needs_a_dev_split(prepared, tmp_path, capsys):
    d, _ = prepared
    params = write_params(tmp_path / "best.yaml", tiny_params(d / "source", sizes=(12, 30), train__select="best"))
    with pytest.raises(SystemExit):
        run_train(d, params, "joint_nodev")
    assert "train.select=best needs the dev split" in capsys.readouterr().err
    assert not (d / "models" / "joint_nodev").exists()


def test_base_without_init_record_is_refused(prepared, tmp_path):
    from crossling.common import DataError
    from crossling.modeling import load_classifier

    d, _ = prepared
    old = tmp_path / "old_base"
    shutil.copytree(d / "base", old)
    (old / "crossling_init.json").unlink()
    model, _ = load_classifier(old)
    with pytest.raises(DataError, match="has no crossling_init.json; re-run the base stage"):
        train.draw_created_weights(model, train.init_record(old), 1)
    record = json.loads((d / "base" / "crossling_init.json").read_text())
    (old / "crossling_init.json").write_text(json.dumps({k: v for k, v in record.items() if k != "init_seed"}))
    with pytest.raises(DataError, match=r"crossling_init.json is an older base stage's \(no init_seed\); re-run"):
        train.init_record(old)


@pytest.mark.parametrize("fixed_init", [False, True])
def test_the_stage_refuses_a_base_without_init_record_in_one_line(prepared, tmp_path, capsys, fixed_init):
    # with train.fixed_init nothing is re-drawn, but the record is still read (provenance): the same one line;
    # a base that is not there at all (not pulled) is named as such, not as a base lacking its record
    d, _ = prepared
    old = tmp_path / "old_base"
    shutil.copytree(d / "base", old)
    (old / "crossling_init.json").unlink()
    params = write_params(tmp_path / "params.yaml", tiny_params(d / "source", sizes=(12, 30), train__fixed_init=fixed_init))
    expected = {old: f"{old} has no crossling_init.json; re-run the base stage (dvc repro base)",
                tmp_path / "absent": f"no model at {tmp_path / 'absent'} (config.json missing)"}
    for base, message in expected.items():
        with pytest.raises(SystemExit) as exit_info:
            train.cli(["--params", str(params), "--name", "joint_12", "--sample",
                       str(d / "samples" / "seed42" / "sample_12.parquet"), "--base", str(base),
                       "--out", str(tmp_path / "model"), "--live", str(tmp_path / "live")])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and "Traceback" not in err
        assert err.splitlines()[-1].startswith(f"crossling.train: error: {message}")
        assert not (tmp_path / "model").exists()


def test_save_dtype_halves_the_weights_and_predictions_come_from_them(prepared, tmp_path):
    from safetensors import safe_open

    d, _ = prepared
    params = write_params(tmp_path / "bf16.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=20,
                                                               train__save_dtype="bfloat16"))
    full = run_train(d, prepared[1], "joint_fp32", sample_size=12)
    half = run_train(d, params, "joint_bf16", sample_size=12)
    with safe_open(d / "models" / "joint_bf16" / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    from crossling.modeling import load_classifier

    assert {p.dtype for p in load_classifier(d / "models" / "joint_bf16")[0].parameters()} == {torch.float32}
    size = {n: (d / "models" / n / "model.safetensors").stat().st_size for n in ("joint_fp32", "joint_bf16")}
    assert size["joint_bf16"] < 0.6 * size["joint_fp32"]
    # same training; the predictions differ at most by the weights' rounding
    assert (half["pred_id"] == full["pred_id"]).mean() > 0.9


@pytest.fixture(scope="module")
def data_for_checkpoints(tmp_path_factory):
    """The data stages on synthetic data, for the tiny checkpoints of tests/tiny_checkpoints.py."""
    d = tmp_path_factory.mktemp("arch")
    src = make_csv_source(d / "source", pool_per_class=20, test_per_class=6)
    params = write_params(d / "params.yaml", tiny_params(src, sizes=(12,)))
    run_download(params, d / "raw.parquet")
    combine.cli(["--params", str(params), "--raw", str(d / "raw.parquet"), "--pool", str(d / "pool.parquet"),
                 "--dev", str(d / "dev"), "--test", str(d / "test.parquet"), "--metrics", str(d / "data.json"),
                 "--plot-json", str(d / "dist.json"), "--plot-png", str(d / "dist.png")])
    sample.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(d / "samples")])
    return d, src


@pytest.mark.parametrize("arch,method", [("xlm_roberta", "full"), ("deberta_v2", "full"), ("modernbert_bare", "full"),
                                         ("llama_without_pad", "lora"), ("sentencepiece_only", "full"),
                                         ("mt5", "full")])
def test_checkpoint_architectures_run_base_train_predict_classify(data_for_checkpoints, tmp_path, arch, method):
    import tiny_checkpoints

    from crossling import classify
    from crossling.modeling import load_classifier, predict_proba

    d, src = data_for_checkpoints
    checkpoint = tiny_checkpoints.BUILDERS[arch](tmp_path / arch)
    params = write_params(tmp_path / "params.yaml", tiny_params(src, sizes=(12,), model__checkpoint=str(checkpoint),
                                                               train__epochs=2, train__method=method,
                                                               train__learning_rate=1e-3))
    base.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(tmp_path / "base")])
    init = json.loads((tmp_path / "base" / "crossling_init.json").read_text())
    assert init["created_weights"] and len(init["commit"]) == 64  # a local checkpoint: its content hash
    args = ["--params", str(params), "--name", "joint", "--sample", str(d / "samples" / "seed42" / "sample_12.parquet"),
            "--base", str(tmp_path / "base"), "--out", str(tmp_path / "model"), "--live", str(tmp_path / "logs"),
            "--dev", str(d / "dev"), "--checkpoints", str(tmp_path / "ckpt")]
    train.cli(args)
    assert not (tmp_path / "ckpt").exists()  # removed when the stage completes
    summary = json.loads((tmp_path / "logs" / "metrics.json").read_text())
    assert summary["optimizer_steps"] == 2 * summary["steps_per_epoch"] == 6  # 24 examples, batch 8
    assert (summary["trainable_parameters"] < summary["total_parameters"]) == (method == "lora")
    logged = yaml.safe_load((tmp_path / "logs" / "params.yaml").read_text())
    assert logged["method"] == method and logged["checkpoint"] == str(checkpoint) and logged["device"] == "cpu"
    assert logged["versions"]["peft"] and logged["global_batch"] == 8 and logged["max_length"] == 32
    assert logged["cpu_threads"] == len(os.sched_getaffinity(0))  # configure_threads: every usable core
    predict.cli(["--params", str(params), "--model", str(tmp_path / "model"), "--test", str(d / "test.parquet"),
                 "--out", str(tmp_path / "preds.parquet")])
    meta = json.loads(pq.read_schema(tmp_path / "preds.parquet").metadata[b"crossling.provenance"])
    assert meta["checkpoint_commit"] == init["commit"] and meta["trained_with"]["method"] == method
    assert meta["cpu_threads"] == meta["trained_with"]["cpu_threads"] == len(os.sched_getaffinity(0))
    # padding and masks are right: batched predictions equal one-at-a-time ones
    model, tok = load_classifier(tmp_path / "model")
    texts = pd.read_parquet(d / "test.parquet")["text"].tolist()[:12]
    batched = predict_proba(model, tok, texts, 32, 12, CPU, "fp32")
    alone = [predict_proba(model, tok, [t], 32, 1, CPU, "fp32")[0] for t in texts]
    assert abs(batched - alone).max() < 2e-6
    out = classify.predict(tmp_path / "model", texts[:2], device="cpu")  # the max_length it was trained with: 32
    assert [r["label"] for r in out] == [("positive", "neutral", "negative")[i] for i in batched[:2].argmax(axis=1)]


def test_gradient_accumulation_and_checkpointing_steps_come_from_the_trainer(prepared, tmp_path, caplog):
    d, _ = prepared
    params = write_params(tmp_path / "acc.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=2,
                                                              train__gradient_accumulation_steps=3,
                                                              train__gradient_checkpointing=True))
    # 60 examples, batch 8: 8 batches, 3 accumulated: 3 optimizer steps per epoch, the third of 2 batches
    run_train(d, params, "joint_acc", extra=["--dev", str(d / "dev")])
    summary = json.loads((d / "logs" / "joint_acc" / "metrics.json").read_text())
    assert (summary["steps_per_epoch"], summary["optimizer_steps"], summary["selected_step"]) == (3, 6, 6)
    assert summary["train_examples"] == 60
    logged = yaml.safe_load((d / "logs" / "joint_acc" / "params.yaml").read_text())
    assert (logged["global_batch"], logged["gradient_accumulation_steps"], logged["processes"]) == (24, 3, 1)
    assert "global batch 24, 6 optimizer steps" in caplog.text
    loss = pd.read_csv(d / "logs" / "joint_acc" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert loss["step"].iloc[-1] == 6
    # the Trainer counts epochs in batches (step 1 at epoch 3/8, not 1/3): evaluate reads these logs as one run's
    epochs = pd.read_csv(d / "logs" / "joint_acc" / "plots" / "metrics" / "epoch.tsv", sep="\t")
    assert list(epochs["epoch"])[:2] == [0.375, 0.75]
    from crossling import evaluate
    from crossling.config import load_config

    losses, dev = evaluate.training_curves(d / "logs", {"joint_acc": ("joint_30", 42)}, {"joint_acc": summary},
                                           load_config(params))
    assert [r["epoch"] for r in losses] == [round(s / 3, 4) for s in loss["step"]] and len(dev) == 4


@pytest.mark.parametrize("batch_size, accumulated", [(8, 3), (24, 1)])
def test_accumulated_batches_train_on_the_mean_loss_of_one_batch_of_them_all(prepared, tmp_path, batch_size,
                                                                             accumulated):
    # one optimizer step over the same 24 examples: its loss is the mean per example, about ln(3) before training
    # (the Trainer, left to itself, summed the three batches' means: 3.3)
    d, _ = prepared
    params = write_params(tmp_path / "acc.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=1,
                                                              train__batch_size=batch_size,
                                                              train__gradient_accumulation_steps=accumulated))
    run_train(d, params, f"joint_acc{accumulated}", sample_size=12)
    loss = pd.read_csv(d / "logs" / f"joint_acc{accumulated}" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert list(loss["step"]) == [1]
    assert loss["loss"].iloc[0] == pytest.approx(math.log(3), abs=0.1)


@pytest.mark.parametrize("fixed_init", [True, False])
def test_lora_runs_of_the_same_params_give_the_same_weights(prepared, tmp_path, fixed_init):
    # peft draws the adapters from torch's global generator, which only the seed's redraw of new weights had seeded
    d, _ = prepared
    params = write_params(tmp_path / "lora.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=1,
                                                               train__method="lora", train__fixed_init=fixed_init))
    weights = []
    for attempt in range(2):
        run_train(d, params, f"joint_lora{fixed_init}{attempt}", sample_size=12)
        weights.append((d / "models" / f"joint_lora{fixed_init}{attempt}" / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


@pytest.mark.parametrize("fixed_init", [True, False])
def test_lora_adapters_start_alike_for_every_seed_only_under_fixed_init(prepared, tmp_path, monkeypatch, fixed_init):
    d, _ = prepared
    params = write_params(tmp_path / "lora.yaml", tiny_params(d / "source", sizes=(12, 30), train__max_steps=1,
                                                               train__method="lora", train__fixed_init=fixed_init))
    drawn, with_lora = [], train.with_lora

    def recording(*args):
        model = with_lora(*args)
        drawn.append({name: p.detach().clone() for name, p in model.named_parameters() if ".lora_A." in name})
        return model

    monkeypatch.setattr(train, "with_lora", recording)
    for seed in (42, 43):
        run_train(d, params, f"joint_lora_seed{seed}{fixed_init}", sample_size=12, extra=["--seed", str(seed)])
    assert drawn[0].keys() == drawn[1].keys() and drawn[0]
    assert all(torch.equal(drawn[0][name], drawn[1][name]) for name in drawn[0]) == fixed_init


@pytest.mark.parametrize("fixed_init", [True, False])
def test_full_fine_tuning_starts_alike_for_every_seed_only_under_fixed_init(prepared, tmp_path, monkeypatch,
                                                                            fixed_init):
    from crossling.modeling import load_classifier

    d, _ = prepared
    params = write_params(tmp_path / "full.yaml",
                          tiny_params(d / "source", sizes=(12, 30), train__fixed_init=fixed_init))
    started = []

    def recording(model, *args):  # the weights fine-tuning starts from; nothing is trained or written
        started.append({k: v.clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(train, "fine_tune", recording)
    for seed in (42, 43):
        train.cli(["--params", str(params), "--name", f"joint_full{seed}", "--seed", str(seed), "--sample",
                   str(d / "samples" / "seed42" / "sample_12.parquet"), "--base", str(d / "base"),
                   "--out", str(tmp_path / "models" / str(seed)), "--live", str(tmp_path / "logs" / str(seed))])
    base_state = load_classifier(d / "base")[0].state_dict()
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert len(started) == 2 and same(started[0], started[1]) == fixed_init
    assert same(started[1], base_state) == fixed_init  # fixed_init: the base's own weights (model.init_seed)


def test_the_integration_script_of_every_architecture_loads_its_builders():
    """scripts/checkpoint_architectures.py (each tiny checkpoint through a real `dvc repro`, run for the docs)
    imports the tests' helpers: a rename there must fail here, not in the next person's run."""
    import subprocess
    import sys

    import tiny_checkpoints

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "scripts" / "checkpoint_architectures.py"), "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in tiny_checkpoints.BUILDERS)


# Where train keeps a callback or hook of its own, what the library's own mechanism does on the same run. Each test
# fails once a library release closes the gap: then the library's mechanism replaces ours (issue 25).
def library_trainer(prepared, tmp_path, callbacks=(), dev=False, **train_overrides):
    """The Trainer as fine_tune builds it (training_arguments, 60 examples, batch 7: 9 optimizer steps per epoch,
    logged every 2), without crossling's callbacks; `dev`: the sample scored after every epoch as a dev split."""
    from transformers import PrinterCallback, Trainer

    from crossling.config import load_config
    from crossling.modeling import load_classifier

    d, _ = prepared
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_params(tmp_path / "params.yaml", tiny_params(
        d / "source", sizes=(12, 30), **{"train__epochs": 3, "train__batch_size": 7, **train_overrides})))
    model, tok = load_classifier(d / "base")
    frame = pd.read_parquet(d / "samples" / "seed42" / "sample_30.parquet")
    args = train.training_arguments(cfg.train, str(tmp_path / "checkpoints"), 42, torch.device("cpu"), "fp32", dev)
    args.logging_steps = 2  # fine_tune's choice: a quarter of an epoch
    data = train.dataset(tok, frame, cfg.train.max_length)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data if dev else None,
                      compute_metrics=train.dev_metrics(frame["language"].to_numpy(), 3) if dev else None,
                      processing_class=tok, callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)
    return trainer


def test_the_trainer_alone_logs_no_loss_at_the_last_optimizer_step(prepared, tmp_path):
    """Why train adds LogEpochEnds: the Trainer logs every logging_steps only, so a curve ends short of the end of
    training (with it: test_loss_is_logged_at_the_last_optimizer_step)."""
    trainer = library_trainer(prepared, tmp_path)
    trainer.train()
    logged = [entry["step"] for entry in trainer.state.log_history if "loss" in entry]
    assert (trainer.state.global_step, logged[-1]) == (27, 26)


def test_dvclives_trainer_callback_counts_log_calls_and_forgets_a_resumed_history(prepared, tmp_path):
    """Why train logs to dvclive through its own Metrics callback, not transformers' DVCLiveCallback: that one
    advances dvclive's step once per log call (a training log and a dev score of one optimizer step get two steps),
    so evaluate cannot put curves on the optimizer-step axis; and a run resumed from a Trainer checkpoint, whose
    logs DVC removed with the stage's outputs, logs only what follows the checkpoint. Metrics does both right."""
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    def live(name):
        return Live(str(tmp_path / name), dvcyaml=False, save_dvc_exp=False)

    trainer = library_trainer(prepared, tmp_path, [DVCLiveCallback(live=live("full"))], dev=True)
    trainer.args.save_total_limit = None  # every epoch's checkpoint kept: the first one is resumed from below
    trainer.train()
    history = trainer.state.log_history
    loss = pd.read_csv(tmp_path / "full" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert list(loss["step"]) == [i for i, entry in enumerate(history) if "loss" in entry]  # the log call's number
    assert list(loss["step"]) != [entry["step"] for entry in history if "loss" in entry]  # not the optimizer step
    dev = pd.read_csv(tmp_path / "full" / "plots" / "metrics" / "eval" / "macro_f1_english.tsv", sep="\t")
    assert list(dev["step"]) == [i for i, entry in enumerate(history) if "eval_macro_f1_english" in entry]

    # resumed after the first epoch (9 steps) with the logs gone, as `dvc repro` resumes a killed stage
    shutil.copytree(tmp_path / "checkpoints" / "checkpoint-9", tmp_path / "again" / "checkpoints" / "checkpoint-9")
    again = library_trainer(prepared, tmp_path / "again", [DVCLiveCallback(live=live("again/live"))], dev=True)
    again.train(resume_from_checkpoint=str(tmp_path / "again" / "checkpoints" / "checkpoint-9"))
    resumed = pd.read_csv(tmp_path / "again" / "live" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert len(resumed) == sum(1 for entry in history if "loss" in entry and entry["step"] > 9)  # epoch 1 is gone


def test_a_run_resumed_from_a_checkpoint_logs_what_the_uninterrupted_run_logs(prepared, tmp_path):
    """train's callbacks on the case above: the history before the checkpoint is replayed, and every epoch's end is
    logged, so no log averages steps on both sides of a checkpoint (9 steps per epoch, logged every 2)."""
    def run(name, resume=None):
        callbacks = train.callbacks("run", str(tmp_path / name / "live"), ["english", "french"], {"global_batch": 7},
                                    first=True)
        trainer = library_trainer(prepared, tmp_path / name, callbacks, dev=True)
        trainer.args.save_total_limit = None
        if resume:
            shutil.copytree(resume, tmp_path / name / "checkpoints" / resume.name)
        trainer.train(resume_from_checkpoint=str(tmp_path / name / "checkpoints" / resume.name) if resume else None)
        metrics = tmp_path / name / "live" / "plots" / "metrics"
        return [pd.read_csv(metrics / f, sep="\t") for f in ("loss.tsv", "epoch.tsv", "dev/macro_f1_english.tsv")]

    full = run("full")
    assert list(full[0]["step"]) == [1, 2, 4, 6, 8, 9, 10, 12, 14, 16, 18, 20, 22, 24, 26, 27]
    for resumed, uninterrupted in zip(run("resumed", tmp_path / "full" / "checkpoints" / "checkpoint-9"), full):
        pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_a_run_killed_after_its_last_checkpoint_resumes_to_the_same_model_files(prepared, tmp_path):
    """Killed between the final epoch's checkpoint and the model's save, the stage resumes with no step left to
    train: its model must still equal the uninterrupted run's, config.json included (the model's DVC hash)."""
    import signal
    import subprocess
    import sys

    d, _ = prepared
    params = write_params(tmp_path / "p.yaml", tiny_params(d / "source", sizes=(12, 30), train__epochs=2))
    out = tmp_path / "model"

    def stage(**env) -> subprocess.CompletedProcess:  # as dvc runs it (the code fingerprint counts loaded modules)
        return subprocess.run([sys.executable, "-m", "crossling.train", "--params", str(params), "--name",
                               "joint_12_seed42", "--sample", str(d / "samples" / "seed42" / "sample_12.parquet"),
                               "--base", str(d / "base"), "--out", str(out), "--live", str(tmp_path / "live"),
                               "--checkpoints", str(tmp_path / "checkpoints")], capture_output=True, text=True,
                              env=os.environ | env, cwd=tmp_path)

    assert stage().returncode == 0
    uninterrupted = {f: (out / f).read_bytes() for f in ("config.json", "model.safetensors")}
    shutil.rmtree(out)
    shutil.rmtree(tmp_path / "live")
    killed = stage(**{train.KILL_AFTER_EPOCH: "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists() and [p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*")] == ["checkpoint-6"]
    resumed = stage()
    assert resumed.returncode == 0 and "resuming from" in resumed.stderr, resumed.stderr[-2000:]
    assert {f: (out / f).read_bytes() for f in uninterrupted} == uninterrupted


def test_the_trainer_shuffles_the_dev_split_when_it_groups_training_batches_by_length(prepared, tmp_path):
    """Why fine_tune's Trainer (DevInOrder) evaluates in order: with train_sampling_strategy=group_by_length the
    Trainer draws the evaluation batches through a shuffling LengthGroupedSampler too, so the scores per dev language,
    which need the dev split's order, would mix languages."""
    trainer = library_trainer(prepared, tmp_path, dev=True, train__group_by_length=True)
    order = list(trainer._get_eval_sampler(trainer.eval_dataset))  # the hook DevInOrder overrides
    assert sorted(order) == list(range(60)) and order != list(range(60))


def test_a_checkpoint_is_resumed_only_by_a_run_of_the_same_params_and_data(prepared, tmp_path, monkeypatch,
                                                                            caplog):
    """Why train fingerprints its checkpoints: the Trainer resumes from any checkpoint it is given, here one made
    with another learning rate, and trains on with that run's schedule (its optimizer and scheduler states), not the
    one it was given; resume_point hands over only a complete checkpoint of the same params, seed, language, data,
    base weights, code and setup (device, threads, versions), and otherwise says what differs and starts afresh in
    a clean directory."""
    import dataclasses
    from argparse import Namespace

    from crossling.config import load_config

    made = library_trainer(prepared, tmp_path / "made")
    made.args.save_total_limit = None  # the first epoch's checkpoint kept
    made.train()
    other_lr = library_trainer(prepared, tmp_path / "other", train__learning_rate=1e-4)
    other_lr.train(resume_from_checkpoint=str(tmp_path / "made" / "checkpoints" / "checkpoint-9"))
    def logged(trainer):
        return [(e["step"], e["learning_rate"]) for e in trainer.state.log_history if "loss" in e]

    assert logged(other_lr) == logged(made)  # the other run's first epoch, and its learning rates after it

    d, params = prepared
    cfg = load_config(params)
    args = Namespace(sample=str(d / "samples" / "seed42" / "sample_30.parquet"), base=str(d / "base"), dev=None,
                     language=None, exclude_language=None)
    made_with = {"device": "cpu", "cpu_threads": 2, "versions": {"torch": torch.__version__}}
    replace = dataclasses.replace

    def fingerprint(c=cfg, a=args, seed=42, setup=made_with, languages=()):
        return json.dumps(train.run_fingerprint(c, a, seed, setup, list(languages)), sort_keys=True)

    same = fingerprint()
    assert fingerprint() == same
    # not what this run trains with: the seed list (its own seed counts) and the predict stage's batch size
    assert fingerprint(c=replace(cfg, train=replace(cfg.train, seeds=(1, 2, 42), eval_batch_size=7))) == same
    others = [fingerprint(seed=7), fingerprint(c=replace(cfg, train=replace(cfg.train, learning_rate=1e-4))),
              fingerprint(a=Namespace(**{**vars(args), "language": "english"})),
              fingerprint(a=Namespace(**{**vars(args), "sample": args.sample.replace("_30", "_12")})),
              fingerprint(setup=made_with | {"cpu_threads": 1})]
    with_dev = Namespace(**{**vars(args), "dev": str(d / "dev")})
    english_dev = fingerprint(a=with_dev, languages=["english"])
    kept = (d / "dev" / "french.parquet").read_bytes()
    (d / "dev" / "french.parquet").write_bytes(kept + b"\0")  # a dev split this run does not read
    assert fingerprint(a=with_dev, languages=["english"]) == english_dev
    (d / "dev" / "french.parquet").write_bytes(kept)
    others += [english_dev, fingerprint(a=with_dev, languages=["english", "french"])]
    big = d / "base" / "big.safetensors"  # over 16 MiB, which an earlier version fingerprinted by size alone
    big.write_bytes(bytes(2**24 + 1))
    with_big = fingerprint()
    big.write_bytes(bytes(2**24) + b"\1")  # other weights of the same size
    others += [with_big, fingerprint()]
    big.unlink()
    code = tmp_path / "code"  # the package's code, as a copy the fingerprint reads
    shutil.copytree(Path(train.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(train, "__file__", str(code / "train.py"))
    assert fingerprint() == same
    (code / "train.py").write_text((code / "train.py").read_text() + "# edited\n")
    others.append(fingerprint())
    from crossling import modeling

    shutil.copy(Path(modeling.__file__).parent / "train.py", code.parent / "train.py")  # train.py as it is
    monkeypatch.setattr(train, "__file__", str(code.parent / "train.py"))
    monkeypatch.setattr(modeling, "__file__", str(code / "modeling.py"))  # a module train imports, edited
    (code / "modeling.py").write_text((code / "modeling.py").read_text() + "# edited\n")
    others.append(fingerprint())
    monkeypatch.undo()
    assert len({same, *others}) == 1 + len(others)
    parts, other_lr = json.loads(same), json.loads(others[1])
    checkpoints = tmp_path / "run"
    assert train.resume_point(checkpoints, parts, 1) is None  # a new run: what it is made from recorded
    for step, files in ((9, "state rng"), (18, "state rng"), (27, "truncated rng"), (36, "rng")):
        (checkpoints / f"checkpoint-{step}").mkdir()
        if "state" in files:
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        if "truncated" in files:  # written in place, not atomically: killed while writing it
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text('{"best_metric": ')
        (checkpoints / f"checkpoint-{step}" / "rng_state.pth").write_bytes(b"")
    # the Trainer writes trainer_state.json last: checkpoint-36 was cut off before it, checkpoint-27 inside it
    assert not train.complete(checkpoints / "checkpoint-18", processes=2)  # no rng_state_<i>.pth of DDP
    assert train.resume_point(checkpoints, parts, 1) == str(checkpoints / "checkpoint-18")
    assert not (checkpoints / "checkpoint-27").exists() and not (checkpoints / "checkpoint-36").exists()
    assert json.loads((checkpoints / train.RUN_RECORD).read_text())["resume"] == str(checkpoints / "checkpoint-18")
    assert train.resume_point(checkpoints, other_lr, 1) is None
    assert f"{checkpoints}: not resumed: made from other params; training afresh" in caplog.text
    assert sorted(p.name for p in checkpoints.iterdir()) == [train.RUN_RECORD]  # the other run's checkpoints gone
    # a folder holding anything else (--checkpoints ~/work, --name ..) is refused, never emptied
    from crossling.common import DataError

    (checkpoints / "thesis.tex").write_text("mine")
    with pytest.raises(DataError, match=r"run holds thesis.tex, not only Trainer checkpoints; .* new or empty folder"):
        train.resume_point(checkpoints, other_lr, 1)
    assert (checkpoints / "thesis.tex").read_text() == "mine"


def test_lora_target_modules_are_names_each_of_which_must_exist(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from crossling.config import ConfigError, load_config

    cfg = load_config(write_params(tmp_path / "params.yaml", tiny_params(tmp_path, train__method="lora")))

    def adapted(targets):
        model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                         num_attention_heads=2, intermediate_size=32, num_labels=3))
        lora = dataclasses.replace(cfg.train.lora, target_modules=targets)
        return {name.split(".lora_A")[0].rsplit(".", 1)[-1]
                for name, _ in train.with_lora(model, lora, []).named_parameters() if ".lora_A." in name}

    assert adapted("query") == {"query"}  # one name, not peft's pattern over full module names
    assert adapted(("query", "attention.self.value")) == {"query", "value"}
    # peft adapted `query` alone, or refused with the wrong fix; `classifier` is the head, trained in full
    for targets, missing in ((("query", "valeu"), "valeu"), ("valeu", "valeu"),
                             (("query", "classifier"), "classifier")):
        with pytest.raises(ConfigError, match=rf"^train.lora.target_modules: BertForSequenceClassification has no "
                                              rf"module '{missing}' outside its classification head \(trained in "
                                              r"full\); name its modules \(linear: dense, key, query, value\) or "
                                              r"use all-linear$"):
            adapted(targets)


def test_lora_trains_in_full_the_weights_the_base_stage_drew_beside_the_head(tmp_path):
    """An MLM-only BERT has no pooler: the base stage draws it with the head, and under LoRA it is trained in full
    with the head, not left frozen at random between [CLS] and the classifier."""
    from transformers import BertConfig, BertForSequenceClassification

    from crossling.config import load_config

    cfg = load_config(write_params(tmp_path / "params.yaml", tiny_params(tmp_path, train__method="lora")))
    for targets in (("query", "value"), "all-linear"):
        model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                         num_attention_heads=2, intermediate_size=32, num_labels=3))
        lora = dataclasses.replace(cfg.train.lora, target_modules=targets)
        created = ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]
        trainable = {name for name, p in train.with_lora(model, lora, created).named_parameters() if p.requires_grad}
        pooler = {name for name in trainable if ".pooler." in name}
        assert len(pooler) == 2 and all(".modules_to_save." in name for name in pooler), trainable
