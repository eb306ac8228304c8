"""Official JOTR checkpoints -> jotr: every one of the 538 official keys is accounted for, strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_model import make_inputs

from jotr.cli import main as cli_main
from jotr.engine.checkpoint import load_checkpoint, load_state_strict
from jotr.errors import CheckpointError
from jotr.models.jotr import JOTR, JOTRNetwork
from jotr.models.official import (
    NUM_OFFICIAL_KEYS,
    OFFICIAL_POS_TABLE,
    OFFICIAL_SMPL_KEYS,
    convert_official_state,
    official_model_config,
    official_name,
    rename_table,
)
from jotr.models.official_keys import OFFICIAL_STATE_DICT_KEYS, official_key_shapes
from jotr.models.transformer import sinusoid_table_1d

REPO_ROOT = Path(__file__).resolve().parents[1]


def official_state(seed: int = 0, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """A state dict with exactly the official names and shapes (random content)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_key_shapes().items():
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(7)
        elif key == OFFICIAL_POS_TABLE:
            value = sinusoid_table_1d(*shape)
        elif key.endswith("running_var"):
            value = torch.rand(shape, generator=g) + 0.5
        else:
            value = torch.randn(shape, generator=g) * 0.02
        state[prefix + key] = value
    return state


@pytest.fixture(scope="module")
def network() -> JOTRNetwork:
    return JOTRNetwork(official_model_config(), num_pose_joints=24, num_shape=10, pretrained=False)


def test_key_list_is_the_official_one():
    shapes = official_key_shapes()
    assert len(shapes) == NUM_OFFICIAL_KEYS == 538
    assert shapes["cascade_shaoe_out.1.weight"] == (10, 266)
    assert shapes["exponent"] == ()
    doc = REPO_ROOT / "docs" / "official_state_dict_keys.txt"
    if doc.is_file():  # the documented list, when the repository ships it, is the same
        assert doc.read_text().strip() == OFFICIAL_STATE_DICT_KEYS.strip()


def test_rename_table_is_a_bijection(network):
    shapes = official_key_shapes()
    ours = network.state_dict()
    dropped = set(OFFICIAL_SMPL_KEYS) | {OFFICIAL_POS_TABLE}
    assert dropped <= set(shapes)
    table = rename_table()
    from jotr.models.official import _rename

    mapped = {k: _rename(k, table) for k in shapes if k not in dropped}
    assert all(v is not None for v in mapped.values())
    assert len(set(mapped.values())) == len(mapped) == len(ours) == NUM_OFFICIAL_KEYS - len(dropped)
    assert set(mapped.values()) == set(ours)
    for k, v in mapped.items():
        assert tuple(ours[v].shape) == shapes[k], k
        assert official_name(v) == k
    assert mapped["cascade_shaoe_out.3.bias"] == "shape_head.layers.3.bias"
    assert (
        mapped["transformer.decoder.layers.2.multihead_attn.in_proj_weight"]
        == "decoder.layers.2.cross_attn.in_proj_weight"
    )


def test_convert_loads_strictly_and_runs(tmp_path, network, toy_body):
    state = official_state()
    converted = convert_official_state({k[7:]: v for k, v in state.items()}, network.state_dict())
    load_state_strict(network, converted)
    sd = network.state_dict()
    assert torch.equal(sd["shape_head.layers.2.weight"], state["module.cascade_shaoe_out.2.weight"])
    assert torch.equal(sd["decoder.body_query_pos"], state["module.spose_shape_cam_param"])
    assert torch.equal(
        sd["vposer.bodyprior_dec_out.weight"], state["module.vposer.vposer.bodyprior_dec_out.weight"]
    )
    assert torch.equal(sd["lift_coord.weight"], state["module.conv_3d_coord.0.weight"])
    assert sd["depth_exponent"] == state["module.exponent"]

    # CLI: official .pth.tar ({'network': ..., 'epoch': ...}, DDP prefix) -> jotr checkpoint
    src = tmp_path / "official.pth.tar"
    torch.save({"network": state, "epoch": 17}, src)
    out = tmp_path / "jotr_official.pt"
    assert cli_main(["convert-official", str(src), str(out), "--set", "body.smpl_model_path=/data/smpl"]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt["config"]["model"]["pose_head"] == "vposer"
    assert ckpt["config"]["body"]["kind"] == "smpl"
    assert ckpt["config"]["body"]["smpl_model_path"] == "/data/smpl"
    assert not any("human_model" in k or "pos_table" in k for k in ckpt["model"])
    # the converted weights drive a JOTR with an SMPL-layout body (no VPoser file needed: the checkpoint has
    # it)
    model = JOTR(official_model_config(), toy_body, pretrained=False)
    load_state_strict(model, ckpt["model"])
    model.eval()
    with torch.no_grad():
        res = model(make_inputs(official_model_config(), 1))
    assert torch.isfinite(res.vertices).all()
    # existing output is not overwritten without --force
    assert cli_main(["convert-official", str(src), str(out)]) == 2
    # safetensors output carries the config as metadata
    from safetensors import safe_open

    st = tmp_path / "w.safetensors"
    assert cli_main(["convert-official", str(src), str(st)]) == 0
    with safe_open(str(st), "pt") as fh:
        assert "jotr_config" in fh.metadata()
        assert set(fh.keys()) == set(network.state_dict())
    # ... and loads wherever a checkpoint is taken (load_checkpoint / load_model / --checkpoint)
    from_st = load_checkpoint(st)
    assert from_st["config"] == ckpt["config"] | {"body": from_st["config"]["body"]}
    assert all(torch.equal(from_st["model"][k], v) for k, v in ckpt["model"].items())


def test_missing_extra_and_misshaped_keys_fail(tmp_path, network):
    base = {k[7:]: v for k, v in official_state(1).items()}
    missing = dict(base)
    del missing["transformer.decoder.layers.3.norm3.bias"]
    with pytest.raises(
        CheckpointError, match=r"missing keys \(1\): transformer\.decoder\.layers\.3\.norm3\.bias"
    ):
        convert_official_state(missing, network.state_dict())
    extra = dict(base, **{"transformer.decoder.layers.4.norm3.bias": torch.zeros(256)})
    with pytest.raises(
        CheckpointError, match=r"unknown keys \(1\): transformer\.decoder\.layers\.4\.norm3\.bias"
    ):
        convert_official_state(extra, network.state_dict())
    shaped = dict(base, **{"cascade_cam_out.0.weight": torch.zeros(4, 256)})
    with pytest.raises(CheckpointError, match="cascade_cam_out.0.weight"):
        convert_official_state(shaped, network.state_dict())
    table = dict(base, **{OFFICIAL_POS_TABLE: torch.zeros(512, 256)})
    with pytest.raises(CheckpointError, match="pos_table"):
        convert_official_state(table, network.state_dict())
    # the CLI reports the error and leaves no output behind
    src = tmp_path / "bad.pth.tar"
    torch.save({"network": missing}, src)
    out = tmp_path / "out.pt"
    assert cli_main(["convert-official", str(src), str(out)]) == 2
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.pth.tar"]
    torch.save({"something": 1}, tmp_path / "bad.pth.tar")
    assert cli_main(["convert-official", str(src), str(out)]) == 2
