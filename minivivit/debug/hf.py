"""hf_trace: minivivit's trace names (minivivit/model.py), collected from HF transformers (v5) with forward hooks.

Where each name comes from (`layer` = model.layers[i], `base` = the VivitModel):

    embed.patches   output of base.embeddings.patch_embeddings (Conv3d, flattened to [B, P, D] by HF)
    embed.tokens    torch.cat([cls_token, patches]): HF's own expression; no module outputs it
    embed.out       output of base.embeddings
    blocks.i.ln1    output of layer.layernorm_before
    blocks.i.q/k/v  outputs of layer.attention.q_proj / k_proj / v_proj   [B, N, D]
    blocks.i.scores matmul(q, k^T) * attention.scaling, recomputed from the hooked q and k with the
                    expression of HF's eager_attention_forward, which keeps its scores local
    blocks.i.probs  the attention weights layer.attention returns (eager attention is forced)
    blocks.i.context   input of layer.attention.o_proj
    blocks.i.attn_out  output of layer.attention.o_proj
    blocks.i.resid1    input of layer.layernorm_after
    blocks.i.ln2 / fc1 / fc2   outputs of layer.layernorm_after / mlp.fc1 / mlp.fc2
    blocks.i.act       input of layer.mlp.fc2 (the activation's output)
    blocks.i.out       output of layer
    final_norm / pooled / logits   outputs of base.layernorm / base.pooler / model.classifier

The model is put in eval mode with eager attention for the run and restored afterwards; every hook
is removed, even when the forward pass fails. torch is imported here only (the dev extra).
"""

from __future__ import annotations

import numpy as np

from ..model import trace_names
from .trace import select_names


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "hf_trace needs torch and transformers, the reference stack of the dev extra: "
            "python -m pip install -e '.[dev]' (minivivit itself never needs them)"
        ) from e
    return torch


def _parts(hf_model):
    """(VivitModel, classifier or None) of a VivitModel / VivitForVideoClassification."""
    base = getattr(hf_model, "vivit", hf_model)
    if not all(hasattr(base, a) for a in ("embeddings", "layers", "layernorm")):
        hint = (" This looks like a transformers 4.x model (encoder.layer); hf_trace follows the transformers 5 "
                "module names: pip install 'transformers>=5'." if hasattr(base, "encoder") else "")
        raise TypeError(f"hf_trace() takes a transformers VivitModel or VivitForVideoClassification; got "
                        f"{type(hf_model).__name__}.{hint}")
    return base, getattr(hf_model, "classifier", None)


def hf_trace(hf_model, pixel_values, include=None, exclude=None, **forward_kwargs) -> dict[str, np.ndarray]:
    """Run an HF ViViT on pixel_values [B, T, C, H, W] (NumPy) and return {name: array} like debug.trace.

    include / exclude: fnmatch globs over the names (only those are kept, so a ViViT-B subset is cheap
    in memory). forward_kwargs go to the HF forward call.
    """
    torch = _import_torch()
    if not isinstance(hf_model, torch.nn.Module):
        raise TypeError(f"hf_trace() takes a transformers model (torch.nn.Module); got {type(hf_model).__name__}. "
                        f"For a minivivit.Model use minivivit.debug.trace().")
    base, classifier = _parts(hf_model)
    names = trace_names(len(base.layers), head=classifier is not None, pooler=base.pooler is not None)
    keep = set(select_names(names, include, exclude))
    got: dict[str, np.ndarray] = {}

    def put(name, tensor):
        if name in keep:
            got[name] = tensor.detach().cpu().clone().numpy()

    def output_of(module, name):
        return module.register_forward_hook(lambda m, args, out: put(name, out))

    def input_of(module, name):
        return module.register_forward_pre_hook(lambda m, args: put(name, args[0]))

    def attention_hooks(attn, i):
        qk = {}  # this layer's q and k, kept only while scores are needed

        def keep_qk(key):
            return lambda m, args, out: qk.__setitem__(key, out) if f"blocks.{i}.scores" in keep else None

        def on_attention(m, args, out):
            _, probs = out  # eager attention returns (attn_output, attn_weights)
            if f"blocks.{i}.scores" in keep:
                B, N, _ = qk["q"].shape
                q = qk["q"].view(B, N, -1, m.head_dim).transpose(1, 2)  # [B, N, D] -> [B, nh, N, d]
                k = qk["k"].view(B, N, -1, m.head_dim).transpose(1, 2)  # [B, N, D] -> [B, nh, N, d]
                put(f"blocks.{i}.scores", torch.matmul(q, k.transpose(2, 3)) * m.scaling)  # [B, nh, N, N]
                qk.clear()
            if probs is None:
                raise RuntimeError("HF attention returned no weights; hf_trace needs eager attention")
            put(f"blocks.{i}.probs", probs)

        return [attn.q_proj.register_forward_hook(keep_qk("q")), attn.k_proj.register_forward_hook(keep_qk("k")),
                attn.register_forward_hook(on_attention)]

    emb = base.embeddings

    def on_patches(m, args, out):
        put("embed.patches", out)  # [B, P, D]
        if "embed.tokens" in keep:
            cls = emb.cls_token.expand(out.shape[0], -1, -1)  # [1, 1, D] -> [B, 1, D]
            put("embed.tokens", torch.cat((cls, out), dim=1))  # [B, N, D], as VivitEmbeddings.forward

    hooks = [emb.patch_embeddings.register_forward_hook(on_patches), output_of(emb, "embed.out")]
    for i, layer in enumerate(base.layers):
        p, attn, mlp = f"blocks.{i}.", layer.attention, layer.mlp
        hooks += [output_of(layer.layernorm_before, p + "ln1"), output_of(attn.q_proj, p + "q"),
                  output_of(attn.k_proj, p + "k"), output_of(attn.v_proj, p + "v")]
        hooks += attention_hooks(attn, i)
        hooks += [input_of(attn.o_proj, p + "context"), output_of(attn.o_proj, p + "attn_out"),
                  input_of(layer.layernorm_after, p + "resid1"), output_of(layer.layernorm_after, p + "ln2"),
                  output_of(mlp.fc1, p + "fc1"), input_of(mlp.fc2, p + "act"), output_of(mlp.fc2, p + "fc2"),
                  output_of(layer, p + "out")]
    hooks.append(output_of(base.layernorm, "final_norm"))
    if base.pooler is not None:
        hooks.append(output_of(base.pooler, "pooled"))
    if classifier is not None:
        hooks.append(output_of(classifier, "logits"))

    dtype = next(hf_model.parameters()).dtype
    x = torch.from_numpy(np.ascontiguousarray(pixel_values)).to(dtype)
    was_training, attn_impl = hf_model.training, hf_model.config._attn_implementation
    try:
        hf_model.eval()
        if attn_impl != "eager":
            hf_model.set_attn_implementation("eager")
        with torch.no_grad():
            hf_model(x, **forward_kwargs)
    finally:
        for h in hooks:
            h.remove()
        if attn_impl != "eager":
            hf_model.set_attn_implementation(attn_impl)
        hf_model.train(was_training)
    return {name: got[name] for name in names if name in got}
