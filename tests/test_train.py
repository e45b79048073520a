import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import make_csv_source, tiny_params, write_params

from crossling import base, combine, download, sample, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Data stages and a tiny scratch base on synthetic data, shared by this module's tests."""
    d = tmp_path_factory.mktemp("train")
    src = make_csv_source(d / "source", pool_per_class=40, test_per_class=15)
    params = write_params(d / "params.yaml", tiny_params(src, sizes=(12, 30), train__epochs=20))
    download.cli(["--params", str(params), "--out", str(d / "raw.parquet")])
    combine.cli(["--params", str(params), "--raw", str(d / "raw.parquet"), "--pool", str(d / "pool.parquet"),
                 "--dev", str(d / "dev.parquet"), "--test", str(d / "test.parquet"), "--metrics", str(d / "data.json"),
                 "--plot-json", str(d / "dist.json"), "--plot-png", str(d / "dist.png")])
    sample.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(d / "samples")])
    base.cli(["--params", str(params), "--pool", str(d / "pool.parquet"), "--out", str(d / "base")])
    return d, params


def run_train(d, params, name, sample_size=30, language=None, extra=()):
    args = ["--params", str(params), "--name", name, "--sample", str(d / "samples" / f"sample_{sample_size}.parquet"),
            "--base", str(d / "base"), "--test", str(d / "test.parquet"), "--out", str(d / "models" / name),
            "--predictions", str(d / "predictions" / f"{name}.parquet"), "--live", str(d / "logs" / name)]
    if language:
        args += ["--language", language]
    train.cli(args + list(extra))
    return pd.read_parquet(d / "predictions" / f"{name}.parquet")


def test_joint_model_outputs(prepared):
    d, params = prepared
    preds = run_train(d, params, "joint_30")
    files = {p.name for p in (d / "models" / "joint_30").iterdir()}
    # what from_pretrained needs, nothing more (no optimizer state, no training args)
    assert files == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    schema = pq.read_schema(d / "predictions" / "joint_30.parquet")
    assert schema.equals(train.prediction_schema(("positive", "neutral", "negative")))
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


def test_max_length_beyond_the_model_is_refused(prepared, tmp_path, capsys):
    d, _ = prepared
    p = tiny_params(d / "source", sizes=(12, 30))
    p["model"]["checkpoint"] = str(d / "base")  # a local checkpoint: the scratch limit does not apply
    p["train"]["max_length"] = 64
    params = write_params(tmp_path / "long.yaml", p)
    with pytest.raises(SystemExit):
        run_train(d, params, "too_long")
    assert "exceeds the base model's max_position_embeddings=32" in capsys.readouterr().err


def test_data_parallel_training_on_two_cpu_processes(prepared, tmp_path):
    # train.processes=2 relaunches the stage under torchrun; the Trainer trains with DDP over gloo.
    d, _ = prepared
    p = tiny_params(d / "source", sizes=(12, 30), train__epochs=20, train__processes=2)
    params = write_params(tmp_path / "ddp.yaml", p)
    preds = run_train(d, params, "joint_ddp")
    assert (d / "models" / "joint_ddp" / "model.safetensors").exists()
    assert (preds["pred_id"] == preds["label_id"]).mean() > 0.5
    loss = pd.read_csv(d / "logs" / "joint_ddp" / "plots" / "metrics" / "loss.tsv", sep="\t")
    assert loss["loss"].iloc[-1] < loss["loss"].iloc[0]
