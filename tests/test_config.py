"""The frozen config tree: defaults, YAML files, --set overrides, base inheritance, errors, round trips."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from jotr.body.config import BodyConfig
from jotr.config import (
    ConfigError,
    JOTRConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    merge_config,
    parse_override,
    save_config,
    shipped_configs,
)
from jotr.errors import InputError
from jotr.models.config import ModelConfig


def test_defaults():
    cfg = load_config()
    assert cfg == JOTRConfig()
    assert cfg.model == ModelConfig.paper()
    assert cfg.model.d_model == 256 and cfg.model.dec_layers == 4 and cfg.model.depth_exponent_init == 3.0
    assert cfg.body == BodyConfig() and cfg.body.kind == "anny"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.d_model = 128  # type: ignore[misc]


def test_yaml_files_then_overrides(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("model:\n  dec_layers: 2\n  dropout: 0.2\ntrain:\n  lr: 0.001\n  lr_decay_epochs: [5, 10]\n")
    b = tmp_path / "b.yaml"
    b.write_text("model:\n  dec_layers: 3\n")
    cfg = load_config([a, b], ["train.lr=2e-4", "body.kind=toy", "train.max_steps=7"])
    assert cfg.model.dec_layers == 3  # later file wins
    assert cfg.model.dropout == 0.2  # earlier file's other keys stay
    assert cfg.train.lr == pytest.approx(2e-4)  # override wins over files
    assert cfg.train.lr_decay_epochs == (5, 10)  # YAML list -> tuple field
    assert cfg.body.kind == "toy" and cfg.train.max_steps == 7
    assert cfg.model.d_model == 256  # untouched default
    assert load_config(str(a)).model.dec_layers == 2  # a single path works too
    assert parse_override("model.ffn_dim_2d=1024") == {"model": {"ffn_dim_2d": 1024}}
    assert load_config(overrides=["train.grad_clip=null"]).train.grad_clip is None
    assert load_config(overrides=["train.grad_clip=1"]).train.grad_clip == 1.0  # int accepted for a float


def test_base_inheritance(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "parent.yaml").write_text("model:\n  dec_layers: 2\n  nhead: 4\ntrain:\n  epochs: 3\n")
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("base: ../parent.yaml\nmodel:\n  nhead: 2\n")
    cfg = load_config(child)
    assert cfg.model.dec_layers == 2 and cfg.train.epochs == 3  # inherited
    assert cfg.model.nhead == 2  # the child's value wins
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(loop)


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.foo'.*d_model.*dec_layers"):
        load_config(overrides=["model.foo=1"])
    with pytest.raises(ConfigError, match=r"unknown config key 'modle'.*'model'"):
        load_config(overrides=["modle.d_model=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.learning_rate.*'lr'"):
        load_config(bad)
    assert issubclass(ConfigError, InputError)  # the CLI turns it into exit code 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.dec_layers=abc", r"model\.dec_layers: expected an integer"),
        ("model.dec_layers=2.5", r"model\.dec_layers: expected an integer"),
        ("train.amp=3", r"train\.amp: expected true/false"),
        ("body.kind=smplx", r"body\.kind: 'smplx' is not one of"),
        ("train.lr=fast", r"train\.lr: expected a number"),
        ("model.dropout=null", r"model\.dropout: null is not allowed"),
        ("train.lr_decay_epochs=3", r"train\.lr_decay_epochs: expected a list"),
        ("model=3", r"model: expected a mapping"),
        ("model.heatmap_size=32", r"heatmap_size must be input_size / 4"),  # section validation
        ("model.dec_layers", r"must look like key\.path=value"),
    ],
)
def test_type_and_value_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(listing)


def test_dump_load_round_trip(tmp_path):
    default = JOTRConfig()
    assert config_from_dict(config_to_dict(default)) == default
    cfg = merge_config(
        default,
        {
            "model": ModelConfig.small().__dict__ | {"pose_head": "vposer", "vposer_weights": "/x/v.pt"},
            "train": {"lr_decay_epochs": [3, 6], "grad_clip": 1.5, "max_steps": 10},
            "body": {"kind": "smpl", "smpl_model_path": "/models/smpl", "gender": "female"},
            "eval": {"visibility_bins": [0.0, 0.5, 1.0]},
        },
    )
    assert cfg.model == dataclasses.replace(ModelConfig.small(), pose_head="vposer", vposer_weights="/x/v.pt")
    as_dict = config_to_dict(cfg)
    assert config_from_dict(as_dict) == cfg
    # through YAML text and through a saved file
    assert config_from_dict(yaml.safe_load(dump_config(cfg))) == cfg
    path = tmp_path / "run" / "config.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert not [p for p in path.parent.iterdir() if p.name != "config.yaml"]  # no temp files left


@pytest.mark.parametrize("name", shipped_configs())
def test_shipped_configs_load(name):
    cfg = load_config(name)
    assert isinstance(cfg, JOTRConfig)
    assert config_from_dict(config_to_dict(cfg)) == cfg
