"""The ViViT forward pass (model 1, "spatio-temporal attention", of Arnab et al. 2021), as HF's
`VivitModel` / `VivitForVideoClassification` compute it:

    pixel_values [B, T, C, H, W]
      -> tubelet_embed -> prepend CLS -> + position embeddings      [B, N, D]
      -> L x encoder_block  (pre-norm: x + MHSA(LN(x)), then x + MLP(LN(x)))
      -> final LayerNorm
      -> logits = classifier(CLS)          (VivitForVideoClassification)
         pooler_output = tanh(dense(CLS))  (VivitModel with add_pooling_layer)

Shapes use the letters defined in minivivit/layers.py. `ops` is a backend module
(minivivit.kernels): the numpy one is layers.py itself.

`tap(name, array) -> array`, when given, is called on every named intermediate (see
minivivit.debug for the list of names) and its return value is used in place of the array: this is
how traces and interventions work. With a tap, attention is computed on the explicit path
(scores -> softmax -> context) so that every named array exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layers
from .config import ViViTConfig
from .kernels import get_backend
from .position import resize_grid


@dataclass
class ViViTOutput:
    """What a forward pass returns; fields named as in HF's output classes."""

    logits: np.ndarray | None  # [B, num_labels], None for a base model
    last_hidden_state: np.ndarray  # [B, N, D] after the final LayerNorm
    pooler_output: np.ndarray | None  # [B, pooler_output_size], None without a pooler
    hidden_states: tuple | None  # L+1 arrays [B, N, D]: embeddings, then each block's output
    attentions: tuple | None  # L entries: [B, nh, N, N] (full) or [B, nh, N] (CLS row) or None


def _no_tap(name, x):
    return x


# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------


def embed(pixel_values, proj, cls, pos, *, config: ViViTConfig, ops, interpolate_pos_encoding=False, tap=_no_tap):
    """[B, T, C, H, W] -> [B, N, D]: tubelet tokens, CLS first, plus position embeddings."""
    B, T, C, H, W = pixel_values.shape
    tt, ph, pw = config.tubelet_size
    grid = (T // tt, H // ph, W // pw)  # (t, h, w) of this clip
    patches = tap("embed.patches", ops.tubelet_embed(pixel_values, proj["w"], proj["b"], config.tubelet_size))  # [B, P, D]
    cls_tokens = np.broadcast_to(cls.astype(patches.dtype), (B, 1, patches.shape[-1]))  # [B, 1, D]
    tokens = tap("embed.tokens", np.concatenate([cls_tokens, patches], axis=1))  # [B, N, D]
    if grid != config.grid and interpolate_pos_encoding:
        pos = np.concatenate([pos[:1], resize_grid(pos[1:], config.grid, grid)])  # [N', D]
    return tap("embed.out", tokens + pos)  # [B, N, D] + [N, D]


# ---------------------------------------------------------------------------------------------
# Encoder block
# ---------------------------------------------------------------------------------------------


def self_attention(x, q, k, v, o, *, num_heads, ops, head_mask=None, probs=None, tap=None, name=""):
    """Multi-head self-attention with its output projection: [B, N, D] -> [B, N, D] (+ probs)."""
    q_ = ops.linear(x, q["w"], q.get("b"))  # [B, N, D]
    k_ = ops.linear(x, k["w"], k.get("b"))  # [B, N, D]
    v_ = ops.linear(x, v["w"], v.get("b"))  # [B, N, D]
    if tap is None:
        context, p = ops.attention(q_, k_, v_, num_heads, head_mask, probs)  # [B, N, D]
    else:  # explicit path: every intermediate gets a name and can be replaced
        q_, k_, v_ = tap(f"{name}.q", q_), tap(f"{name}.k", k_), tap(f"{name}.v", v_)
        qh, kh, vh = (layers.split_heads(a, num_heads) for a in (q_, k_, v_))  # [B, nh, N, d]
        scores = tap(f"{name}.scores", layers.attention_scores(qh, kh))  # [B, nh, N, N]
        full = layers.softmax(scores)  # [B, nh, N, N]
        if head_mask is not None:
            full = full * head_mask[None, :, None, None].astype(full.dtype)
        full = tap(f"{name}.probs", full)
        context = tap(f"{name}.context", layers.merge_heads(full @ vh))  # [B, N, D]
        p = {"full": full, "cls": None if probs != "cls" else full[:, :, 0, :], None: None}[probs]
    return ops.linear(context, o["w"], o["b"]), p  # [B, N, D]


def encoder_block(x, ln1, attn, ln2, mlp, *, config: ViViTConfig, ops, head_mask=None, probs=None, tap=None, name=""):
    """One pre-norm transformer block: x + MHSA(LN1(x)), then + MLP(LN2(.)). [B, N, D] -> [B, N, D]."""
    t = tap or _no_tap
    eps = config.layer_norm_eps
    h = t(f"{name}.ln1", ops.layer_norm(x, ln1["g"], ln1["b"], eps))  # [B, N, D]
    a, p = self_attention(h, **attn, num_heads=config.num_attention_heads, ops=ops,
                          head_mask=head_mask, probs=probs, tap=tap, name=name)  # [B, N, D]
    x = t(f"{name}.resid1", t(f"{name}.attn_out", a) + x)  # residual 1
    h = t(f"{name}.ln2", ops.layer_norm(x, ln2["g"], ln2["b"], eps))  # [B, N, D]
    if tap is None:
        h = ops.linear_act(h, mlp["fc1"]["w"], mlp["fc1"]["b"], config.hidden_act)  # [B, N, F]
    else:
        h = t(f"{name}.fc1", ops.linear(h, mlp["fc1"]["w"], mlp["fc1"]["b"]))  # [B, N, F]
        h = t(f"{name}.act", layers.activation(h, config.hidden_act))  # [B, N, F]
    h = t(f"{name}.fc2", ops.linear(h, mlp["fc2"]["w"], mlp["fc2"]["b"]))  # [B, N, F] -> [B, N, D]
    return t(f"{name}.out", h + x), p  # residual 2


# ---------------------------------------------------------------------------------------------
# The whole model
# ---------------------------------------------------------------------------------------------


def vivit_forward(
    params: dict,
    config: ViViTConfig,
    pixel_values: np.ndarray,
    *,
    backend: str = "numpy",
    output_attentions: bool | str = False,
    attention_layers=None,
    attention_dtype=None,
    output_hidden_states: bool = False,
    head_mask=None,
    interpolate_pos_encoding: bool = False,
    tap=None,
) -> ViViTOutput:
    """Run ViViT on pixel_values [B, T, C, H, W]. See Model.__call__ for the arguments."""
    ops = get_backend(backend)
    dtype = params["embed"]["pos"].dtype
    x = _check_pixel_values(pixel_values, config, interpolate_pos_encoding, dtype)
    L = config.num_hidden_layers
    head_mask = _check_head_mask(head_mask, config, dtype)
    probs_kind = {False: None, None: None, True: "full", "full": "full", "cls": "cls"}.get(output_attentions, "?")
    if probs_kind == "?":
        raise ValueError(f"output_attentions must be False, True, 'full' or 'cls'; got {output_attentions!r}")
    keep = _attention_layer_set(attention_layers, L)
    t = tap or _no_tap
    if tap is None and hasattr(ops, "forward"):  # cuda: the whole pass on the device (kernels/cuda_forward.py)
        return ops.forward(params, config, x, probs=probs_kind, keep=keep, head_mask=head_mask,
                           output_hidden_states=output_hidden_states,
                           interpolate_pos_encoding=interpolate_pos_encoding, attention_dtype=attention_dtype)

    e = params["embed"]
    x = embed(x, e["proj"], e["cls"], e["pos"], config=config, ops=ops,
              interpolate_pos_encoding=interpolate_pos_encoding, tap=t)  # [B, N, D]
    hidden, attentions = [x], []
    for i, block in enumerate(params["blocks"]):
        want = probs_kind if i in keep else None
        x, p = encoder_block(x, **block, config=config, ops=ops, head_mask=None if head_mask is None else head_mask[i],
                             probs=want, tap=tap, name=f"blocks.{i}")  # [B, N, D]
        if output_hidden_states:  # otherwise do not keep L arrays [B, N, D] alive (125 MB for ViViT-B)
            hidden.append(x)
        attentions.append(p if p is None or attention_dtype is None else p.astype(attention_dtype))

    n = params["norm"]
    x = t("final_norm", ops.layer_norm(x, n["g"], n["b"], config.layer_norm_eps))  # [B, N, D]
    pooled = logits = None
    if "pooler" in params:
        pooled = ops.linear(x[:, 0], params["pooler"]["w"], params["pooler"]["b"])  # [B, D] -> [B, D']
        pooled = t("pooled", layers.activation(pooled, config.pooler_act))  # tanh by default
    if "head" in params:
        logits = t("logits", ops.linear(x[:, 0], params["head"]["w"], params["head"]["b"]))  # [B, num_labels]
    return ViViTOutput(
        logits=logits,
        last_hidden_state=x,
        pooler_output=pooled,
        hidden_states=tuple(hidden) if output_hidden_states else None,
        attentions=tuple(attentions) if probs_kind else None,
    )


# ---------------------------------------------------------------------------------------------
# Input checks: every error says what was expected and what to do
# ---------------------------------------------------------------------------------------------


def _check_pixel_values(pixel_values, config: ViViTConfig, interpolate_pos_encoding: bool, dtype):
    if not isinstance(pixel_values, np.ndarray):
        if hasattr(pixel_values, "detach"):  # a torch tensor
            raise TypeError("pixel_values is a torch tensor; pass pixel_values.numpy() (minivivit is NumPy only)")
        pixel_values = np.asarray(pixel_values)
    T, (H, W), C = config.num_frames, config.image_hw, config.num_channels
    expected = f"[B, T, C, H, W] = [B, {T}, {C}, {H}, {W}]"
    if pixel_values.ndim != 5:
        hint = " Add a batch axis with pixel_values[None]." if pixel_values.ndim == 4 else ""
        raise ValueError(f"expected pixel_values of shape {expected}; got {pixel_values.shape}.{hint}")
    if not np.issubdtype(pixel_values.dtype, np.floating):
        raise TypeError(
            f"expected float pixel_values (normalised, as minivivit.preprocess returns); got dtype "
            f"{pixel_values.dtype}. Raw uint8 frames must go through minivivit.preprocess first."
        )
    B, T_in, C_in, H_in, W_in = pixel_values.shape
    if C_in != C:
        hint = " It looks like [B, T, H, W, C]; use pixel_values.transpose(0, 1, 4, 2, 3)." if W_in == C else ""
        raise ValueError(f"expected pixel_values of shape {expected}; got {pixel_values.shape} "
                         f"(channel axis 2 has {C_in}, the model has {C}).{hint}")
    tt, ph, pw = config.tubelet_size
    if interpolate_pos_encoding:
        if T_in < tt or H_in < ph or W_in < pw:
            raise ValueError(f"a clip of {T_in}x{H_in}x{W_in} (frames x H x W) is smaller than one tubelet "
                             f"{config.tubelet_size}")
    elif (T_in, H_in, W_in) != (T, H, W):
        raise ValueError(
            f"expected pixel_values of shape {expected}; got {pixel_values.shape}. Pass "
            f"interpolate_pos_encoding=True to resize the position embeddings to this clip, or resample the clip "
            f"to {T} frames of {H}x{W}."
        )
    if B == 0:
        raise ValueError("pixel_values has batch size 0; expected at least one clip")
    if not np.isfinite(pixel_values).all():
        raise ValueError("pixel_values contains NaN or infinity; check the frames and the preprocessing")
    return pixel_values.astype(dtype, copy=False)


def _check_head_mask(head_mask, config: ViViTConfig, dtype):
    """Accept [nh] (same for every layer) or [L, nh]; return [L, nh] or None."""
    if head_mask is None:
        return None
    m = np.asarray(head_mask, dtype=dtype)
    L, nh = config.num_hidden_layers, config.num_attention_heads
    if m.shape == (nh,):
        m = np.broadcast_to(m, (L, nh))
    if m.shape != (L, nh):
        raise ValueError(f"head_mask must have shape ({nh},) or ({L}, {nh}) (layers, heads); got {m.shape}")
    return m


def _attention_layer_set(attention_layers, L):
    if attention_layers is None:
        return set(range(L))
    chosen = set()
    for i in attention_layers:
        if not -L <= int(i) < L:
            raise ValueError(f"attention_layers: layer {i} does not exist; the model has layers 0..{L - 1}")
        chosen.add(int(i) % L)
    return chosen


class Model:
    """A thin handle over (params, config): `model(pixel_values)` runs the forward pass.

    params is the nested dict described in minivivit/weights.py; config a ViViTConfig.
    """

    def __init__(self, params: dict, config: ViViTConfig):
        self.params = params
        self.config = config

    def __call__(
        self,
        pixel_values,
        backend: str = "numpy",
        output_attentions: bool | str = False,
        output_hidden_states: bool = False,
        head_mask=None,
        interpolate_pos_encoding: bool = False,
        attention_layers=None,
        attention_dtype=None,
    ) -> ViViTOutput:
        """Forward pass. pixel_values: float [B, T, C, H, W] (HF's layout, e.g. from minivivit.preprocess).

        backend: "numpy" (reference), "numba" (CPU JIT) or "cuda".
        output_attentions: False; True / "full" for [B, nh, N, N] maps; "cls" for the CLS rows [B, nh, N].
        attention_layers: which layers to keep maps for (others are None); None keeps all.
        attention_dtype: e.g. np.float16 to halve the memory of stored maps.
        head_mask: [nh] or [L, nh]; multiplies each head's attention probabilities (0 switches a head off).
        interpolate_pos_encoding: resize the (t, h, w) position grid to a clip of another size.
        """
        return vivit_forward(
            self.params, self.config, pixel_values, backend=backend, output_attentions=output_attentions,
            attention_layers=attention_layers, attention_dtype=attention_dtype,
            output_hidden_states=output_hidden_states, head_mask=head_mask,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )

    @property
    def dtype(self):
        return self.params["embed"]["pos"].dtype

    @property
    def has_head(self) -> bool:
        return "head" in self.params

    @property
    def labels(self) -> list[str]:
        return [self.config.id2label[i] for i in range(self.config.num_labels)]

    def to(self, dtype) -> "Model":
        """A copy with every parameter cast to dtype (np.float64 for rounding-free teaching runs)."""
        from .weights import map_params

        return Model(map_params(lambda a: a.astype(dtype), self.params), self.config)

    def num_params(self) -> int:
        from .weights import flatten_params

        return sum(a.size for a in flatten_params(self.params).values())

    def save(self, path, overwrite: bool = False):
        """Write a minivivit .safetensors file (atomically; refuses to overwrite unless asked)."""
        from .weights import save

        save(path, self.params, self.config, overwrite=overwrite)

    def __repr__(self):
        c = self.config
        kind = "classifier" if self.has_head else "base model" + (" + pooler" if "pooler" in self.params else "")
        return (f"Model(ViViT {kind}: {c.num_hidden_layers} layers, D={c.hidden_size}, {c.num_attention_heads} heads, "
                f"clip {c.num_frames}x{c.image_hw[0]}x{c.image_hw[1]}, tubelet {c.tubelet_size}, "
                f"{self.num_params() / 1e6:.2f}M params, {self.dtype})")
