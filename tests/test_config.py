import dataclasses
import shutil

import pytest
import yaml
from conftest import ROOT, make_config, with_defaults

from crossling.config import ConfigError, config_from_dict, load_config


def test_committed_params_are_the_reference_experiment():
    cfg = load_config(ROOT / "params.yaml")
    assert cfg.model.checkpoint == "distilbert-base-multilingual-cased"
    assert cfg.data.languages == ("english", "french", "arabic", "japanese", "hindi", "malay")
    assert cfg.sample.sizes == (100, 500, 1000, 1500, 2000)
    assert (cfg.train.epochs, cfg.train.learning_rate, cfg.train.batch_size) == (5, 2e-5, 32)
    assert (cfg.train.weight_decay, cfg.train.max_length, cfg.train.seeds) == (0.01, 128, (42,))


@pytest.mark.parametrize(
    "raw, field, fragment",
    [
        ({"trian": {"epochs": 3}}, "trian", "unknown key"),
        ({"train": {"epoch": 3}}, "train.epoch", "unknown key"),
        ({"data": {"languages": []}}, "data.languages", "at least one"),
        ({"data": {"languages": ["english", "english"]}}, "data.languages", "duplicate"),
        ({"data": {"labels": ["positive"]}}, "data.labels", "2 to 127"),
        ({"data": {"labels": [f"l{i}" for i in range(128)]}}, "data.labels", "needs 2 to 127 label names, got 128"),
        ({"sample": {"sizes": [100, 0]}}, "sample.sizes[1]", "positive integer"),
        ({"sample": {"sizes": [-5]}}, "sample.sizes[0]", "positive integer"),
        ({"sample": {"sizes": [100, 2.5]}}, "sample.sizes[1]", "expected an integer"),
        ({"sample": {"sizes": [100, "200"]}}, "sample.sizes[1]", "expected an integer"),
        ({"sample": {"sizes": [100, 100]}}, "sample.sizes", "duplicate"),
        ({"sample": {"sizes": []}}, "sample.sizes", "at least one"),
        ({"sample": {"sizes": 100}}, "sample.sizes", "expected a list"),
        ({"sample": {"dev_size": 0}}, "sample.dev_size", "positive integer"),
        ({"sample": {"dev_size": 2}}, "sample.dev_size", "at least 3 (one text per label)"),
        ({"train": {"epochs": 0}}, "train.epochs", "positive integer"),
        ({"train": {"epochs": True}}, "train.epochs", "expected an integer"),
        ({"train": {"learning_rate": -1e-5}}, "train.learning_rate", "> 0"),
        ({"train": {"learning_rate": "fast"}}, "train.learning_rate", "expected a finite number"),
        ({"train": {"learning_rate": "inf"}}, "train.learning_rate", "expected a finite number"),
        ({"train": {"weight_decay": float("nan")}}, "train.weight_decay", "expected a finite number"),
        ({"sample": {"sizes": [500, 100]}}, "sample.sizes", "increasing order"),
        ({"sample": {"seed": -1}}, "sample.seed", "[0, 2**32)"),
        ({"train": {"seeds": [1, -2]}}, "train.seeds[1]", "[0, 2**32)"),
        ({"model": {"init_seed": 2**32}}, "model.init_seed", "[0, 2**32)"),
        ({"evaluate": {"seed": -1}}, "evaluate.seed", "[0, 2**32)"),
        ({"data": {"hub_config": " "}}, "data.hub_config", "must not be empty"),
        ({"data": {"labels": ["positive ", "neutral", "negative"]}}, "data.labels[0]", "surrounding spaces"),
        ({"data": {"languages": ["english", ""]}}, "data.languages[1]", "must not be empty"),
        # unquoted in the training stages' commands: would fail at the first monolingual model, not here
        ({"data": {"languages": ["brazilian portuguese"]}}, "data.languages[0]", "e.g. 'brazilian_portuguese'"),
        ({"data": {"languages": ["pt/br", "en"]}}, "data.languages[0]", "letters, digits, '_' and '-' only"),
        ({"data": {"languages": ["en", "हिंदी भाषा"]}}, "data.languages[1]", "e.g. 'हिंदी_भाषा'"),
        ({"sample": {"leave_one_out": ["-x"]}}, "sample.leave_one_out[0]", "e.g. 'x'"),
        ({"data": {"label_map": {0: "negative", "pos": "good"}}}, "data.label_map.pos", "not in data.labels"),
        ({"data": {"label_map": ["negative"]}}, "data.label_map", "expected a mapping"),
        ({"train": {"device": "gpu"}}, "train.device", "must be one of 'auto', 'cuda', 'mps' or 'cpu'"),
        ({"train": {"precision": "int8"}}, "train.precision", "must be one of 'auto', 'fp32', 'bf16' or 'fp16'"),
        ({"model": {"revision": ""}}, "model.revision", "must not be empty"),
        ({"train": {"learning_rate": True}}, "train.learning_rate", "expected a finite number"),
        ({"train": {"max_length": 2}}, "train.max_length", "at least 3"),
        ({"train": {"warmup_ratio": 1.5}}, "train.warmup_ratio", "[0, 1)"),
        ({"model": {"checkpoint": "scratch", "scratch": {"max_position_embeddings": 64}}},
         "train.max_length", "exceeds model.scratch.max_position_embeddings"),
        ({"model": {"scratch": {"dim": 10, "heads": 3}}}, "model.scratch.dim", "divisible"),
        ({"model": {"scratch": {"layerz": 2}}}, "model.scratch.layerz", "unknown key"),
        ({"data": "english"}, "data", "expected a mapping"),
        ({"train": {"seeds": []}}, "train.seeds", "at least one seed"),
        ({"train": {"seeds": [1, 1]}}, "train.seeds", "duplicate"),
        ({"train": {"seed": 42}}, "train.seed", "unknown key"),
        ({"evaluate": {"bootstrap_samples": 10}}, "evaluate.bootstrap_samples", "at least 100"),
        ({"evaluate": {"confidence": 1.5}}, "evaluate.confidence", "[0.5, 1)"),
        ({"evaluate": {"collapse_share": 1.0000005}}, "evaluate.collapse_share", "must be in [0.5, 1], got 1.0000005"),
        ({"evaluate": {"collapse_share": 0.4}}, "evaluate.collapse_share", "must be in [0.5, 1], got 0.4"),
        # a free-text key shaped like a union tag is still named
        ({"data": {"label_map": {"<name>": 5}}}, "data.label_map.<name>", "expected a string"),
        # a name-or-list field reports the list's own problem, under the field's name
        ({"train": {"lora": {"target_modules": ["query", "query"]}}}, "train.lora.target_modules", "duplicate module"),
        ({"train": {"lora": {"target_modules": ["query", " value"]}}}, "train.lora.target_modules[1]",
         "surrounding spaces"),
        ({"train": {"lora": {"target_modules": []}}}, "train.lora.target_modules", "at least one module"),
        ({"train": {"lora": {"target_modules": ""}}}, "train.lora.target_modules", "must not be empty"),
        ({"train": {"lora": {"target_modules": 5}}}, "train.lora.target_modules", "expected a list"),
        ({"sample": {"leave_one_out": ["german"]}}, "sample.leave_one_out",
         "german not in data.languages (english, french, arabic, japanese, hindi, malay)"),
        ({"data": {"languages": ["english"]}, "sample": {"leave_one_out": ["english"]}}, "sample.leave_one_out",
         "needs at least two languages in data.languages; use []"),
        ({"model": {"head_label_map": {"LABEL_0": "negative", "LABEL_1": "negative"}}}, "model.head_label_map",
         "maps two head labels to one name"),
        ({"model": {"checkpoint": "scratch", "head_label_map": {"LABEL_0": "negative"}}}, "model.head_label_map",
         "the scratch model has no checkpoint head to name"),
    ],
)
def test_bad_params_name_the_field(raw, field, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict(with_defaults(raw))
    assert err.value.field == field
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_language_names_in_any_script_are_valid_their_combining_marks_included():
    """Vowel signs and viramas (Devanagari, Tamil) and a decomposed accent are marks, not letters (no regex \\w);
    DVC takes all of these as foreach keys, stage and file names."""
    names = ["pt-BR", "zh_Hant", "español", "espan\u0303ol", "हिंदी", "தமிழ்", "বাংলা", "日本語", "ไทย"]
    assert make_config({"data": {"languages": names}}).data.languages == tuple(names)


def test_collapse_share_one_and_a_module_list_are_valid():
    cfg = make_config({"evaluate": {"collapse_share": 1}, "train": {"lora": {"target_modules": ["query", "value"]}}})
    assert cfg.evaluate.collapse_share == 1 and cfg.train.lora.target_modules == ("query", "value")
    assert make_config().train.lora.target_modules == "all-linear"


def test_defaults_live_only_in_params_yaml():
    raw = with_defaults({})
    del raw["train"]["epochs"]
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert err.value.field == "train.epochs" and "missing" in str(err.value)


def test_a_misspelled_key_is_named_before_the_key_it_leaves_missing():
    raw = with_defaults({})
    raw["train"]["epoch"] = raw["train"].pop("epochs")
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert err.value.field == "train.epoch" and "unknown key (allowed under train: epochs," in str(err.value)


def test_any_language_name_and_integer_label_map(tmp_path):
    cfg = make_config({"data": {"languages": ["swahili", "english"], "label_map": {0: "negative", "pos": "positive"}}})
    assert cfg.data.languages == ("swahili", "english")
    assert cfg.data.label_map == {"0": "negative", "pos": "positive"}  # integer ids as the strings the data holds
    assert dataclasses.asdict(cfg.data)["label_map"] == {"0": "negative", "pos": "positive"}


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    # YAML 1.1 (PyYAML) reads `2e-5` as a string; users write it that way all the time.
    raw = with_defaults({})
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw).replace("learning_rate: 2.0e-05", "learning_rate: 3e-4"))
    assert load_config(p).train.learning_rate == pytest.approx(3e-4)


def test_params_rewritten_by_dvc_set_param_read_as_dvc_reads_them(tmp_path):
    # `dvc exp run -S` rewrites params.yaml as YAML 1.2 and drops the quotes only YAML 1.1 needs
    from dvc.utils.hydra import apply_overrides

    raw = with_defaults({"data": {"languages": ["english", "no"], "label_map": {"on": "positive"}},
                         "slurm": {"time": "10:00:00"}})
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    apply_overrides(p, ["train.epochs=3"])
    assert "time: 10:00:00" in p.read_text(encoding="utf-8")  # unquoted: YAML 1.1 reads 36000
    cfg = load_config(p)
    assert (cfg.train.epochs, cfg.slurm.time, cfg.data.languages) == (3, "10:00:00", ("english", "no"))
    assert cfg.data.label_map == {"on": "positive"}


def test_the_committed_params_survive_dvc_set_param_emptying_a_list(tmp_path):
    # DVC's writer once broke a two-line trailing comment when a list went from block style back to []
    from dvc.utils.hydra import apply_overrides

    p = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", p)
    for override in ("sample.leave_one_out=[english]", "sample.leave_one_out=[]", "train.seeds=[1,2]",
                     "train.seeds=[42]", "slurm.sbatch_options=['--qos=high']", "slurm.sbatch_options=[]",
                     "sample.leave_one_out=[french,english]", "sample.leave_one_out=[]"):
        apply_overrides(p, [override])
        load_config(p)
    assert (load_config(p).sample.leave_one_out, load_config(p).train.seeds) == ((), (42,))


def test_a_label_map_naming_one_id_twice_is_refused():
    with pytest.raises(ConfigError) as err:
        config_from_dict(with_defaults({"data": {"label_map": {1: "positive", "1": "negative"}}}))
    assert err.value.field == "data.label_map" and "maps '1' twice" in err.value.message


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("train:\n  epochs: 3\n  epochs: 4\n")  # a repeated key is refused, not the last one taken
    with pytest.raises(ConfigError, match=r'not valid YAML \(line 3: found duplicate key "epochs"'):
        load_config(bad)
