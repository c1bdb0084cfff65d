"""The ViViT forward pass (model 1, "spatio-temporal attention", of Arnab et al. 2021), as HF's
`VivitModel` / `VivitForVideoClassification` compute it:

    pixel_values [B, T, C, H, W]
      -> tubelet_embed -> prepend CLS -> + position embeddings      [B, N, D]
      -> L x encoder_block  (pre-norm: x + MHSA(LN(x)), then x + MLP(LN(x)))
      -> final LayerNorm
      -> logits = classifier(CLS)          (VivitForVideoClassification)
         pooler_output = tanh(dense(CLS))  (VivitModel with add_pooling_layer)

This is the only forward pass of Model 1: every backend runs it, op by op, built from the blocks of
minivivit/blocks.py (embed, encoder_block, ...: plain functions of arrays and params). `ops` is a backend
module (see minivivit/kernels/__init__.py for the contract); the numpy one is layers.py itself. Models 2-4
of the paper (config.attention_type) and the Model-1 options HF lacks run minivivit/factorized/ instead,
built from the same blocks. Shapes use the letters defined in minivivit/layers.py.

Every named intermediate below is shown to a `tap` (minivivit/blocks.py explains the protocol; debug.trace
and debug.run are taps).

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

import numpy as np

from . import factorized
from .blocks import (  # noqa: F401 (attention_sublayer, self_attention, wants ... are re-exported: model.X still works)
    BLOCK_NAMES,
    EMBED_NAMES,
    NO_TAP,
    NoTap,
    ViViTOutput,
    attention_heads,
    attention_sublayer,
    embed,
    encoder_block,
    feed_forward,
    qkv,
    self_attention,
    show,
    wants,
)
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
from .weights import check_params, flatten_params


def trace_names(num_layers: int, head: bool = True, pooler: bool = False) -> list[str]:
    """Every trace name in forward order, for a model with num_layers blocks (and a head / a pooler)."""
    names = list(EMBED_NAMES)
    names += [f"blocks.{i}.{n}" for i in range(num_layers) for n in BLOCK_NAMES]
    return names + ["final_norm"] + ["pooled"] * pooler + ["logits"] * head


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
    if not config.is_hf_model:  # Models 2-4, classifier='gap', representation_size: minivivit/factorized/
        if interpolate_pos_encoding:
            raise ValueError(f"interpolate_pos_encoding is implemented for HF's Model 1 only; resample the clip to "
                             f"{config.num_frames} frames of {config.image_hw[0]}x{config.image_hw[1]}")
        return factorized.forward(params, config, pixel_values, ops=ops, output_attentions=output_attentions,
                                  attention_layers=attention_layers, attention_dtype=attention_dtype,
                                  head_mask=head_mask, output_hidden_states=output_hidden_states, tap=tap)
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
        return self.params["embed"]["proj"]["w"].dtype

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
        """Every trace name of this model, in forward order (Models 2-4: minivivit/factorized/ lists them)."""
        if not self.config.is_hf_model:
            return factorized.trace_names(self.config, head=self.has_head)
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
        if not c.is_hf_model:
            kind = f"Model {c.model_number} ({c.attention_type}, classifier={c.classifier!r}) {kind}"
        return (f"Model(ViViT {kind}: {c.num_hidden_layers} layers, D={c.hidden_size}, {c.num_attention_heads} heads, "
                f"clip {c.num_frames}x{c.image_hw[0]}x{c.image_hw[1]}, tubelet {c.tubelet_size}, "
                f"{self.num_params() / 1e6:.2f}M params, {self.dtype})")
