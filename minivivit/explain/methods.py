"""One entry point for every explanation: `explain(model, x, method=..., target=...)` -> per-tubelet relevance.

    from minivivit import explain
    e = explain.explain(model, x, method="gae", target="top-left")   # or target=3, or None (the predicted class)
    heat = e.tokens.to_grid(e.relevance[0])                       # [t, h, w] on the tubelet grid

Methods (METHODS; the class-agnostic ones ignore target):
    raw           last layer's CLS attention row, heads averaged (class-agnostic)
    rollout       attention rollout, Abnar & Zuidema 2020 (class-agnostic; rollout.py)
    gae           Chefer, Gur & Wolf, ICCV 2021 (relevance.py)
    grad-rollout  gradient-weighted rollout (relevance.py)
    transformer-attribution   Chefer, Gur & Wolf, CVPR 2021: LRP relevance x gradient, rolled out (lrp.py)
    inputxgrad    input x gradient on pixels, summed over each tubelet's pixels and channels
    ig            integrated gradients (Sundararajan, Taly & Yan, ICML 2017) on pixels, per tubelet

Pixel attributions of a clip [B, T, C, H, W] are summed over each tubelet's tt x ph x pw pixels and C channels
(frames and pixels the Conv3d drops have zero gradient and are left out) -> [B, P] in token order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grad import backward
from ..tokens import TokenMap
from .capturing import capture, cls_rollout
from .lrp import transformer_attribution
from .relevance import gae, grad_rollout, logit_objective, require_model_1, resolve_target

METHODS = ("raw", "rollout", "gae", "grad-rollout", "transformer-attribution", "inputxgrad", "ig")
CLASS_SPECIFIC = ("gae", "grad-rollout", "transformer-attribution", "inputxgrad", "ig")
DESCRIPTIONS = {
    "raw": "CLS attention of the last layer, heads averaged",
    "rollout": "attention rollout (Abnar & Zuidema 2020)",
    "gae": "GAE, gradient x attention relevance (Chefer et al. ICCV 2021)",
    "grad-rollout": "gradient-weighted attention rollout",
    "transformer-attribution": "LRP relevance x gradient of the attention, rolled out (Chefer et al. CVPR 2021)",
    "inputxgrad": "input x gradient on pixels, per tubelet",
    "ig": "integrated gradients on pixels, per tubelet (Sundararajan et al. 2017)",
}


@dataclass
class Explanation:
    """What `explain` returns."""

    relevance: np.ndarray  # [B, P] one value per tubelet, in token order (token k = tubelet k - 1)
    method: str
    target: np.ndarray  # [B] the class explained (the predicted one for target=None)
    logits: np.ndarray  # [B, C] of the clean clip
    tokens: TokenMap  # the token <-> pixel map of this clip

    def grid(self, i: int = 0) -> np.ndarray:
        """Clip i's relevance on the tubelet grid [t, h, w]."""
        return self.tokens.to_grid(self.relevance[i])


def explain(model, pixel_values, method: str = "gae", target=None, *, backend: str = "numpy", steps: int = 16,
            baseline=0.0, head_fusion="mean", alpha: float = 0.5, discard_ratio: float = 0.0,
            interpolate_pos_encoding: bool = False) -> Explanation:
    """Relevance of every tubelet of pixel_values [B, T, C, H, W] for class `target` under `method`.

    target: a label index or name, one per clip, or None (each clip's predicted class).
    steps, baseline: integrated gradients (baseline: a number or an array like pixel_values; 0 is the
    processor's mean pixel). head_fusion, alpha, discard_ratio: rollout and grad-rollout.
    """
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; choose one of {', '.join(METHODS)}")
    x = np.asarray(pixel_values)
    if x.ndim != 5:
        raise ValueError(f"expected pixel_values [B, T, C, H, W]; got shape {x.shape}")
    config = model.config
    require_model_1(config, method)
    if interpolate_pos_encoding and method in CLASS_SPECIFIC:
        raise ValueError(f"{method!r} runs the gradient backward, which needs the model's own clip size here; "
                         f"resample the clip to {config.num_frames} frames of {config.image_hw}")
    tokens = TokenMap.for_config(config, x.shape)
    if method == "raw":
        cap = capture(model, x, layers=[-1], output_attentions="cls", backend=backend,
                      interpolate_pos_encoding=interpolate_pos_encoding)
        rel = fuse_cls(cap.attentions[-1])  # [B, N]
        logits = cap.output.logits
    elif method == "rollout":
        rel, _, out = cls_rollout(model, x, head_fusion=head_fusion, alpha=alpha, discard_ratio=discard_ratio,
                                  backend=backend, interpolate_pos_encoding=interpolate_pos_encoding)
        logits = out.logits
    elif method == "gae":
        rel, t, out = gae(model, x, target, backend)
        logits = out.logits
    elif method == "transformer-attribution":
        rel, t, out = transformer_attribution(model, x, target, backend)
        logits = out.logits
    elif method == "grad-rollout":
        rel, t, out = grad_rollout(model, x, target, head_fusion, alpha, discard_ratio, backend)
        logits = out.logits
    else:
        px, t, logits = (input_x_gradient(model, x, target, backend) if method == "inputxgrad"
                         else integrated_gradients(model, x, target, steps, baseline, backend))
        rel = per_tubelet(px, config.tubelet_size)  # [B, P]
    if method in ("raw", "rollout"):
        t = resolve_target(config, target, x.shape[0], logits)
    rel = np.asarray(rel)[:, -tokens.num_patches:]  # [B, N] -> [B, P]: the CLS entry dropped
    return Explanation(relevance=rel, method=method, target=t, logits=np.asarray(logits), tokens=tokens)


def fuse_cls(cls_rows):
    """CLS rows [B, nh, N] -> [B, N], the mean over heads."""
    return np.asarray(cls_rows).mean(axis=1)


def per_tubelet(pixel_attr, tubelet) -> np.ndarray:
    """Pixel attributions [B, T, C, H, W] -> [B, P]: the sum over each tubelet's pixels and channels, in token
    order (time slowest, then rows, then columns). Left-over frames and pixels are dropped, as the Conv3d drops them."""
    a = np.asarray(pixel_attr)
    B, T, C, H, W = a.shape
    tt, ph, pw = (int(v) for v in tubelet)
    t, h, w = T // tt, H // ph, W // pw
    a = a[:, :t * tt, :, :h * ph, :w * pw].reshape(B, t, tt, C, h, ph, w, pw)  # [B, t, tt, C, h, ph, w, pw]
    return a.sum(axis=(2, 3, 5, 7)).reshape(B, t * h * w)  # [B, t, h, w] -> [B, P]


def input_gradient(model, x, target=None, backend: str = "numpy"):
    """(dy/dx [B, T, C, H, W], target [B], logits [B, C]) with y = sum_b logits[b, target_b]."""
    objective, chosen = logit_objective(target, model.config)
    g = backward(model, x, objective=objective, input_grad=True, backend=backend)
    return g.pixel_values, chosen["target"], g.output.logits


def input_x_gradient(model, x, target=None, backend: str = "numpy"):
    """x * dy/dx, per pixel: (attribution [B, T, C, H, W], target [B], logits [B, C])."""
    dx, t, logits = input_gradient(model, x, target, backend)
    return x * dx, t, logits


def integrated_gradients(model, x, target=None, steps: int = 16, baseline=0.0, backend: str = "numpy"):
    """Integrated gradients (Sundararajan, Taly & Yan, ICML 2017), midpoint rule with `steps` points:
    IG(x) = (x - x') * mean_k dy/dx (x' + a_k (x - x')),  a_k = (k + 1/2) / steps,  x' = baseline.
    Completeness: sum IG ~ y(x) - y(x') as steps grows. Returns (IG [B, T, C, H, W], target [B], logits [B, C])
    with target fixed at the clean clip's (the predicted class for target=None)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"integrated gradients needs steps >= 1 (points on the path); got {steps!r}")
    x = np.asarray(x)
    base = np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    logits = model(x, backend=backend).logits  # [B, C], for the default target
    t = resolve_target(model.config, target, x.shape[0], logits)  # [B]
    total = np.zeros(x.shape, np.float64)
    for k in range(steps):
        point = (base + (k + 0.5) / steps * (x - base)).astype(x.dtype)  # [B, T, C, H, W]
        dx, _, _ = input_gradient(model, point, t, backend)
        total += dx
    return ((x - base) * total / steps).astype(x.dtype), t, logits
