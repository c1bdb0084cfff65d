"""Checks of what a caller passes to the forward pass: every error says what was expected and what to do.

Also the one definition of the attention request: `output_attentions` is False / None (no maps),
True or "full" (every query row, [B, nh, N, N] per layer) or "cls" (the CLS query's row, [B, nh, N]).
Everything inside minivivit passes the normalised value None | "full" | "cls" under that same name.
"""

from __future__ import annotations

import numpy as np

from .config import ViViTConfig
from .memory import format_bytes, guard
from .tokens import clip_thw, tubelet_grid

ATTENTION_REQUESTS = {False: None, None: None, True: "full", "full": "full", "cls": "cls"}


def attention_request(output_attentions) -> str | None:
    """Normalise output_attentions to None, "full" or "cls" (raising for anything else)."""
    if isinstance(output_attentions, (bool, str, type(None))) and output_attentions in ATTENTION_REQUESTS:
        return ATTENTION_REQUESTS[output_attentions]
    raise ValueError(f"output_attentions must be False, True, 'full' or 'cls'; got {output_attentions!r}")


def check_pixel_values(pixel_values, config: ViViTConfig, interpolate_pos_encoding: bool) -> np.ndarray:
    """pixel_values as a float array, after checking its shape and dtype (not yet its values: see cast_pixel_values,
    which runs after the memory check because it makes full-size temporaries)."""
    if not isinstance(pixel_values, np.ndarray):
        if hasattr(pixel_values, "detach"):  # a torch tensor
            raise TypeError("pixel_values is a torch tensor; pass pixel_values.numpy() (minivivit is NumPy only)")
        try:
            pixel_values = np.asarray(pixel_values)
        except (ValueError, TypeError) as e:
            raise ValueError(f"pixel_values could not be made into an array ({e}); expected float [B, T, C, H, W], "
                             f"e.g. from minivivit.preprocess") from None
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
    return pixel_values


def cast_pixel_values(pixel_values: np.ndarray, dtype) -> np.ndarray:
    """pixel_values in the model's dtype, refusing NaN / infinity (also values that overflow in the cast)."""
    x = pixel_values.astype(dtype, copy=False)
    if not np.isfinite(x).all():
        if np.isfinite(pixel_values).all():
            raise ValueError(f"pixel_values overflow {np.dtype(dtype).name} (max |value| "
                             f"{float(np.abs(pixel_values).max()):.3g}); preprocessed pixels are about -3..1 "
                             f"(minivivit.preprocess)")
        raise ValueError("pixel_values contains NaN or infinity; check the frames and the preprocessing")
    return x


def check_forward_memory(pixel_shape, config: ViViTConfig, itemsize: int, backend: str, request=None, kept_layers=0,
                         attention_itemsize=None, hidden_states=False) -> int:
    """Estimate the bytes a forward pass on pixel_values of this shape allocates and refuse (memory.guard) above the
    limit, before anything is allocated. Returns the estimate.

    Counted: the input's cast and its tubelet copy, the activations alive in one block (8 [B, N, D] + 2 [B, N, F]),
    the numpy backend's one-head attention scores (3 [B, N, N]: scores, exp, probs), kept maps and hidden states."""
    B = int(pixel_shape[0])
    t, h, w = tubelet_grid(clip_thw(pixel_shape), config.tubelet_size)  # the grid of this clip
    N, D, F, nh = t * h * w + 1, config.hidden_size, config.intermediate_size, config.num_attention_heads
    per_clip = (2 * int(np.prod(pixel_shape[1:])) + N * (8 * D + 2 * F)) * itemsize
    attention = 3 * N * N * itemsize if backend == "numpy" else 3 * nh * N * 64 * itemsize  # blocked kernels: tiles
    per_clip += attention
    a_item = attention_itemsize or itemsize
    if request == "full":
        per_clip += kept_layers * nh * N * N * a_item
    elif request == "cls":
        per_clip += kept_layers * nh * N * a_item
    if hidden_states:
        per_clip += (config.num_hidden_layers + 1) * N * D * itemsize
    nbytes = B * per_clip
    cheaper = [f"a smaller batch: one clip needs about {format_bytes(per_clip)}"] if B > 1 else []
    if backend == "numpy" and attention > per_clip / 2:
        cheaper.append("backend='numba' computes attention in blocks, without an N x N matrix per head")
    if request == "full":
        cheaper.append("output_attentions='cls' keeps only the CLS rows of the maps")
    if (t, h, w) != tuple(config.grid):
        cheaper.append(f"a smaller clip: {N} tokens from {tuple(clip_thw(pixel_shape))} frames x H x W (the model's "
                       f"own clip has {config.num_patches + 1})")
    guard(nbytes, f"the forward pass on pixel_values {tuple(pixel_shape)} ({N} tokens, batch {B}, "
                  f"{np.dtype(f'f{itemsize}').name})", cheaper)
    return nbytes


class NonFiniteOutputError(ValueError, FloatingPointError):
    """A forward pass on finite inputs produced NaN or infinity."""


def check_outputs(output, where: str = "the forward pass"):
    """Raise NonFiniteOutputError when an output of a forward pass holds NaN or infinity (inputs were finite:
    something overflowed inside, e.g. huge pixel values, a float16 model, or NaN weights set after loading)."""
    for name in ("logits", "pooler_output", "last_hidden_state"):
        value = getattr(output, name)
        if value is not None and not np.isfinite(value).all():
            raise NonFiniteOutputError(
                f"{where} produced NaN or infinity in {name} although pixel_values were finite: something "
                f"overflowed inside the model (pixel values far outside the preprocessed range of about -3..1, a "
                f"float16 model, or NaN/inf weights). minivivit.debug.trace(model, pixel_values) shows the first "
                f"intermediate that stops being finite.")



def check_head_mask(head_mask, config: ViViTConfig, dtype):
    """Accept [nh] (same for every layer) or [L, nh] of finite numbers; return [L, nh] or None."""
    if head_mask is None:
        return None
    L, nh = config.num_hidden_layers, config.num_attention_heads
    try:
        m = np.asarray(head_mask, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise ValueError(f"head_mask must be numbers of shape ({nh},) or ({L}, {nh}) (layers, heads); {e}") from None
    if not np.isfinite(m).all():
        raise ValueError(f"head_mask contains NaN or infinity: {m.tolist()}; use 0 to switch a head off, 1 to keep it")
    if m.shape == (nh,):
        m = np.broadcast_to(m, (L, nh))
    if m.shape != (L, nh):
        raise ValueError(f"head_mask must have shape ({nh},) or ({L}, {nh}) (layers, heads); got {m.shape}")
    return m


def layer_index(i, L: int, name: str = "layer") -> int:
    """A layer index in -L..L-1 (negative counts from the end) -> 0..L-1; anything else raises (no silent wrap)."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"{name} must be an int layer index; got {i!r} ({type(i).__name__})")
    if not -L <= i < L:
        raise ValueError(f"{name}={i}: layer {i} does not exist; the model has layers 0..{L - 1} (negative indices "
                         f"count from the end: -1 is layer {L - 1})")
    return int(i) % L


def attention_layer_set(attention_layers, L: int) -> set[int]:
    """The layers whose maps to keep: None means all; negative indices count from the end."""
    if attention_layers is None:
        return set(range(L))
    if isinstance(attention_layers, (str, bytes)) or not hasattr(attention_layers, "__iter__"):
        raise TypeError(f"attention_layers must be a list of layer indices (or None for all); got "
                        f"{attention_layers!r}")
    return {layer_index(i, L, "attention_layers") for i in attention_layers}


def attention_storage_dtype(attention_dtype):
    """The dtype to store attention maps in: None (the model's) or a float dtype such as np.float16."""
    if attention_dtype is None:
        return None
    try:
        dtype = np.dtype(attention_dtype)
    except TypeError:
        raise TypeError(f"attention_dtype={attention_dtype!r} is not a dtype; use np.float16, np.float32 or "
                        f"np.float64 (or None for the model's dtype)") from None
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"attention_dtype={dtype.name}: attention probabilities lie in [0, 1] and need a float dtype "
                        f"(np.float16, np.float32 or np.float64); an integer or bool dtype would store zeros")
    return dtype
