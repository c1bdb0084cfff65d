"""Checks of what a caller passes to the forward pass: every error says what was expected and what to do.

Also the one definition of the attention request: `output_attentions` is False / None (no maps),
True or "full" (every query row, [B, nh, N, N] per layer) or "cls" (the CLS query's row, [B, nh, N]).
Everything inside minivivit passes the normalised value None | "full" | "cls" under that same name.
"""

from __future__ import annotations

import numpy as np

from .config import ViViTConfig

ATTENTION_REQUESTS = {False: None, None: None, True: "full", "full": "full", "cls": "cls"}


def attention_request(output_attentions) -> str | None:
    """Normalise output_attentions to None, "full" or "cls" (raising for anything else)."""
    if isinstance(output_attentions, (bool, str, type(None))) and output_attentions in ATTENTION_REQUESTS:
        return ATTENTION_REQUESTS[output_attentions]
    raise ValueError(f"output_attentions must be False, True, 'full' or 'cls'; got {output_attentions!r}")


def check_pixel_values(pixel_values, config: ViViTConfig, interpolate_pos_encoding: bool, dtype) -> np.ndarray:
    """pixel_values as an array of the model's dtype, after checking its shape, dtype and values."""
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


def check_head_mask(head_mask, config: ViViTConfig, dtype):
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


def attention_layer_set(attention_layers, L: int) -> set[int]:
    """The layers whose maps to keep: None means all; negative indices count from the end."""
    if attention_layers is None:
        return set(range(L))
    chosen = set()
    for i in attention_layers:
        if not -L <= int(i) < L:
            raise ValueError(f"attention_layers: layer {i} does not exist; the model has layers 0..{L - 1}")
        chosen.add(int(i) % L)
    return chosen
