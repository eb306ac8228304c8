"""Our network against an independent, functional re-statement of the official forward pass
(jotr-reference §1), driven by the *official* key names: checks the rename table and the architecture's
conventions together (token order, depth-anchor channels, positional encodings, q/k/v layout, coarse-to-fine
sampling, cascades)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from test_model import make_inputs

from jotr.config import merge_config
from jotr.models.config import ModelConfig
from jotr.models.jotr import JOTR
from jotr.models.official import official_name
from jotr.models.resnet import ResNet

# A reduced config with the official topology (VPoser head, 4 decoder layers), fast enough for a unit test.
CFG = merge_config(
    ModelConfig.small(),
    {"pose_head": "vposer", "d_model": 32, "nhead": 4, "ffn_dim_2d": 64, "ffn_dim_3d": 48, "ffn_dim_dec": 64},
)


def mha(q, k, v, sd, prefix, nhead):
    """nn.MultiheadAttention (sequence-first) with official weights."""
    out, _ = F.multi_head_attention_forward(
        q,
        k,
        v,
        q.shape[-1],
        nhead,
        sd[prefix + "in_proj_weight"],
        sd[prefix + "in_proj_bias"],
        None,
        None,
        False,
        0.0,
        sd[prefix + "out_proj.weight"],
        sd[prefix + "out_proj.bias"],
        training=False,
        need_weights=False,
    )
    return out


def ln(x, sd, prefix):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + "weight"], sd[prefix + "bias"])


def lin(x, sd, prefix):
    return F.linear(x, sd[prefix + "weight"], sd[prefix + "bias"])


def enc_layer(src, pos, sd, p, nhead):
    q = src + pos
    src = ln(src + mha(q, q, src, sd, p + "self_attn.", nhead), sd, p + "norm1.")
    return ln(src + lin(F.relu(lin(src, sd, p + "linear1.")), sd, p + "linear2."), sd, p + "norm2.")


def dec_layer(tgt, memory, pos, query_pos, sd, p, nhead):
    q = tgt + query_pos
    tgt = ln(tgt + mha(q, q, tgt, sd, p + "self_attn.", nhead), sd, p + "norm1.")
    tgt = ln(
        tgt + mha(tgt + query_pos, memory + pos, memory, sd, p + "multihead_attn.", nhead), sd, p + "norm2."
    )
    return ln(tgt + lin(F.relu(lin(tgt, sd, p + "linear1.")), sd, p + "linear2."), sd, p + "norm3.")


def invsig(x, eps=1e-5):
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def gram_schmidt(x):  # (..., 6) read as 3x2 -> rotation with columns b1, b2, b3
    a = x.reshape(-1, 3, 2)
    b1 = F.normalize(a[:, :, 0], dim=1)
    b2 = F.normalize(a[:, :, 1] - (b1 * a[:, :, 1]).sum(1, keepdim=True) * b1, dim=1)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=1)], dim=-1)


def sine_pos(h, w, c):  # DETR PositionEmbeddingSine(c/2, normalize=True) on an unpadded map -> (B=1, c, h, w)
    not_mask = torch.ones(1, h, w)
    y = not_mask.cumsum(1)
    x = not_mask.cumsum(2)
    y = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    n = c // 2
    dim_t = 10000 ** (2 * (torch.arange(n, dtype=torch.float32) // 2) / n)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


def pos_table(n, c):
    table = torch.tensor(
        [[pos / math.pow(10000, 2 * (j // 2) / c) for j in range(c)] for pos in range(n)], dtype=torch.float64
    )
    table[:, 0::2] = table[:, 0::2].sin()
    table[:, 1::2] = table[:, 1::2].cos()
    return table.float()


def official_forward(sd, backbone: ResNet, x, cfg: ModelConfig):
    """The official inference path, written from the reference sheet with the official parameter names."""
    B, d, D, L, nh = x.image.shape[0], cfg.d_model, cfg.volume_depth, cfg.dec_layers, cfg.nhead
    g = torch.arange(cfg.heatmap_size, dtype=torch.float32)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    kx, ky = x.keypoints_hm[:, :, 0, None, None], x.keypoints_hm[:, :, 1, None, None]
    hm = torch.exp(-(((xx - kx) / cfg.heatmap_sigma) ** 2) / 2 - (((yy - ky) / cfg.heatmap_sigma) ** 2) / 2)
    hm = hm * x.keypoints_valid[:, :, None, None]
    feat = backbone.stem(x.image)
    feat = F.conv2d(
        torch.cat([feat, hm], 1), sd["pose2feat.conv.0.weight"], sd["pose2feat.conv.0.bias"], padding=1
    )
    feat = F.relu(
        F.batch_norm(
            feat,
            sd["pose2feat.conv.1.running_mean"],
            sd["pose2feat.conv.1.running_var"],
            sd["pose2feat.conv.1.weight"],
            sd["pose2feat.conv.1.bias"],
            False,
        )
    )
    feat = backbone.stages(feat)
    n = feat.shape[-1]
    # 3D branch
    dense = rearrange(
        F.conv2d(feat, sd["conv2d_to_3d.weight"], sd["conv2d_to_3d.bias"]),
        "b (c d) h w -> b c d h w",
        c=d,
        d=D,
    )
    k = sd["exponent"].clamp(1, 20)
    r = torch.arange(n, dtype=torch.float32) / n
    z = (torch.arange(D, dtype=torch.float32) / D) ** k
    anchors = torch.stack(torch.meshgrid(z, r, r, indexing="ij"))[None].expand(B, 3, D, n, n)  # (Z, Y, X)
    dense = F.conv3d(torch.cat([dense, anchors], 1), sd["conv_3d_coord.0.weight"], sd["conv_3d_coord.0.bias"])
    dense = rearrange(dense, "b c d h w -> (d h w) b c")
    pos3 = pos_table(D * n * n, d)[:, None]
    for i in range(cfg.enc_layers_3d):
        dense = enc_layer(dense, pos3, sd, f"refine_3d.layers.{i}.", nh)
    dense = ln(dense, sd, "refine_3d.norm.")
    volume = rearrange(dense, "(d h w) b c -> b c d h w", d=D, h=n, w=n)
    # 2D branch
    img = F.conv2d(feat, sd["down_linear.weight"], sd["down_linear.bias"])
    img_pos = rearrange(sine_pos(n, n, d).expand(B, -1, -1, -1), "b c h w -> (h w) b c")
    memory = rearrange(img, "b c h w -> (h w) b c")
    for i in range(cfg.enc_layers_2d):
        memory = enc_layer(memory, img_pos, sd, f"transformer.encoder.layers.{i}.", nh)
    # decoder
    query_pos = torch.cat([sd["spose_shape_cam_param"], sd["query.weight"]], 0)[:, None].expand(-1, B, -1)
    tgt = torch.cat(
        [sd["transformer.smpl_tgt"].expand(3, B, d), sd["transformer.kp_tgt"].expand(15, B, d)], 0
    )
    mem, pos, hs = memory, img_pos, []
    for i in range(L):
        tgt = ln(
            dec_layer(tgt, mem, pos, query_pos, sd, f"transformer.decoder.layers.{i}.", nh),
            sd,
            "transformer.decoder.norm.",
        )
        hs.append(tgt[:3])
        h = tgt[3:].transpose(0, 1)
        if i == 0:
            joint = lin(h, sd, "transformer.decoder.joint_img_regress.0.").sigmoid()
        else:
            s = invsig(joint)
            joint = (
                s + lin(torch.cat([h, s], -1), sd, f"transformer.decoder.joint_img_regress.{i}.")
            ).sigmoid()
        grid = torch.cat([joint[..., :2] * 2 - 1, joint[..., 2:] ** k * 2 - 1], -1)[:, None, None]
        sampled = F.grid_sample(volume, grid, mode="bilinear", align_corners=True)[:, :, 0, 0].permute(
            2, 0, 1
        )
        sp = invsig(joint)
        sp = lin(
            F.relu(
                ln(lin(sp, sd, "transformer.decoder.fc_pos_3d.0."), sd, "transformer.decoder.fc_pos_3d.1.")
            ),
            sd,
            "transformer.decoder.fc_pos_3d.3.",
        ).transpose(0, 1)
        mem, pos = torch.cat([memory, sampled], 0), torch.cat([img_pos, sp], 0)
    hs = torch.stack(hs).transpose(1, 2)  # (L, B, 3, C)

    def cascade(tokens, name):
        out = lin(tokens[0], sd, f"{name}.0.")
        for i in range(1, L):
            out = out + lin(torch.cat([tokens[i], out], -1), sd, f"{name}.{i}.")
        return out

    root = gram_schmidt(cascade(hs[:, :, 0], "cascade_root_pose_out"))
    latent = cascade(hs[:, :, 0], "cascade_pose_out")
    v = F.leaky_relu(lin(latent, sd, "vposer.vposer.bodyprior_dec_fc1."), 0.2)
    v = F.leaky_relu(lin(v, sd, "vposer.vposer.bodyprior_dec_fc2."), 0.2)
    body = gram_schmidt(lin(v, sd, "vposer.vposer.bodyprior_dec_out.")).reshape(B, 21, 3, 3)
    shape = cascade(hs[:, :, 1], "cascade_shaoe_out")
    cam = cascade(hs[:, :, 2], "cascade_cam_out")
    return joint, root, body, shape, cam, volume


def test_matches_official_forward_with_official_names(toy_body):
    torch.manual_seed(0)
    model = JOTR(CFG, toy_body, pretrained=False).eval()
    with torch.no_grad():  # non-trivial values everywhere (content queries and BN statistics included)
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(
                    torch.rand_like(t) + 0.5
                    if name.endswith("running_var")
                    else t + 0.05 * torch.randn_like(t)
                )
    official = {official_name(k, CFG): v for k, v in model.state_dict().items()}
    assert None not in official
    x = make_inputs(CFG, 2, seed=1)
    with torch.no_grad():
        ours = model(x)
        joint, root, body, shape, cam, volume = official_forward(official, model.backbone, x, CFG)
    assert torch.allclose(ours.feat_volume, volume, atol=1e-4)
    assert torch.allclose(ours.joints_unit[-1], joint, atol=1e-5)
    assert torch.allclose(ours.pose_rotmat[:, 0], root, atol=1e-5)
    assert torch.allclose(ours.pose_rotmat[:, 1:22], body, atol=1e-5)
    assert torch.allclose(ours.shape, shape, atol=1e-5)
    assert torch.allclose(ours.cam, cam, atol=1e-5)
