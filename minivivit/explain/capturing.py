"""Capturing attention maps without running out of memory.

All 12 layers x 12 heads of ViViT-B as full maps are 12*12*3137*3137*4 bytes = 5.67 GB (float32).
`capture` estimates the size of what you ask for BEFORE the forward pass and refuses a request above
`max_bytes` with the size and cheaper alternatives, unless `force=True`:

    cap = capture(model, x, output_attentions="cls")              # CLS rows of every layer: 1.8 MB at ViViT-B
    cap = capture(model, x, output_attentions="full", layers=[-1])  # one layer's full maps: 472 MB
    v, tokens, out = cls_rollout(model, x)                        # CLS rollout, one full map alive at a time

`output_attentions` takes the forward pass's values ("full" or "cls"; `mode=` is the older name for it).
Shapes use the letters of minivivit/layers.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import memory
from ..inputs import attention_request, attention_storage_dtype, layer_index
from ..memory import MemoryBudgetError, format_bytes
from ..tokens import TokenMap
from .rollout import check_options, rollout_cls

DEFAULT_MAX_BYTES = 2 * 1024**3  # 2 GiB: refuses all full maps of ViViT-B (5.67 GB), allows a few layers


@dataclass
class Captured:
    """What `capture` returns."""

    attentions: tuple  # L entries: [B, nh, N, N] ("full") or [B, nh, N] ("cls"); None for layers not kept
    output_attentions: str  # "full" or "cls"
    tokens: TokenMap  # the token <-> pixel map of this clip
    output: object  # the ViViTOutput (logits, last_hidden_state, ...; attentions as above)
    nbytes: int  # bytes the kept maps occupy

    @property
    def mode(self) -> str:
        """The older name of output_attentions."""
        return self.output_attentions


def estimate_bytes(config, pixel_shape, layers=None, output_attentions: str = "cls", dtype=np.float32) -> int:
    """Bytes of the attention maps a forward pass would keep, computed from shapes only (no forward).

    pixel_shape: [B, T, C, H, W]. layers: None (all) or a list of layer indices. output_attentions: "full"
    keeps [B, nh, N, N] per layer, "cls" keeps the CLS rows [B, nh, N]. Every variant (Models 2-4 keep maps
    per time slice / per location: minivivit.factorized.attention_shapes).
    """
    from ..factorized import attention_shapes

    request = _request(output_attentions)
    grid = TokenMap.for_config(config, pixel_shape).grid  # this clip's tubelet grid
    shapes = attention_shapes(config, pixel_shape[0], request, grid)  # one entry per attention layer
    L = len(shapes)
    kept = range(L) if layers is None else sorted({int(i) % L for i in layers})
    numbers = sum(int(np.prod(s)) for i in kept for s in (shapes[i].values() if isinstance(shapes[i], dict)
                                                            else [shapes[i]]))
    return numbers * np.dtype(dtype).itemsize


class AttentionBudgetError(MemoryBudgetError):
    """A capture request above the memory limit (a MemoryError and a ValueError, so the CLI reports it cleanly)."""


def check_budget(nbytes: int, max_bytes: int | None, force: bool, what: str, cheaper: list[str]):
    """minivivit.memory.check_budget for captures: raises AttentionBudgetError naming the size and the cheaper
    alternatives when nbytes > max_bytes (unless force). A max_bytes left at DEFAULT_MAX_BYTES yields to
    $MINIVIVIT_MAX_BYTES."""
    limit = memory.limit(DEFAULT_MAX_BYTES) if max_bytes == DEFAULT_MAX_BYTES else max_bytes
    override = f"pass force=True to capture anyway (Python), or {memory.override_hint(nbytes)} (also on the command line)"
    memory.check_budget(nbytes, limit, force, what, cheaper, override=override, error=AttentionBudgetError)


def _request(output_attentions) -> str:
    """capture's requests: "full" or "cls" (a capture always keeps maps)."""
    request = attention_request(output_attentions)
    if request is None:
        raise ValueError(f"capture needs output_attentions='full' or 'cls'; got {output_attentions!r}")
    return request


def capture(model, pixel_values, layers=None, output_attentions: str = "cls", dtype=None,
            max_bytes: int | None = DEFAULT_MAX_BYTES, force: bool = False, backend: str = "numpy",
            interpolate_pos_encoding: bool = False, mode: str | None = None) -> Captured:
    """Run the model and keep the attention maps of `layers` (None = all): full maps or CLS rows only.

    output_attentions: "cls" (CLS rows, default) or "full"; `mode` is its older name and wins if given.
    dtype: storage dtype of the maps (np.float16 halves them; None = the model's dtype). The size is
    estimated first; above max_bytes an AttentionBudgetError (a MemoryError) lists the cheaper
    requests, unless force=True.
    """
    request = _request(output_attentions if mode is None else mode)
    shape = np.shape(pixel_values)
    if len(shape) != 5:
        raise ValueError(f"expected pixel_values [B, T, C, H, W]; got shape {shape}")
    config = model.config
    store = attention_storage_dtype(dtype) or np.dtype(model.dtype)
    nbytes = estimate_bytes(config, shape, layers, request, store)
    cheaper = []
    has_cls = config.classifier == "token"  # Models 3 and 4 (and any 'gap' model) have no CLS row to keep
    if request == "full" and has_cls:
        cheaper.append(f"output_attentions='cls' keeps only the CLS rows: "
                       f"{format_bytes(estimate_bytes(config, shape, layers, 'cls', store))}")
    if layers is None or len(set(layers)) > 1:
        one_layer = estimate_bytes(config, shape, [-1], request, store)
        cheaper.append(f"layers=[-1] keeps one layer: {format_bytes(one_layer)}")
    if store.itemsize > 2:
        half = estimate_bytes(config, shape, layers, request, np.float16)
        cheaper.append(f"dtype=np.float16 halves it: {format_bytes(half)}")
    if request == "full" and config.is_hf_model:
        cheaper.append("for the CLS rollout, minivivit.explain.cls_rollout(model, x) keeps one full map at a time")
    what = (f"capturing {request} attention maps of {'all' if layers is None else len(set(layers))} layer(s) "
            f"(batch {shape[0]}, {config.num_attention_heads} heads, {TokenMap.for_config(config, shape).num_tokens} "
            f"tokens, {store.name})")
    check_budget(nbytes, max_bytes, force, what, cheaper)
    out = model(pixel_values, backend=backend, output_attentions=request, attention_layers=layers,
                attention_dtype=None if dtype is None else store, interpolate_pos_encoding=interpolate_pos_encoding)
    return Captured(out.attentions, request, TokenMap.for_config(config, shape), out, nbytes)


# ---------------------------------------------------------------------------------------------
# Memory-light CLS rollout: recompute one layer's full map at a time from the hidden states
# ---------------------------------------------------------------------------------------------


def recompute_attention(model, hidden_state, layer: int, backend: str = "numpy"):
    """Block `layer`'s full attention maps [B, nh, N, N] from its input hidden state [B, N, D].

    Runs the model's own attention sublayer (LayerNorm + self-attention, minivivit.model), so the maps
    are the ones the forward pass computed.
    """
    from ..kernels import get_backend
    from ..model import attention_sublayer

    ops = get_backend(backend)
    block = model.params["blocks"][layer]
    _, maps = attention_sublayer(hidden_state, block["ln1"], block["attn"], config=model.config, ops=ops,
                                 output_attentions="full")  # [B, nh, N, N]
    return ops.to_numpy(maps)


class _RecomputedMaps:
    """A lazy sequence of layers' full maps: item i is recomputed from hidden_states[i] when asked for."""

    def __init__(self, model, hidden_states, num_layers, backend):
        self.model, self.hidden, self.n, self.backend = model, hidden_states, num_layers, backend

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return recompute_attention(self.model, self.hidden[i], i, self.backend)


def cls_rollout(model, pixel_values, head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0,
                start_layer: int = 0, end_layer: int | None = None, backend: str = "numpy",
                interpolate_pos_encoding: bool = False, max_bytes: int | None = DEFAULT_MAX_BYTES,
                force: bool = False):
    """CLS-row attention rollout through layers start_layer..end_layer: returns (v [B, N], tokens, output).

    Memory: the L+1 hidden states [B, N, D] plus ONE layer's full map [B, nh, N, N] at a time (for
    ViViT-B: 125 MB + 472 MB instead of 5.67 GB for every map). The forward pass keeps the hidden
    states; then, from the last layer down, each layer's map is recomputed and folded into the
    vector v^T <- v^T A_hat_l (explain.rollout_cls), which equals row 0 of the full product.
    """
    config = model.config
    if not config.is_hf_model:
        raise ValueError(f"attention rollout is defined here for Model 1 (spatio-temporal attention with a CLS "
                         f"token); this model is Model {config.model_number} ({config.attention_type}, classifier="
                         f"{config.classifier!r}). Capture its maps with explain.capture(model, x, "
                         f"output_attentions='full') instead.")
    shape = np.shape(pixel_values)
    L = config.num_hidden_layers
    end = L - 1 if end_layer is None else layer_index(end_layer, L, "end_layer")
    start = layer_index(start_layer, L, "start_layer")
    if start > end:
        raise ValueError(f"start_layer={start_layer} (layer {start}) comes after end_layer={end_layer} (layer {end}); "
                         f"the rollout runs from start_layer up to end_layer")
    check_options(head_fusion, alpha, discard_ratio, config.num_attention_heads)
    tokens = TokenMap.for_config(config, shape)
    itemsize = np.dtype(model.dtype).itemsize
    nbytes = ((L + 1) * shape[0] * tokens.num_tokens * config.hidden_size * itemsize
              + estimate_bytes(config, shape, [0], "full", model.dtype))
    check_budget(nbytes, max_bytes, force, "the CLS rollout (hidden states + one full map)",
                 ["a smaller batch or clip (interpolate_pos_encoding=True)"])
    out = model(pixel_values, backend=backend, output_hidden_states=True,
                interpolate_pos_encoding=interpolate_pos_encoding)
    maps = _RecomputedMaps(model, out.hidden_states, end + 1, backend)
    v = rollout_cls(maps, head_fusion=head_fusion, alpha=alpha, discard_ratio=discard_ratio, start_layer=start)
    return v, tokens, out
