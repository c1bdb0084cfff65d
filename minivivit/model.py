"""The ViViT forward pass (model 1, "spatio-temporal attention", of Arnab et al. 2021), as HF's
`VivitModel` / `VivitForVideoClassification` compute it:

    pixel_values [B, T, C, H, W]
      -> tubelet_embed -> prepend CLS -> + position embeddings      [B, N, D]
      -> L x encoder_block  (pre-norm: x + MHSA(LN(x)), then x + MLP(LN(x)))
      -> final LayerNorm
      -> logits = classifier(CLS)          (VivitForVideoClassification)
         pooler_output = tanh(dense(CLS))  (VivitModel with add_pooling_layer)

This is the only forward pass: every backend runs it, op by op. `ops` is a backend module (see
minivivit/kernels/__init__.py for the contract); the numpy one is layers.py itself. Shapes use the
letters defined in minivivit/layers.py.

The tap. Every named intermediate below is shown to `tap(name, array) -> array` and the forward
continues with what the tap returns: that is how traces and interventions work (minivivit.debug).
The default tap shows nothing. A tap may have a method `wants(name) -> bool`; a plain function wants
every name. Two names exist only when a tap wants them, because the fast kernels never materialise
an N x N matrix: for such a layer, attention runs as the reference's three steps
(layers.attention_scores -> attention_probs -> probs @ V) so that scores and probs can be seen and
replaced. Likewise fc1 and act are separate steps only when a tap wants them (linear_act fuses them).

Trace names (an API: debug.trace, debug.hf_trace, interventions and the notebooks use them):

    embed.patches      [B, P, D]      tubelet projection (HF: embeddings.patch_embeddings, Conv3d flattened)
    embed.tokens       [B, N, D]      CLS prepended
    embed.out          [B, N, D]      + position embeddings (HF: embeddings)
    blocks.i.ln1       [B, N, D]      LayerNorm before attention (HF: layers[i].layernorm_before)
    blocks.i.q/.k/.v   [B, N, D]      projections, heads not yet split (HF: attention.q_proj/k_proj/v_proj)
    blocks.i.scores    [B, nh, N, N]  Q K^T / sqrt(d), before softmax
    blocks.i.probs     [B, nh, N, N]  softmax(scores), times head_mask if given (HF: attn_weights)
    blocks.i.context   [B, N, D]      probs @ V, heads merged (HF: input of attention.o_proj)
    blocks.i.attn_out  [B, N, D]      output projection (HF: attention.o_proj)
    blocks.i.resid1    [B, N, D]      x + attn_out (HF: input of layernorm_after)
    blocks.i.ln2       [B, N, D]      LayerNorm before the MLP (HF: layernorm_after)
    blocks.i.fc1       [B, N, F]      first MLP layer, before the activation (HF: mlp.fc1)
    blocks.i.act       [B, N, F]      activation (hidden_act) (HF: input of mlp.fc2)
    blocks.i.fc2       [B, N, D]      second MLP layer (HF: mlp.fc2)
    blocks.i.out       [B, N, D]      resid1 + fc2: the block output, = hidden_states[i + 1]
    final_norm         [B, N, D]      last LayerNorm, = last_hidden_state (HF: layernorm)
    pooled             [B, D']        pooler_act(dense(CLS)), base models with a pooler only (HF: pooler)
    logits             [B, num_labels] classifier(CLS), classifiers only (HF: classifier)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layers
from .config import ViViTConfig
from .inputs import (
    attention_layer_set,
    attention_request,
    attention_storage_dtype,
    cast_pixel_values,
    check_forward_memory,
    check_head_mask,
    check_outputs,
    check_pixel_values,
)
from .kernels import get_backend
from .position import resize_grid
from .tokens import clip_thw, tubelet_grid
from .weights import check_params, flatten_params

EMBED_NAMES = ("embed.patches", "embed.tokens", "embed.out")
BLOCK_NAMES = ("ln1", "q", "k", "v", "scores", "probs", "context", "attn_out", "resid1", "ln2", "fc1", "act", "fc2",
               "out")


def trace_names(num_layers: int, head: bool = True, pooler: bool = False) -> list[str]:
    """Every trace name in forward order, for a model with num_layers blocks (and a head / a pooler)."""
    names = list(EMBED_NAMES)
    names += [f"blocks.{i}.{n}" for i in range(num_layers) for n in BLOCK_NAMES]
    return names + ["final_norm"] + ["pooled"] * pooler + ["logits"] * head


@dataclass
class ViViTOutput:
    """What a forward pass returns; fields named as in HF's output classes. All NumPy arrays."""

    logits: np.ndarray | None  # [B, num_labels], None for a base model
    last_hidden_state: np.ndarray  # [B, N, D] after the final LayerNorm
    pooler_output: np.ndarray | None  # [B, pooler_output_size], None without a pooler
    hidden_states: tuple | None  # L+1 arrays [B, N, D]: embeddings, then each block's output
    attentions: tuple | None  # L entries: [B, nh, N, N] (full) or [B, nh, N] (CLS row) or None


class NoTap:
    """The default tap: wants no name, so the forward runs on its fast path and shows nothing."""

    def __call__(self, name, x):
        return x

    def wants(self, name) -> bool:
        return False


NO_TAP = NoTap()


def wants(tap, name: str) -> bool:
    """Whether `tap` asks to see `name` (a plain function sees every name)."""
    return getattr(tap, "wants", None) is None or tap.wants(name)


def show(tap, ops, name: str, x):
    """Show x to the tap as a NumPy array, if it wants `name`, and continue with what the tap returns."""
    return tap(name, ops.to_numpy(x)) if wants(tap, name) else x


# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------


def embed(pixel_values, proj, cls, pos, *, config: ViViTConfig, ops, interpolate_pos_encoding=False, tap=NO_TAP):
    """[B, T, C, H, W] -> [B, N, D]: tubelet tokens, CLS first, plus position embeddings."""
    grid = tubelet_grid(clip_thw(pixel_values.shape), config.tubelet_size)  # (t, h, w) of this clip
    patches = show(tap, ops, "embed.patches",
                   ops.tubelet_embed(pixel_values, proj["w"], proj["b"], config.tubelet_size))  # [B, P, D]
    tokens = show(tap, ops, "embed.tokens", ops.prepend_cls(patches, cls))  # [B, N, D]
    if grid != config.grid and interpolate_pos_encoding:
        pos = np.concatenate([pos[:1], resize_grid(pos[1:], config.grid, grid)])  # [N', D]
    return show(tap, ops, "embed.out", ops.add(tokens, pos))  # [B, N, D] + [N, D]


# ---------------------------------------------------------------------------------------------
# Encoder block
# ---------------------------------------------------------------------------------------------


def self_attention(x, q, k, v, o, *, num_heads, ops, head_mask=None, output_attentions=None, tap=NO_TAP, name=""):
    """Multi-head self-attention with its output projection: [B, N, D] -> ([B, N, D], maps or None).

    output_attentions: None, "full" ([B, nh, N, N]) or "cls" ([B, nh, N]) maps to return.
    """
    q_ = show(tap, ops, f"{name}.q", ops.linear(x, q["w"], q.get("b")))  # [B, N, D]
    k_ = show(tap, ops, f"{name}.k", ops.linear(x, k["w"], k.get("b")))  # [B, N, D]
    v_ = show(tap, ops, f"{name}.v", ops.linear(x, v["w"], v.get("b")))  # [B, N, D]
    if wants(tap, f"{name}.scores") or wants(tap, f"{name}.probs"):  # the reference's steps, each one shown
        qh, kh, vh = (layers.split_heads(ops.to_numpy(a), num_heads) for a in (q_, k_, v_))  # [B, nh, N, d]
        scores = show(tap, layers, f"{name}.scores", layers.attention_scores(qh, kh))  # [B, nh, N, N]
        gain = None if head_mask is None else head_mask[:, None, None]  # [nh, 1, 1]
        probs = show(tap, layers, f"{name}.probs", layers.attention_probs(scores.copy(), gain))  # [B, nh, N, N]
        context = layers.merge_heads(probs @ vh)  # [B, nh, N, d] -> [B, N, D]
        maps = {None: None, "full": probs, "cls": probs[:, :, 0]}[output_attentions]
    else:
        context, maps = ops.attention(q_, k_, v_, num_heads, head_mask, output_attentions)  # [B, N, D]
    context = show(tap, ops, f"{name}.context", context)
    return show(tap, ops, f"{name}.attn_out", ops.linear(context, o["w"], o["b"])), maps  # [B, N, D]


def feed_forward(x, fc1, fc2, *, config: ViViTConfig, ops, tap=NO_TAP, name=""):
    """The feed-forward sublayer fc2(act(fc1(x))): [B, N, D] -> [B, N, F] -> [B, N, D]."""
    if wants(tap, f"{name}.fc1") or wants(tap, f"{name}.act"):  # unfused, so that both names exist
        h = show(tap, ops, f"{name}.fc1", ops.linear(x, fc1["w"], fc1["b"]))  # [B, N, F]
        h = show(tap, ops, f"{name}.act", ops.activation(h, config.hidden_act))  # [B, N, F]
    else:
        h = ops.linear_act(x, fc1["w"], fc1["b"], config.hidden_act)  # [B, N, F], bias + activation fused
    return show(tap, ops, f"{name}.fc2", ops.linear(h, fc2["w"], fc2["b"]))  # [B, N, D]


def attention_sublayer(x, ln1, attn, *, config: ViViTConfig, ops, head_mask=None, output_attentions=None,
                       tap=NO_TAP, name=""):
    """MHSA(LN1(x)): [B, N, D] -> ([B, N, D], maps or None). Also used alone to recompute one layer's maps."""
    h = show(tap, ops, f"{name}.ln1", ops.layer_norm(x, ln1["g"], ln1["b"], config.layer_norm_eps))  # [B, N, D]
    return self_attention(h, **attn, num_heads=config.num_attention_heads, ops=ops, head_mask=head_mask,
                          output_attentions=output_attentions, tap=tap, name=name)


def encoder_block(x, ln1, attn, ln2, mlp, *, config: ViViTConfig, ops, head_mask=None, output_attentions=None,
                  tap=NO_TAP, name=""):
    """One pre-norm transformer block: x + MHSA(LN1(x)), then + MLP(LN2(.)). [B, N, D] -> ([B, N, D], maps)."""
    a, maps = attention_sublayer(x, ln1, attn, config=config, ops=ops, head_mask=head_mask,
                                 output_attentions=output_attentions, tap=tap, name=name)  # [B, N, D]
    x = show(tap, ops, f"{name}.resid1", ops.add(x, a))  # residual 1
    h = show(tap, ops, f"{name}.ln2", ops.layer_norm(x, ln2["g"], ln2["b"], config.layer_norm_eps))  # [B, N, D]
    h = feed_forward(h, **mlp, config=config, ops=ops, tap=tap, name=name)  # [B, N, D]
    return show(tap, ops, f"{name}.out", ops.add(x, h)), maps  # residual 2


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
    tap=NO_TAP,
) -> ViViTOutput:
    """Run ViViT on pixel_values [B, T, C, H, W]. See Model.__call__ for the arguments."""
    ops = get_backend(backend)
    check_params(flatten_params(params), config, source="params")  # every key and shape (params of another config?)
    dtype = params["embed"]["pos"].dtype
    request = attention_request(output_attentions)  # None | "full" | "cls"
    keep = attention_layer_set(attention_layers, config.num_hidden_layers)
    attention_dtype = attention_storage_dtype(attention_dtype)  # None or a float dtype
    head_mask = check_head_mask(head_mask, config, dtype)  # [L, nh] or None
    x = check_pixel_values(pixel_values, config, interpolate_pos_encoding)
    check_forward_memory(x.shape, config, dtype.itemsize, backend, request, len(keep) if request else 0,
                         attention_dtype.itemsize if attention_dtype else None, output_hidden_states)
    x = cast_pixel_values(x, dtype)  # [B, T, C, H, W]
    tap = tap or NO_TAP

    e = params["embed"]
    x = embed(x, e["proj"], e["cls"], e["pos"], config=config, ops=ops,
              interpolate_pos_encoding=interpolate_pos_encoding, tap=tap)  # [B, N, D]
    hidden, attentions = [ops.to_numpy(x)] if output_hidden_states else None, []
    for i, block in enumerate(params["blocks"]):
        mask = None if head_mask is None else head_mask[i]  # [nh]
        x, maps = encoder_block(x, **block, config=config, ops=ops, head_mask=mask,
                                output_attentions=request if i in keep else None, tap=tap, name=f"blocks.{i}")
        if hidden is not None:  # otherwise do not keep L arrays [B, N, D] alive (125 MB for ViViT-B)
            hidden.append(ops.to_numpy(x))
        if maps is not None:
            maps = ops.to_numpy(maps)
            maps = maps if attention_dtype is None else maps.astype(attention_dtype)
        attentions.append(maps)

    n = params["norm"]
    x = show(tap, ops, "final_norm", ops.layer_norm(x, n["g"], n["b"], config.layer_norm_eps))  # [B, N, D]
    pooled = logits = None
    if "pooler" in params:  # tanh(dense(CLS)) by default
        p = params["pooler"]
        pooled = show(tap, ops, "pooled", ops.linear_act(x[:, 0], p["w"], p["b"], config.pooler_act))  # [B, D']
    if "head" in params:
        logits = show(tap, ops, "logits", ops.linear(x[:, 0], params["head"]["w"], params["head"]["b"]))  # [B, labels]
    return ViViTOutput(
        logits=None if logits is None else ops.to_numpy(logits),
        last_hidden_state=ops.to_numpy(x),
        pooler_output=None if pooled is None else ops.to_numpy(pooled),
        hidden_states=tuple(hidden) if hidden is not None else None,
        attentions=tuple(attentions) if request else None,
    )


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
        Raises NonFiniteOutputError if the outputs hold NaN / inf (something overflowed inside), and
        minivivit.memory.MemoryBudgetError if the pass would need more memory than the limit (see docs/guarantees.md).
        head_mask: [nh] or [L, nh]; multiplies each head's attention probabilities (0 switches a head off).
        interpolate_pos_encoding: resize the (t, h, w) position grid to a clip of another size.
        """
        output = vivit_forward(
            self.params, self.config, pixel_values, backend=backend, output_attentions=output_attentions,
            attention_layers=attention_layers, attention_dtype=attention_dtype,
            output_hidden_states=output_hidden_states, head_mask=head_mask,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        check_outputs(output)  # NaN / inf from finite inputs: say so rather than return it (debug.trace shows where)
        return output

    @property
    def dtype(self):
        return self.params["embed"]["pos"].dtype

    @property
    def has_head(self) -> bool:
        return "head" in self.params

    @property
    def has_pooler(self) -> bool:
        return "pooler" in self.params

    @property
    def labels(self) -> list[str]:
        return [self.config.id2label[i] for i in range(self.config.num_labels)]

    def trace_names(self) -> list[str]:
        """Every trace name of this model, in forward order."""
        return trace_names(self.config.num_hidden_layers, head=self.has_head, pooler=self.has_pooler)

    def to(self, dtype) -> Model:
        """A copy with every parameter cast to dtype (np.float64 for rounding-free teaching runs); float dtypes only."""
        from .weights import map_params

        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"Model.to({dtype!r}): not a dtype; use np.float16, np.float32 or np.float64") from None
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"Model.to({dtype.name}): the weights must stay floating point (np.float16, np.float32 "
                            f"or np.float64)")
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
        kind = "classifier" if self.has_head else "base model" + (" + pooler" if self.has_pooler else "")
        return (f"Model(ViViT {kind}: {c.num_hidden_layers} layers, D={c.hidden_size}, {c.num_attention_heads} heads, "
                f"clip {c.num_frames}x{c.image_hw[0]}x{c.image_hw[1]}, tubelet {c.tubelet_size}, "
                f"{self.num_params() / 1e6:.2f}M params, {self.dtype})")
