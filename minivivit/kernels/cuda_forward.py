"""The whole ViViT forward pass on the GPU: one upload (the clip), downloads only of what was asked for.

The same steps as minivivit/model.py, on device arrays, with the kernels of this folder. Tokens are kept
2-D on the device, [B*N, D] (row b*N + n is token n of clip b), because the GEMM and LayerNorm kernels
work on rows; `.reshape(B, N, D)` views them as [B, N, D] where attention needs it (no copy).

Parameters come from cuda_memory.device_params: uploaded on the first call, then cached.
"""

from __future__ import annotations

import numpy as np

from ..config import ViViTConfig
from ..model import ViViTOutput
from ..position import resize_grid
from . import cuda_attention, cuda_embed, cuda_gemm, cuda_layernorm
from .cuda_memory import device_params, empty, upload


def encoder_block(x, ln1, attn, ln2, mlp, *, B, config: ViViTConfig, head_mask, probs=None):
    """One pre-norm block on the device: x [B*N, D] -> (x [B*N, D], probabilities on the device or None).

    probs: None, "full" ([B, nh, N, N]) or "cls" ([B, nh, 1, N]). head_mask: device [nh].
    """
    M, D = x.shape
    N, nh, eps = M // B, config.num_attention_heads, config.layer_norm_eps
    h = cuda_layernorm.layer_norm(empty(M, D), x, ln1["g"], ln1["b"], eps)  # [M, D]
    q, k, v = (cuda_gemm.gemm(empty(M, D), h, attn[n]["w"], attn[n].get("b")) for n in "qkv")  # [M, D] each
    context = empty(B, N, D)
    p = None if probs is None else empty(B, nh, 1 if probs == "cls" else N, N)
    cuda_attention.attention(context, p, q.reshape(B, N, D), k.reshape(B, N, D), v.reshape(B, N, D), head_mask,
                             cls_only=probs == "cls")  # [B, N, D]
    x = cuda_gemm.gemm(empty(M, D), context.reshape(M, D), attn["o"]["w"], attn["o"]["b"], residual=x)  # x + MHSA
    h = cuda_layernorm.layer_norm(empty(M, D), x, ln2["g"], ln2["b"], eps)  # [M, D]
    F = mlp["fc1"]["w"].shape[1]
    h = cuda_gemm.gemm(empty(M, F), h, mlp["fc1"]["w"], mlp["fc1"]["b"], act=config.hidden_act)  # [M, D] -> [M, F]
    x = cuda_gemm.gemm(empty(M, D), h, mlp["fc2"]["w"], mlp["fc2"]["b"], residual=x)  # [M, F] -> [M, D], x + MLP
    return x, p


def forward(params: dict, config: ViViTConfig, pixel_values: np.ndarray, *, probs=None, keep=None, head_mask=None,
            output_hidden_states=False, interpolate_pos_encoding=False, attention_dtype=None) -> ViViTOutput:
    """ViViT on pixel_values [B, T, C, H, W] float32, entirely on the GPU; returns what model.vivit_forward does.

    Takes model.vivit_forward's arguments after its input checks: probs None | "full" | "cls"; keep: the set of
    layers whose maps to return (None = all); head_mask: [L, nh] or None.
    """
    dev = device_params(params)  # uploaded on the first call, cached afterwards
    B, T, _, H, W = pixel_values.shape  # [B, T, C, H, W]
    tt, ph, pw = config.tubelet_size
    grid = (T // tt, H // ph, W // pw)  # (t, h, w) of this clip
    P, D, L, nh = grid[0] * grid[1] * grid[2], config.hidden_size, config.num_hidden_layers, config.num_attention_heads
    N = P + 1

    pos = dev["embed"]["pos"]  # [N, D]
    if grid != config.grid and interpolate_pos_encoding:  # as model.embed: resize on the host, upload the result
        host_pos = params["embed"]["pos"]
        pos = upload("pos", np.concatenate([host_pos[:1], resize_grid(host_pos[1:], config.grid, grid)]))  # [N', D]
    proj = dev["embed"]["proj"]
    patches = cuda_embed.tubelet_embed(empty(B * P, D), upload("pixel_values", pixel_values), proj["w"], proj["b"],
                                       config.tubelet_size)  # [B, T, C, H, W] -> [B*P, D]
    x = cuda_embed.tokens(empty(B * N, D), patches, dev["embed"]["cls"], pos)  # [B*N, D], CLS first, + pos

    masks = np.ones((L, nh), np.float32) if head_mask is None else head_mask  # [L, nh]
    hidden = [x.copy_to_host().reshape(B, N, D)] if output_hidden_states else None
    attentions = []
    for i, block in enumerate(dev["blocks"]):
        want = probs if keep is None or i in keep else None
        x, p = encoder_block(x, **block, B=B, config=config, head_mask=upload("head_mask", masks[i]), probs=want)
        if hidden is not None:
            hidden.append(x.copy_to_host().reshape(B, N, D))  # [B*N, D] -> [B, N, D]
        if p is not None:
            p = p.copy_to_host().reshape(B, nh, N) if want == "cls" else p.copy_to_host()  # [B, nh, N] | [B, nh, N, N]
            p = p if attention_dtype is None else p.astype(attention_dtype)
        attentions.append(p)

    n = dev["norm"]
    x = cuda_layernorm.layer_norm(empty(B * N, D), x, n["g"], n["b"], config.layer_norm_eps)  # [B*N, D]
    cls_rows = x.reshape(B, N, D)[:, 0]  # [B, D], a strided view of the CLS tokens
    pooled = logits = None
    if "pooler" in dev:
        w, b = dev["pooler"]["w"], dev["pooler"]["b"]
        pooled = cuda_gemm.gemm(empty(B, w.shape[1]), cls_rows, w, b, act=config.pooler_act).copy_to_host()  # [B, D']
    if "head" in dev:
        w, b = dev["head"]["w"], dev["head"]["b"]
        logits = cuda_gemm.gemm(empty(B, w.shape[1]), cls_rows, w, b).copy_to_host()  # [B, num_labels]
    return ViViTOutput(
        logits=logits,
        last_hidden_state=x.copy_to_host().reshape(B, N, D),
        pooler_output=pooled,
        hidden_states=tuple(hidden) if hidden is not None else None,
        attentions=tuple(attentions) if probs else None,
    )
