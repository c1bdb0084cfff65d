"""An independent GAE and gradient-weighted rollout: torch autograd on HF's own ViViT and the papers' matrix
recursions on the attention weights HF returns (the reference of test_relevance_parity and test_explain_cli)."""

import torch


def torch_maps(hf, x, target):
    """HF's attention weights [B, nh, N, N] per layer and d(sum_b logits[b, target_b])/dA (autograd)."""
    hf.zero_grad(set_to_none=True)
    out = hf(torch.from_numpy(x), output_attentions=True)
    for a in out.attentions:
        a.retain_grad()
    t = out.logits.argmax(-1) if target is None else torch.as_tensor(target).expand(x.shape[0])
    out.logits[torch.arange(x.shape[0]), t].sum().backward()
    return [a.detach().double() for a in out.attentions], [a.grad.double() for a in out.attentions], t


def torch_gae(attn, grads):
    """Chefer et al. 2021 as their code writes it: R = I; R += cam @ R with cam = mean_h (grad * A).clamp(0)."""
    B, _, N, _ = attn[0].shape
    R = torch.eye(N, dtype=torch.float64).expand(B, N, N).clone()
    for a, g in zip(attn, grads):
        cam = (g * a).clamp(min=0).mean(dim=1)  # [B, N, N]
        R = R + torch.bmm(cam, R)
    return R[:, 0, 1:]


def torch_grad_rollout(attn, grads, alpha=0.5):
    """Gradient-weighted rollout: F = (mean_h grad * A)^+, Ahat = rownorm(alpha rownorm(F) + (1 - alpha) I),
    R = Ahat_{L-1} ... Ahat_0; rows that sum to 0 stay 0 in rownorm."""
    def rownorm(m):
        s = m.sum(-1, keepdim=True)
        return torch.where(s > 0, m / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(m))

    N = attn[0].shape[-1]
    eye = torch.eye(N, dtype=torch.float64)
    R = None
    for a, g in zip(attn, grads):
        f = (g * a).mean(dim=1).clamp(min=0)  # [B, N, N]
        ahat = rownorm(alpha * rownorm(f) + (1 - alpha) * eye)
        R = ahat if R is None else torch.bmm(ahat, R)
    return R[:, 0, 1:]
