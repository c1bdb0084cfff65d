"""The cost of one clip through a ViViT, counted as the paper counts it.

Convention: FLOPs here are multiply-adds of the matrix products (one multiply-add = one FLOP), the common
convention in the vision literature and the one of the paper's Table 2, whose numbers come from Scenic's
`debug_utils.compute_flops(..., fuse_multiply_add=True)`: XLA's cost analysis of the compiled model, halved
because XLA counts a multiply-add as two. XLA also counts the elementwise work (softmax, LayerNorm, GELU,
residual and bias adds), halved as well; that is left out here, which puts these counts 0.3-0.8% below
Table 2 for ViViT-B (docs/factorised-models.md has the table). Multiply by 2 for "FLOPs" as in "2 per
multiply-add".

What is counted, per clip (letters of minivivit/layers.py; S = h*w, G groups of n tokens each):
    tubelet projection          P * K * D
    attention in G groups       G * (4 n D^2 + 2 n^2 D)      Q, K, V, output projections; Q K^T and P V
    MLP                         2 N D F
    pre-logits, head            D R,  (R or D) * labels
    Model 1: one group of N = P (+1) tokens per block.  Model 2: L blocks over t groups of n_s = S (+1), then
    temporal_num_layers blocks over one group of n_t = t (+1).  Model 3: per block, time attention (S groups
    of t) and space attention (t groups of S).  Model 4: the projections of Model 1's block, and half the
    heads' Q K^T and P V over time (S groups of t), half over space (t groups of S): P D (t + S).
"""

from __future__ import annotations

from .config import ViViTConfig


def _attention(groups: int, n: int, D: int) -> dict[str, int]:
    return {"attention_projections": groups * 4 * n * D * D, "attention_products": groups * 2 * n * n * D}


def _add(total: dict, part: dict, times: int = 1):
    for k, v in part.items():
        total[k] = total.get(k, 0) + v * times


def flops(config: ViViTConfig, breakdown: bool = False, head: bool = True):
    """Multiply-adds for one clip of config's size: an int, or with breakdown=True a dict of the parts
    (embedding, attention_projections, attention_products, mlp, head) and their total."""
    D, F, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tt, ph, pw = config.tubelet_size
    t, h, w = config.grid
    S, P = h * w, t * h * w
    token = int(config.classifier == "token")
    K = tt * ph * pw * config.num_channels
    parts = {"embedding": P * K * D}
    kind = config.attention_type
    if kind == "spacetime":
        N = P + token
        _add(parts, _attention(1, N, D), L)
        _add(parts, {"mlp": 2 * N * D * F}, L)
    elif kind == "factorized_encoder":
        n_s, n_t = S + token, t + token
        _add(parts, _attention(t, n_s, D), L)
        _add(parts, {"mlp": 2 * t * n_s * D * F}, L)
        _add(parts, _attention(1, n_t, D), config.temporal_num_layers)
        _add(parts, {"mlp": 2 * n_t * D * F}, config.temporal_num_layers)
    elif kind == "factorized_self_attention_block":
        _add(parts, _attention(S, t, D), L)  # time: S groups of t tokens
        _add(parts, _attention(t, S, D), L)  # space: t groups of S tokens
        _add(parts, {"mlp": 2 * P * D * F}, L)
    else:  # factorized_dot_product_attention: half the heads (D/2 channels) over time, half over space
        _add(parts, {"attention_projections": 4 * P * D * D, "attention_products": P * D * (t + S), "mlp": 2 * P * D * F},
             L)
    width = D
    if config.representation_size is not None:
        parts["head"] = D * config.representation_size
        width = config.representation_size
    if head:
        parts["head"] = parts.get("head", 0) + width * config.num_labels
    parts["total"] = sum(parts.values())
    return parts if breakdown else parts["total"]
