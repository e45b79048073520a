import json
import zlib

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, stage_error, tiny_params, write_params
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from crossling import evaluate, figures, stats
from crossling.common import DataError, joint_name, mono_name, run_name
from crossling.config import load_config
from crossling.predict import prediction_schema

LANGS = ("english", "french")
LABELS = ("positive", "neutral", "negative")
SIZES = (6, 12)
SEEDS = (1, 2)


def fake_predictions(seed: int, n: int = 40, skill: float = 0.6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gold = np.random.default_rng(0).integers(0, 3, size=2 * n)  # the same test split for every run
    pred = np.where(rng.random(2 * n) < skill, gold, rng.integers(0, 3, size=2 * n))
    probs = rng.dirichlet(np.ones(3), size=2 * n).astype("float32")
    df = pd.DataFrame({"language": np.repeat(LANGS, n), "test_row": np.arange(2 * n), "label_id": gold,
                       "pred_id": pred})
    for i, name in enumerate(LABELS):
        df[f"prob_{name}"] = probs[:, i]
    return df


def params(tmp_path, **kw):
    p = tiny_params("unused", sizes=SIZES)
    p["train"]["seeds"] = list(SEEDS)
    p["evaluate"] |= {"bootstrap_samples": 500, "seed": 3}
    return write_params(tmp_path / "params.yaml", p)


@pytest.fixture
def pred_dir(tmp_path):
    d = tmp_path / "predictions"
    d.mkdir()
    names = [f"joint_{s}" for s in SIZES] + [f"mono_{lang}" for lang in LANGS]
    for i, name in enumerate(names):
        for seed in SEEDS:
            fake_predictions(10 * i + seed).to_parquet(d / f"{evaluate.run_name(name, seed)}.parquet",
                                                        schema=prediction_schema(LABELS))
    return d


def test_metrics_equal_sklearn():
    pred = fake_predictions(0)
    part = pred[pred["language"] == "french"]
    got = stats.scores(part["label_id"].to_numpy(), part["pred_id"].to_numpy(), LABELS)
    y, p = part["label_id"], part["pred_id"]
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-6)
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    assert got["macro_precision"] == pytest.approx(precision_score(y, p, average="macro"), abs=1e-6)
    assert got["macro_recall"] == pytest.approx(recall_score(y, p, average="macro"), abs=1e-6)
    per_class = f1_score(y, p, average=None, labels=[0, 1, 2])
    assert [got[f"f1_{n}"] for n in LABELS] == pytest.approx(list(per_class), abs=1e-6)
    # the real macro-F1: the mean of per-class F1, not F1 of macro precision and recall
    assert got["macro_f1"] == pytest.approx(np.mean(per_class), abs=1e-6)


def test_bootstrap_resamples_match_sklearn():
    rng = np.random.default_rng(5)
    gold, pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    idx = rng.integers(0, 50, size=(4, 50))
    fast = stats._resampled(gold, pred, idx, 3)
    for row in range(4):
        assert fast["macro_f1"][row] == pytest.approx(
            f1_score(gold[idx[row]], pred[idx[row]], average="macro", labels=[0, 1, 2], zero_division=0))


def test_interval_contains_the_estimate_and_narrows_with_more_texts():
    widths = []
    for n in (100, 1000, 10000):
        pred = fake_predictions(1, n=n)
        gold, guess = pred["label_id"].to_numpy(), pred["pred_id"].to_numpy()
        ci = stats.bootstrap_interval(gold, [guess], 3, resamples=1000, confidence=0.95, seed=0)
        point = stats.scores(gold, guess, LABELS)
        for metric in ("accuracy", "macro_f1"):
            assert ci[f"{metric}_ci_low"] <= point[metric] <= ci[f"{metric}_ci_high"]
        widths.append(ci["macro_f1_ci_high"] - ci["macro_f1_ci_low"])
    assert widths[0] > widths[1] > widths[2]
    again = stats.bootstrap_interval(gold, [guess], 3, resamples=1000, confidence=0.95, seed=0)
    assert again == ci  # seeded


def test_cli_outputs_match_a_recomputation(tmp_path, pred_dir):
    metrics, plots = tmp_path / "metrics", tmp_path / "plots"
    all_logs(tmp_path / "logs", load_config(params(tmp_path)))
    evaluate.cli(["--params", str(params(tmp_path)), "--predictions", str(pred_dir), "--logs", str(tmp_path / "logs"),
                  "--metrics", str(metrics), "--plots", str(plots)])
    joint = json.loads((metrics / "joint.json").read_text())
    transfer = json.loads((metrics / "transfer.json").read_text())
    for name, table in [("joint_12", joint), ("mono_english", transfer)]:
        runs = [pd.read_parquet(pred_dir / f"{evaluate.run_name(name, s)}.parquet") for s in SEEDS]
        for lang in LANGS:
            f1 = [f1_score(r.loc[r["language"] == lang, "label_id"], r.loc[r["language"] == lang, "pred_id"],
                           average="macro") for r in runs]
            cell = table[name][lang]
            assert cell["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-5)
            assert cell["macro_f1_seed_std"] == pytest.approx(np.std(f1, ddof=1), abs=1e-5)  # sample std
            assert cell["macro_f1_ci_low"] <= cell["macro_f1"] <= cell["macro_f1_ci_high"]
            assert cell["seeds"] == 2
    detailed = json.loads((metrics / "detailed.json").read_text())
    run = pd.read_parquet(pred_dir / "joint_6_seed2.parquet")
    part = run[run["language"] == "french"]
    assert detailed["joint_6_seed2"]["french"]["f1_neutral"] == pytest.approx(
        f1_score(part["label_id"], part["pred_id"], average=None, labels=[0, 1, 2])[1], abs=1e-6)
    conf = json.loads((metrics / "confusion_matrices.json").read_text())
    assert conf["runs"]["joint_6_seed2"]["french"] == confusion_matrix(part["label_id"], part["pred_id"]).tolist()

    summary = json.loads((metrics / "summary.json").read_text())
    assert summary["joint_12_mean_macro_f1"] == pytest.approx(np.mean([joint["joint_12"][l]["macro_f1"] for l in LANGS]), abs=1e-6)
    off = [transfer["mono_english"]["french"]["macro_f1"], transfer["mono_french"]["english"]["macro_f1"]]
    assert summary["zero_shot_mean_macro_f1"] == pytest.approx(np.mean(off), abs=1e-6)
    tsum = json.loads((metrics / "transfer_summary.json").read_text())
    en = tsum["english"]
    assert en["in_language_macro_f1"] == transfer["mono_english"]["english"]["macro_f1"]
    assert en["transfer_gap"] == pytest.approx(en["in_language_macro_f1"] - transfer["mono_english"]["french"]["macro_f1"], abs=1e-6)
    assert en["joint_macro_f1"] == joint["joint_12"]["english"]["macro_f1"]

    curve = json.loads((plots / "learning_curve.json").read_text())
    assert {(r["size"], r["language"]) for r in curve} == {(s, lang) for s in SIZES for lang in LANGS}
    assert all(r["macro_f1_ci_low"] <= r["macro_f1"] <= r["macro_f1_ci_high"] for r in curve)
    matrix = json.loads((plots / "transfer_matrix.json").read_text())
    cell = next(r for r in matrix if r["train_language"] == "french" and r["test_language"] == "english")
    assert cell["macro_f1"] == transfer["mono_french"]["english"]["macro_f1"]
    for png in ("learning_curve.png", "transfer_matrix.png"):
        assert (plots / png).read_bytes()[:4] == b"\x89PNG"

    # every metric file is flat enough for `dvc metrics diff`: dicts of numbers, no lists
    def leaves(x):
        return [v for val in x.values() for v in (leaves(val) if isinstance(val, dict) else [val])]
    assert all(isinstance(v, int | float) for f in (joint, transfer, summary, tsum) for v in leaves(f))


def test_missing_predictions_are_named(tmp_path, pred_dir):
    (pred_dir / "mono_french_seed2.parquet").unlink()
    with pytest.raises(DataError, match="predictions of mono_french_seed2 not found"):
        evaluate.evaluate(pred_dir, load_config(params(tmp_path)))


def test_dvc_yaml_names_runs_as_the_code_does():
    # dvc.yaml cannot call Python: its run names must spell the scheme of crossling.common.
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for kind, model in (("joint", joint_name("${item.size}")), ("mono", mono_name("${item.lang}"))):
        name = run_name(model, "${item.seed}")
        train, predict = (" ".join(stages[f"{step}_{kind}"]["cmd"].split()) for step in ("train", "predict"))
        for arg in (f"--name {name}", f"--out models/{name}", f"--live logs/{name}"):
            assert arg in train, (kind, arg)
        assert f"models/{name}" in stages[f"train_{kind}"]["outs"]
        assert f"--model models/{name}" in predict and f"--out data/predictions/{name}.parquet" in predict


def test_one_seed_reports_no_spread_and_no_nan(tmp_path, pred_dir):
    p = tiny_params("unused", sizes=SIZES)
    p["train"]["seeds"] = [1]
    p["evaluate"]["bootstrap_samples"] = 200
    out = evaluate.evaluate(pred_dir, load_config(write_params(tmp_path / "one.yaml", p)))
    cell = out["joint"]["joint_12"]["english"]
    assert cell["seeds"] == 1 and "macro_f1_seed_std" not in cell
    text = json.dumps({k: out[k] for k in ("joint", "transfer", "differences", "summary")}, allow_nan=False)
    assert "NaN" not in text


def test_paired_differences_use_the_shared_resamples(tmp_path, pred_dir):
    cfg = load_config(params(tmp_path))
    diffs = evaluate.evaluate(pred_dir, cfg)["differences"]
    lang, n_resamples = "french", cfg.evaluate.bootstrap_samples
    runs = {name: [pd.read_parquet(pred_dir / f"{evaluate.run_name(name, s)}.parquet") for s in SEEDS]
            for name in ("joint_12", "joint_6", "mono_english", "mono_french")}
    gold = runs["joint_6"][0].loc[lambda d: d["language"] == lang, "label_id"].to_numpy()
    pred = {name: [r.loc[r["language"] == lang, "pred_id"].to_numpy() for r in rs] for name, rs in runs.items()}
    idx = stats.resample_indices(len(gold), n_resamples, [cfg.evaluate.seed, zlib.crc32(lang.encode())])

    def per_resample(name):  # _resampled equals sklearn on every resample (test above)
        return np.mean([stats._resampled(gold, p, idx, 3)["macro_f1"] for p in pred[name]], axis=0)

    def point(name):
        return np.mean([f1_score(gold, p, average="macro") for p in pred[name]])

    for a, b, key in [("joint_12", "joint_6", "joint_12_minus_joint_6_on_french"),  # a learning-curve step
                      ("joint_12", "mono_french", "joint_12_minus_mono_french_on_french"),  # largest joint vs mono
                      ("mono_english", "mono_french", "mono_english_minus_mono_french_on_french")]:  # zero-shot
        delta = per_resample(a) - per_resample(b)
        assert diffs[key] == pytest.approx(point(a) - point(b), abs=2e-6)
        assert [diffs[f"{key}_ci_low"], diffs[f"{key}_ci_high"]] == pytest.approx(
            list(np.percentile(delta, [2.5, 97.5])), abs=1e-6)
    chance = diffs["chance_macro_f1_on_french"]
    assert diffs["mono_english_minus_chance_on_french"] == pytest.approx(point("mono_english") - chance, abs=2e-6)
    # unpaired: the source model's in-language score lies on other texts (english) than the cell (french)
    assert "mono_english_on_english_minus_on_french" in diffs
    leaves = [k for k in diffs if not k.endswith(("_ci_low", "_ci_high")) and not k.startswith("chance_")]
    assert all(f"{k}_ci_low" in diffs and f"{k}_ci_high" in diffs for k in leaves)
    assert all("." not in k for k in diffs)  # flat names for `dvc metrics diff`


def test_pairing_narrows_the_interval_of_a_small_difference():
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 3, 600)
    a = np.where(rng.random(600) < 0.7, gold, rng.integers(0, 3, 600))
    b = a.copy()
    flip = rng.choice(600, 15, replace=False)
    b[flip] = (b[flip] + 1) % 3  # b = a with 15 of its predictions changed
    idx = stats.resample_indices(600, 1000, 0)
    fa, fb = (stats.resampled_means(gold, [p], idx, 3)["macro_f1"] for p in (a, b))
    paired = stats.interval(fa - fb, 0.95)
    other = stats.resampled_means(gold, [b], stats.resample_indices(600, 1000, 1), 3)["macro_f1"]
    unpaired = stats.interval(fa - other, 0.95)
    assert paired[1] - paired[0] < (unpaired[1] - unpaired[0]) / 3
    assert paired[0] > 0  # the paired interval sees a difference the unpaired one cannot
    assert unpaired[0] < 0 < unpaired[1]


def test_chance_is_the_mean_macro_f1_of_uniform_guessing():
    gold = np.repeat([0, 1, 2], [1800, 900, 300])
    rng = np.random.default_rng(0)
    simulated = np.mean([f1_score(gold, rng.integers(0, 3, len(gold)), average="macro") for _ in range(200)])
    point, per_resample = stats.chance_macro_f1(gold, stats.resample_indices(len(gold), 50, 0), 3)
    assert point == pytest.approx(simulated, abs=0.005)
    assert point < 1 / 3  # imbalanced classes lower it
    assert stats.chance_macro_f1(np.repeat([0, 1, 2], 5), np.zeros((1, 15), dtype=int), 3)[0] == pytest.approx(1 / 3)
    assert per_resample.shape == (50,) and abs(per_resample.mean() - point) < 0.01


def test_different_test_texts_in_two_runs_are_refused(tmp_path, pred_dir):
    run = pd.read_parquet(pred_dir / "joint_6_seed1.parquet")
    run.loc[run["language"] == "english", "label_id"] = (run.loc[run["language"] == "english", "label_id"] + 1) % 3
    run.to_parquet(pred_dir / "joint_6_seed1.parquet", schema=prediction_schema(LABELS))
    with pytest.raises(DataError, match="hold different english test texts"):
        evaluate.evaluate(pred_dir, load_config(params(tmp_path)))


def test_budget_counts_examples_and_optimizer_steps(tmp_path):
    p = tiny_params("unused", sizes=(6, 12, 24), languages=("english", "french", "arabic", "hindi"))
    p["train"] |= {"batch_size": 5, "processes": 2, "epochs": 3}
    cfg = load_config(write_params(tmp_path / "b.yaml", p))
    budget = evaluate.training_budget(cfg)
    assert budget["joint_12"] == {"examples": 48, "steps_per_epoch": 5, "steps": 15}  # ceil(48 / 10) = 5
    assert budget["mono_hindi"] == {"examples": 24, "steps_per_epoch": 3, "steps": 9}
    assert evaluate.equal_budget_size(cfg) == 6  # 6 x 4 languages = 24, a monolingual model's examples
    p["sample"]["sizes"] = [6, 20]
    assert evaluate.equal_budget_size(load_config(write_params(tmp_path / "c.yaml", p))) is None


def write_tsv(path, column, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp\tstep\t" + column + "\n" + "".join(f"0\t{s}\t{v}\n" for s, v in rows))


def fake_logs(root, run, per_epoch, epochs, languages, kept=None):
    """A dvclive directory as the training stage writes it: loss and epoch every step, dev F1 every epoch, and
    the summary with the epoch whose weights were kept."""
    metrics = root / run / "plots" / "metrics"
    steps = range(1, per_epoch * epochs + 1)
    write_tsv(metrics / "loss.tsv", "loss", [(s, 1.0 / s) for s in steps])
    write_tsv(metrics / "epoch.tsv", "epoch", [(s, s / per_epoch) for s in steps])
    for lang in languages:
        write_tsv(metrics / "dev" / f"macro_f1_{lang}.tsv", f"macro_f1_{lang}",
                  [(e * per_epoch, 0.3 + 0.1 * e) for e in range(1, epochs + 1)])
    (root / run / "metrics.json").write_text(json.dumps({"selected_epoch": kept or epochs}))


def all_logs(root, cfg, kept=None):
    """Logs of every training run of `cfg`; kept: run -> epoch whose weights it kept (default: the last)."""
    budget = evaluate.training_budget(cfg)
    for model in evaluate.model_names(cfg):
        for seed in cfg.train.seeds:
            run = evaluate.run_name(model, seed)
            fake_logs(root, run, budget[model]["steps_per_epoch"], cfg.train.epochs,
                      evaluate.training_languages(model, cfg.data.languages), (kept or {}).get(run))


def test_training_and_dev_curves_span_the_run_on_an_epoch_axis(tmp_path):
    cfg = load_config(params(tmp_path))  # 2 epochs, batch 8, sizes 6 and 12 over two languages
    budget = evaluate.training_budget(cfg)
    logs = tmp_path / "logs"
    fake_logs(logs, "joint_12_seed1", budget["joint_12"]["steps_per_epoch"], 2, LANGS)
    fake_logs(logs, "mono_english_seed1", budget["mono_english"]["steps_per_epoch"], 2, ("english",))
    runs = {"joint_12_seed1": "joint_12", "mono_english_seed1": "mono_english"}
    losses, dev = evaluate.training_curves(logs, runs, cfg)
    for run, model in runs.items():
        rows = [r for r in losses if r["model"] == run]
        assert rows[-1]["step"] == budget[model]["steps"] and rows[-1]["epoch"] == 2  # whole run, same axis end
        assert min(r["epoch"] for r in rows) > 0
    assert budget["joint_12"]["steps"] != budget["mono_english"]["steps"]  # different lengths, one axis
    assert {(r["model"], r["language"], r["epoch"]) for r in dev} == {
        ("joint_12_seed1", "english", 1), ("joint_12_seed1", "english", 2), ("joint_12_seed1", "french", 1),
        ("joint_12_seed1", "french", 2), ("mono_english_seed1", "english", 1), ("mono_english_seed1", "english", 2)}
    png = tmp_path / "curves.png"
    figures.training_curves(pd.DataFrame(losses), pd.DataFrame(dev), png)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_missing_logs_are_refused_naming_the_file(tmp_path):
    cfg = load_config(params(tmp_path))
    logs = tmp_path / "logs"
    fake_logs(logs, "joint_12_seed1", evaluate.training_budget(cfg)["joint_12"]["steps_per_epoch"], 2, LANGS)
    (logs / "joint_12_seed1" / "plots" / "metrics" / "dev" / "macro_f1_french.tsv").unlink()
    with pytest.raises(DataError, match=r"joint_12_seed1/plots/metrics/dev/macro_f1_french.tsv not found"):
        evaluate.training_curves(logs, {"joint_12_seed1": "joint_12"}, cfg)
    with pytest.raises(DataError, match=r"mono_french_seed1/plots/metrics/loss.tsv not found"):
        evaluate.training_curves(logs, {"mono_french_seed1": "mono_french"}, cfg)
    loss = logs / "joint_12_seed1" / "plots" / "metrics" / "loss.tsv"
    good = loss.read_text()
    loss.write_text("timestamp\tstep\tloss\n")  # dvclive wrote the header, then training died
    with pytest.raises(DataError, match=r"joint_12_seed1/plots/metrics/loss.tsv has no rows"):
        evaluate.training_curves(logs, {"joint_12_seed1": "joint_12"}, cfg)
    loss.write_text(good)
    (logs / "joint_12_seed1" / "metrics.json").write_text("{}")
    with pytest.raises(DataError, match=r"joint_12_seed1/metrics.json has no selected_epoch.*"
                                         r"dvc repro -f -s train_joint@12-1, then dvc repro\)$"):
        evaluate.kept_epochs(logs, ["joint_12_seed1"], 2)
    with pytest.raises(DataError, match=r"mono_french_seed3/metrics.json not found.*dvc repro train_mono@french-3\)"):
        evaluate.kept_epochs(logs, ["mono_french_seed3"], 2)


def test_logged_epochs_that_disagree_with_the_params_are_refused(tmp_path):
    cfg = load_config(params(tmp_path))
    per_epoch = evaluate.training_budget(cfg)["joint_6"]["steps_per_epoch"]
    fake_logs(tmp_path / "logs", "joint_6_seed1", per_epoch + 1, 2, LANGS)  # logs of another configuration
    with pytest.raises(DataError, match=f"train.batch_size and train.processes give {per_epoch} steps per epoch"):
        evaluate.training_curves(tmp_path / "logs", {"joint_6_seed1": "joint_6"}, cfg)
    # a run of another train.epochs: the same steps per epoch, but the loss ends elsewhere, the kept epoch beyond
    fake_logs(tmp_path / "logs", "joint_6_seed1", per_epoch, 3, LANGS)
    steps = 2 * per_epoch
    with pytest.raises(DataError, match=f"ends at optimizer step {3 * per_epoch}, but train.epochs and the sample "
                                        f"give {steps} steps.*dvc repro -f -s train_joint@6-1, then dvc repro"):
        evaluate.training_curves(tmp_path / "logs", {"joint_6_seed1": "joint_6"}, cfg)
    with pytest.raises(DataError, match="selected_epoch 3, but train.epochs is 2"):
        evaluate.kept_epochs(tmp_path / "logs", ["joint_6_seed1"], cfg.train.epochs)


def test_budgets_give_the_kept_epoch_of_every_run(tmp_path):
    cfg = load_config(params(tmp_path))  # seeds 1 and 2, 2 epochs
    budget = evaluate.training_budget(cfg)["joint_12"]  # 24 examples, batch 8: 3 steps per epoch
    got = evaluate.budgets(cfg, {evaluate.run_name(m, s): 2 for m in evaluate.model_names(cfg) for s in SEEDS}
                           | {"joint_12_seed2": 1})
    assert got["joint_12"] == budget | {"kept_epoch_seed1": 2, "kept_steps_seed1": 6, "kept_epoch_seed2": 1,
                                        "kept_steps_seed2": 3}


def test_leftovers_of_runs_no_stage_writes_are_refused(tmp_path, pred_dir, capsys):
    cfg = load_config(params(tmp_path))
    logs = tmp_path / "logs"
    all_logs(logs, cfg)
    args = ["--params", str(params(tmp_path)), "--predictions", str(pred_dir), "--logs", str(logs),
            "--metrics", str(tmp_path / "metrics"), "--plots", str(tmp_path / "plots")]
    (pred_dir / "joint_12_seed3.parquet").write_bytes((pred_dir / "joint_12_seed2.parquet").read_bytes())
    (logs / "mono_german_seed1").mkdir()
    with pytest.raises(SystemExit):
        evaluate.cli(args)
    error = stage_error(capsys.readouterr().err)
    assert "joint_12_seed3.parquet" in error and "mono_german_seed1" in error and error.endswith("; delete them")
    assert not (tmp_path / "metrics").exists()  # nothing half-written
    (pred_dir / "joint_12_seed3.parquet").unlink()
    (logs / "mono_german_seed1").rmdir()
    (pred_dir / ".gitignore").write_text("/joint_6_seed1.parquet\n")  # what DVC writes there is not a leftover
    evaluate.cli(args)
    assert (tmp_path / "metrics" / "budgets.json").exists()


def test_cli_writes_differences_curves_and_confusion_plots(tmp_path, pred_dir):
    metrics, plots, logs = tmp_path / "metrics", tmp_path / "plots", tmp_path / "logs"
    all_logs(logs, load_config(params(tmp_path)))
    evaluate.cli(["--params", str(params(tmp_path)), "--predictions", str(pred_dir), "--logs", str(logs),
                  "--metrics", str(metrics), "--plots", str(plots)])
    diffs = json.loads((metrics / "differences.json").read_text())
    assert all(isinstance(v, float) for v in diffs.values())
    confusion = json.loads((plots / "confusion_largest_joint.json").read_text())
    english = [r for r in confusion if r["language"] == "english"]
    assert len(english) == 9 and sum(r["count"] for r in english) == len(SEEDS) * 40  # summed over seeds
    conf = json.loads((metrics / "confusion_matrices.json").read_text())["runs"]
    assert english[1]["count"] == sum(conf[f"joint_12_seed{s}"]["english"][0][1] for s in SEEDS)
    for r in english[:3]:
        assert r["share"] == pytest.approx(r["count"] / sum(x["count"] for x in english[:3]), abs=1e-6)
    dev = json.loads((plots / "dev_curve.json").read_text())
    assert {r["language"] for r in dev if r["model"] == "mono_french_seed2"} == {"french"}
    for png in ("training_curves.png", "confusion_largest_joint.png"):
        assert (plots / png).read_bytes()[:4] == b"\x89PNG"


def test_last_epoch_loss_weights_each_logged_mean_by_its_steps_in_the_last_epoch():
    # 4 steps per epoch, 2 epochs; logged at steps 1, 3, 5, 7 and (the last step) 8
    rows = [{"model": "joint_6_seed1", "step": step, "loss": loss}
            for step, loss in ((1, 2.0), (3, 1.0), (5, 0.8), (7, 0.6), (8, 0.4))]
    # last epoch = steps 5-8: step 5 from the mean logged at 5, steps 6-7 from 7, step 8 from 8
    got = evaluate.last_epoch_loss(rows, "joint_6", (1,), per_epoch=4)
    assert got == {"joint_6_last_epoch_train_loss": pytest.approx((0.8 + 2 * 0.6 + 0.4) / 4)}
    seed2 = [r | {"model": "joint_6_seed2", "loss": r["loss"] + 0.2} for r in rows]
    assert evaluate.last_epoch_loss(rows + seed2, "joint_6", (1, 2), 4)["joint_6_last_epoch_train_loss"] == \
        pytest.approx(0.7)  # the mean over seeds
