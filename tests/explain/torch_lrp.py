"""Transformer attribution (Chefer et al. CVPR 2021) on HF's own VivitForVideoClassification, written the way the
authors' code is: every relevance rule as `x * autograd.grad(Z, x, R / Z)` on the inputs captured by forward hooks
on HF's modules, and the attention maps' gradients from torch autograd. The reference of test_lrp_parity."""

import torch
import torch.nn.functional as F
from transformers import AttentionInterface


def eager_full_precision(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """HF's eager attention with the softmax in the inputs' dtype (HF's own always runs it in float32, which
    would cap a float64 reference at float32 accuracy)."""
    w = torch.softmax(torch.matmul(query, key.transpose(2, 3)) * scaling, dim=-1)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


AttentionInterface.register("eager_full_precision", eager_full_precision)


def safe_divide(a, b):  # the authors' safe_divide
    den = b.clamp(min=1e-9) + b.clamp(max=1e-9)
    den = den + den.eq(0).type(den.type()) * 1e-9
    return a / den * b.ne(0).type(b.type())


def gradprop(fn, inputs, R):
    """R_i = x_i * d(fn(x) . S)/dx_i with S = R / fn(x): the generic LRP step."""
    xs = [x.detach().requires_grad_(True) for x in inputs]
    Z = fn(*xs)
    grads = torch.autograd.grad(Z, xs, safe_divide(R, Z))
    return [x.detach() * g for x, g in zip(xs, grads)]


def linear(R, x, weight):  # alpha = 1, beta = 0
    pw, nw = weight.clamp(min=0), weight.clamp(max=0)
    px, nx = x.clamp(min=0).detach().requires_grad_(True), x.clamp(max=0).detach().requires_grad_(True)
    Z1, Z2 = F.linear(px, pw), F.linear(nx, nw)
    S = safe_divide(R, Z1 + Z2)
    c1 = px * torch.autograd.grad(Z1, px, S, retain_graph=True)[0]
    c2 = nx * torch.autograd.grad(Z2, nx, S)[0]
    return (c1 + c2).detach()


def add(R, a, b):
    ra, rb = gradprop(lambda x, y: x + y, [a, b], R)
    sa, sb = ra.sum(), rb.sum()
    fa = safe_divide(sa.abs(), sa.abs() + sb.abs()) * R.sum()
    fb = safe_divide(sb.abs(), sa.abs() + sb.abs()) * R.sum()
    return ra * safe_divide(fa, ra.sum()), rb * safe_divide(fb, rb.sum())


def clone(x, *Rs):
    return sum(gradprop(lambda y: y, [x], r)[0] for r in Rs)


def einsum(eq, R, a, b):
    ra, rb = gradprop(lambda x, y: torch.einsum(eq, x, y), [a, b], R)
    return ra / 2, rb / 2


def capture(hf, x):
    """Forward with hooks: the inputs / outputs of every module the rules read, the attention maps (grad kept)."""
    rec = {}

    def keep(name):
        def hook(module, inputs, output):
            rec[name] = (inputs[0].detach().double(), output if isinstance(output, torch.Tensor) else output[0])
        return hook

    handles = []
    for i, layer in enumerate(hf.vivit.layers):
        for part in ("layernorm_before", "layernorm_after", "attention.q_proj", "attention.k_proj",
                     "attention.v_proj", "attention.o_proj", "mlp.fc1", "mlp.fc2", ""):
            module = layer.get_submodule(part) if part else layer
            handles.append(module.register_forward_hook(keep(f"{i}.{part}")))
    handles.append(hf.classifier.register_forward_hook(keep("classifier")))
    out = hf(torch.from_numpy(x), output_attentions=True)
    for h in handles:
        h.remove()
    for a in out.attentions:
        a.retain_grad()
    return out, rec


def heads(z, nh):  # [B, N, D] -> [B, nh, N, d]
    B, N, D = z.shape
    return z.reshape(B, N, nh, D // nh).transpose(1, 2)


def merge(z):  # [B, nh, N, d] -> [B, N, D]
    B, nh, N, d = z.shape
    return z.transpose(1, 2).reshape(B, N, nh * d)


def transformer_attribution(hf, x, target):
    """C[0, 1:] for one clip x [1, T, C, H, W] and a target class (None: the predicted one)."""
    hf = hf.double()
    hf.set_attn_implementation("eager_full_precision")
    out, rec = capture(hf, x.astype("float64"))
    t = int(out.logits.argmax()) if target is None else int(target)
    hf.zero_grad(set_to_none=True)
    out.logits[0, t].backward()
    nh = hf.config.num_attention_heads
    onehot = torch.zeros_like(out.logits.detach())
    onehot[0, t] = 1.0
    cls_in = rec["classifier"][0]  # [1, D], the pooled CLS after the final LayerNorm
    R_cls = linear(onehot, cls_in, hf.classifier.weight.double())
    normed = hf.vivit.layernorm(rec[f"{len(hf.vivit.layers) - 1}."][1].detach().double())  # [1, N, D]
    R = gradprop(lambda y: y[:, 0], [normed], R_cls)[0]  # the CLS pooling (index_select)
    cams = []
    for i in reversed(range(len(hf.vivit.layers))):
        layer = hf.vivit.layers[i]
        x_in = rec[f"{i}.layernorm_before"][0]
        attn_out = rec[f"{i}.attention.o_proj"][1].detach().double()
        resid1 = rec[f"{i}.layernorm_after"][0]
        mlp_out = rec[f"{i}.mlp.fc2"][1].detach().double()
        r_res, r_mlp = add(R, resid1, mlp_out)
        r = linear(r_mlp, rec[f"{i}.mlp.fc2"][0], layer.mlp.fc2.weight.double())
        r = linear(r, rec[f"{i}.mlp.fc1"][0], layer.mlp.fc1.weight.double())
        R = clone(resid1, r_res, r)
        r_x, r_attn = add(R, x_in, attn_out)
        ctx = rec[f"{i}.attention.o_proj"][0]
        r_ctx = linear(r_attn, ctx, layer.attention.o_proj.weight.double())
        q, k, v = (heads(rec[f"{i}.attention.{n}_proj"][1].detach().double(), nh) for n in "qkv")
        attn = out.attentions[i].detach().double()
        r_a, r_v = einsum("bhij,bhjd->bhid", heads(r_ctx, nh), attn, v)
        cams.append((out.attentions[i].grad.double()[0] * r_a[0]).clamp(min=0).mean(dim=0))  # [N, N]
        r_q, r_k = einsum("bhid,bhjd->bhij", r_a, q, k)
        ln1 = rec[f"{i}.attention.q_proj"][0]
        r = sum(linear(merge(rr), ln1, getattr(layer.attention, f"{n}_proj").weight.double())
                for rr, n in ((r_q, "q"), (r_k, "k"), (r_v, "v")))
        R = clone(x_in, r_x, r)
    cams = cams[::-1]
    eye = torch.eye(cams[0].shape[-1], dtype=torch.float64)
    joint = cams[0] + eye
    for c in cams[1:]:
        joint = (c + eye) @ joint
    return joint[0, 1:], t
