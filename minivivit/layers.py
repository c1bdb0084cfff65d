"""NumPy reference layers: the specification every fast kernel is tested against.

Every function is plain NumPy, one idea each, with the shape on every line that changes it.
Letters used in shape comments throughout minivivit:

    B  batch            T  frames          C  channels (3)     H, W  frame height / width
    tt, ph, pw  tubelet size (frames, rows, cols)   t, h, w  tubelet grid (T/tt, H/ph, W/pw)
    P  = t*h*w  tubelet tokens                      N  = P + 1 tokens (CLS first)
    D  hidden size      nh  heads          d  = D / nh head size      F  MLP width
    K  = tt*ph*pw*C  values in one tubelet
"""

from __future__ import annotations

import math

import numpy as np

from .tokens import tubelet_grid

# ---------------------------------------------------------------------------------------------
# Tubelet embedding: HF's Conv3d(kernel = stride = tubelet) written as patchify + matmul.
# ---------------------------------------------------------------------------------------------


def patchify(pixel_values: np.ndarray, tubelet: tuple[int, int, int]) -> np.ndarray:
    """Cut a clip into tubelets, one row per token, in HF's Conv3d flatten order (minivivit/tokens.py:
    time slowest, then rows, then columns). Inside a row, values are ordered (frame, row, col, channel).
    Frames/pixels that do not fill a whole tubelet are dropped, exactly as a strided Conv3d drops them.
    """
    B, T, C, H, W = pixel_values.shape
    tt, ph, pw = tubelet
    t, h, w = tubelet_grid((T, H, W), tubelet)
    x = pixel_values[:, : t * tt, :, : h * ph, : w * pw]  # [B, t*tt, C, h*ph, w*pw]
    x = x.reshape(B, t, tt, C, h, ph, w, pw)  # split each axis into (grid, inside-tubelet)
    x = x.transpose(0, 1, 4, 6, 2, 5, 7, 3)  # [B, t, h, w, tt, ph, pw, C]
    return x.reshape(B, t * h * w, tt * ph * pw * C)  # [B, P, K]


def tubelet_embed(pixel_values, w, b, tubelet):
    """[B, T, C, H, W] -> [B, P, D]: one linear projection per tubelet (= Conv3d, stride = kernel)."""
    return patchify(pixel_values, tubelet) @ w + b  # [B, P, K] @ [K, D] -> [B, P, D]


# ---------------------------------------------------------------------------------------------
# Linear, LayerNorm, activations
# ---------------------------------------------------------------------------------------------


def prepend_cls(patches, cls):
    """[B, P, D] tubelet tokens -> [B, N, D] with the learned CLS token [D] first (N = P + 1)."""
    B, P, D = patches.shape
    cls_tokens = np.broadcast_to(cls.astype(patches.dtype), (B, 1, D))  # [B, 1, D]
    return np.concatenate([cls_tokens, patches], axis=1)  # [B, N, D]


def add(a, b):
    """a + b, b broadcast along a's leading axes: residual connections ([B, N, D] + [B, N, D]) and the
    position embeddings ([B, N, D] + [N, D])."""
    return a + b


def to_numpy(x) -> np.ndarray:
    """A backend's array as a NumPy array (the numpy backend's arrays already are)."""
    return np.asarray(x)


def linear(x, w, b=None):
    """y = x @ w + b. w is stored [in, out], so no transpose is needed."""
    y = x @ w  # [..., in] -> [..., out]
    return y if b is None else y + b


def layer_norm(x, g, b, eps):
    """LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * g + b (biased variance, as torch)."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # [..., 1]
    return (x - mean) / np.sqrt(var + eps) * g + b


def erfc_abs(z):
    """erfc(|z|) = 1 - erf(|z|). NumPy has no erf, so: float64 uses math.erfc element-wise (exact,
    slow, for teaching sizes); float32 uses Numerical Recipes' erfc fit (relative error < 1.2e-7,
    about float32 rounding), written out so there is no hidden library call."""
    z = np.abs(z)
    if z.dtype == np.float64:
        return np.vectorize(math.erfc, otypes=[np.float64])(z)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    return (t * np.exp(-z * z + poly)).astype(z.dtype, copy=False)


def erf(x):
    """Error function, from erfc_abs: erf(x) = sign(x) (1 - erfc(|x|))."""
    return np.sign(x) * (1.0 - erfc_abs(x))


def gelu(x):
    """Exact GELU, x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); HF 'gelu' / 'gelu_python'.
    Written with erfc so that 1 + erf(u) does not cancel for negative x: 1 + erf(u) = erfc(|u|)
    when u < 0 and 2 - erfc(u) when u >= 0."""
    c = erfc_abs(x * np.asarray(1 / math.sqrt(2.0), dtype=x.dtype))  # erfc(|x| / sqrt 2)
    return 0.5 * x * np.where(x >= 0, 2.0 - c, c)


def gelu_tanh(x):
    """Tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); HF 'gelu_new',
    'gelu_pytorch_tanh', 'gelu_accurate', 'gelu_python_tanh'."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def gelu_fast(x):
    """ViViT's default: the same tanh approximation with the constant rounded to 0.7978845608."""
    return 0.5 * x * (1.0 + np.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def sigmoid(x):
    """1 / (1 + e^-x), written so that neither branch overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def quick_gelu(x):
    """x * sigmoid(1.702 x); HF 'quick_gelu'."""
    return x * sigmoid(1.702 * x)


def silu(x):
    """x * sigmoid(x); HF 'silu' and 'swish'."""
    return x * sigmoid(x)


def relu(x):
    return np.maximum(x, 0)


def selu(x):
    """Scaled ELU (Klambauer et al. 2017), torch.nn.functional.selu's constants.
    HF's docs list it for ViViT, but transformers' ACT2FN has no 'selu': HF cannot build such a model."""
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def softplus(x):
    """log(1 + e^x) without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def gelu_10(x):
    """GELU clipped to [-10, 10]; HF 'gelu_10'."""
    return np.clip(gelu(x), -10, 10)


def relu2(x):
    """relu(x)^2 (So et al. 2021, Primer); HF 'relu2'."""
    return relu(x) ** 2


def relu6(x):
    return np.clip(x, 0, 6)


def leaky_relu(x):
    """x for x >= 0, 0.01 x below (torch's default slope); HF 'leaky_relu'."""
    return np.where(x >= 0, x, 0.01 * x)


def tanh(x):
    return np.tanh(x)


def identity(x):
    """HF 'linear': no activation."""
    return x


def mish(x):
    """x tanh(softplus(x)) (Misra 2019)."""
    return x * np.tanh(softplus(x))


def hardswish(x):
    """x relu6(x + 3) / 6 (Howard et al. 2019)."""
    return x * np.clip(x + 3, 0, 6) / 6


def laplace(x):
    """HF's 'laplace' activation: 0.5 (1 + erf((x - mu) / (sigma sqrt 2))), mu = 0.707107, sigma = 0.282095."""
    return 0.5 * (1.0 + erf((x - 0.707107) / (0.282095 * math.sqrt(2.0))))


def sqrtsoftplus(x):
    return np.sqrt(softplus(x))


# hidden_act name -> its formula: every weight-free name HF's ACT2FN accepts (plus selu). The one table of
# names: the fast kernels key their own codes by these functions (their NumPy twins), never by name.
ACTIVATIONS = {
    "gelu": gelu, "gelu_python": gelu, "gelu_10": gelu_10, "gelu_fast": gelu_fast,
    "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "gelu_python_tanh": gelu_tanh, "gelu_accurate": gelu_tanh,
    "quick_gelu": quick_gelu, "silu": silu, "swish": silu, "relu": relu, "relu2": relu2, "relu6": relu6,
    "leaky_relu": leaky_relu, "selu": selu, "sigmoid": sigmoid, "tanh": tanh, "linear": identity, "mish": mish,
    "hardswish": hardswish, "laplace": laplace, "sqrtsoftplus": sqrtsoftplus,
}  # fmt: skip


def activation_function(name):
    """The formula of hidden_act `name`, with a clear error for a name HF does not know."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (hidden_act / pooler_act); minivivit knows "
                         f"{sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def activation(x, name):
    """Apply the activation called `name` (HF's hidden_act spelling)."""
    return activation_function(name)(x).astype(x.dtype, copy=False)


def linear_act(x, w, b, name):
    """act(x @ w + b): the MLP's first layer and its activation (fused in the fast backends)."""
    return activation(linear(x, w, b), name)


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------


def split_heads(x, num_heads):
    """[B, N, D] -> [B, nh, N, d]."""
    B, N, D = x.shape
    return x.reshape(B, N, num_heads, D // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """[B, nh, N, d] -> [B, N, D]."""
    B, nh, N, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, nh * d)


def softmax(x):
    """Softmax over the last axis, max-subtracted so that huge logits do not overflow."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_(x):
    """softmax(x) computed in place (x is overwritten): for a fresh scores array that nothing else holds."""
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def attention_scores(q, k):
    """Scaled dot products Q K^T / sqrt(d): [..., N, d] x2 -> [..., N, N]."""
    d = q.shape[-1]
    return (q @ k.swapaxes(-1, -2)) * np.asarray(d**-0.5, dtype=q.dtype)


def attention_probs(scores, gain=None):
    """softmax(scores) over the keys, times a head_mask gain if given (HF v4's head_mask): [..., N, N].
    scores is overwritten (softmax_ in place): pass a fresh array nothing else holds."""
    p = softmax_(scores)  # [..., N, N]
    return p if gain is None else p * np.asarray(gain, dtype=p.dtype)


def attention(q, k, v, num_heads, head_mask=None, output_attentions=None):
    """Multi-head scaled dot-product attention (Vaswani et al. eq. 1), no mask, no dropout.

    q, k, v: [B, N, D] (already projected). head_mask: [nh] multiplies each head's probabilities
    (as HF v4 did). output_attentions: None, "full" (return [B, nh, N, N]) or "cls" (return only the
    CLS query row [B, nh, N]). Returns (context [B, N, D], probabilities or None).
    One head at a time, so that memory holds one head's [B, N, N] scores (39 MB for ViViT-B) rather
    than every head's [B, nh, N, N] (0.47 GB, several times over for softmax's temporaries).
    """
    q, k, v = (split_heads(a, num_heads) for a in (q, k, v))  # [B, nh, N, d] each
    B, nh, N, d = q.shape
    context = np.empty_like(q)  # [B, nh, N, d]
    full = np.empty((B, nh, N, N), q.dtype) if output_attentions == "full" else None
    cls = np.empty((B, nh, N), q.dtype) if output_attentions == "cls" else None
    for h in range(nh):
        gain = None if head_mask is None else head_mask[h]
        p = attention_probs(attention_scores(q[:, h], k[:, h]), gain)  # [B, N, N]
        context[:, h] = p @ v[:, h]  # [B, N, N] @ [B, N, d] -> [B, N, d]
        if full is not None:
            full[:, h] = p
        if cls is not None:
            cls[:, h] = p[:, 0]  # the CLS query's row
    return merge_heads(context), (full if full is not None else cls)  # [B, N, D]
