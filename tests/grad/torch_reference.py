"""torch autograd on HF's own ViViT: the reference every minivivit gradient is compared with.

Gradients of HF parameters are mapped to minivivit's nesting by the converter itself
(convert/hf.py: a gradient transforms like its weight, by transposes and reshapes only).
head_mask: transformers 5 dropped it, so an attention function that is HF's eager attention plus the
one multiply transformers 4.x had (probs * head_mask) is registered under "eager_head_mask".
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AttentionInterface
from transformers.models.vivit import modeling_vivit

import minivivit
from minivivit.convert.hf import hf_state_to_params


def eager_head_mask_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """HF's eager_attention_forward with transformers 4.x's head mask: probs * head_mask[h]."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    w = torch.nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(query.dtype)
    w = torch.nn.functional.dropout(w, p=dropout, training=module.training)
    hm = getattr(module, "minivivit_head_mask", None)
    if hm is not None:
        w = w * hm[None, :, None, None]
    out = torch.matmul(w, value).transpose(1, 2).contiguous()
    return out, w


AttentionInterface.register("eager_head_mask", eager_head_mask_attention)


def attention_modules(hf):
    base = hf.vivit if hasattr(hf, "vivit") else hf
    return [layer.attention for layer in base.layers]


def set_head_mask(hf, head_mask):
    """Use the head-masked eager attention with head_mask [L, nh] (or none)."""
    hf.set_attn_implementation("eager_head_mask")
    for i, m in enumerate(attention_modules(hf)):
        row = None if head_mask is None else np.array(head_mask[i], dtype=np.float32)  # a writable copy
        m.minivivit_head_mask = None if row is None else torch.from_numpy(row)


def torch_backward(hf, x: np.ndarray, labels=None, objective=None, label_smoothing=0.0, dtype=torch.float32,
                   attentions=True):
    """(loss, grads nested like minivivit params, dL/dx, [dL/dA per layer]) from torch autograd.

    objective(outputs) -> scalar tensor, for base models. dL/dA: retain_grad on the attention weights HF
    returns with output_attentions=True (the tensors that multiply V)."""
    hf = hf.to(dtype)
    hf.zero_grad(set_to_none=True)
    xt = torch.from_numpy(x).to(dtype).requires_grad_(True)
    out = hf(xt, output_attentions=attentions)  # (SDPA has no weights to return: attentions=False)
    for a in out.attentions or ():
        a.retain_grad()
    if labels is not None:
        loss = torch.nn.functional.cross_entropy(out.logits, torch.as_tensor(labels), label_smoothing=label_smoothing)
    else:
        loss = objective(out)
    loss.backward()
    state = {k: p.grad.detach().numpy() for k, p in hf.named_parameters()}
    config = minivivit.ViViTConfig.from_hf_dict(hf.config.to_dict())
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    grads = hf_state_to_params(state, config, dtype=np_dtype)
    dA = [a.grad.detach().numpy() for a in out.attentions or ()]
    return float(loss.detach()), grads, xt.grad.detach().numpy(), dA


def rel(ours, ref) -> float:
    """max |ours - ref| / max(1, max |ref|), the issue's measure."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} vs reference {ref.shape}"
    return float(np.abs(ours - ref).max() / max(1.0, np.abs(ref).max()))


def grad_errors(ours: dict, ref: dict) -> dict[str, float]:
    """{flat param name: rel error} over every parameter; the two must have the same keys."""
    from minivivit.weights import flatten_params

    a, b = flatten_params(ours), flatten_params(ref)
    assert a.keys() == b.keys(), f"gradient keys differ: {sorted(a.keys() ^ b.keys())}"
    return {k: rel(a[k], b[k]) for k in b}


_ = modeling_vivit  # imported so that the registration above happens before any model is built
