"""Start a video model from an image ViT (Arnab et al. 2021, Section 3.4): inflate an HF `ViTModel` checkpoint
into a ViViT Model 1 (spatio-temporal attention) or Model 2 (factorised encoder).

    model = minivivit.inflate("vit-base-patch16-224", num_frames=32, method="central",
                              attention_type="factorized_encoder", num_labels=400)

What is copied and how (D, heads, MLP, LayerNorm epsilon and activation are the ViT's):
    tubelet kernel E [tt, p, p, C] from the image kernel E_image [p, p, C]:
        method="filter":  E = 1/tt [E_image, ..., E_image]          (Eq. 8, "filter inflation")
        method="central": E = [0, ..., E_image, ..., 0], E_image at frame floor(tt/2)   (Eq. 9, the paper's choice)
    position embeddings: Model 1 repeats the ViT's (h*w) grid over the t time slices ("repeating them
        temporally"), after the ViT's CLS position; Model 2's spatial encoder takes the ViT's as they are
    CLS token, every block, the final LayerNorm: copied (Model 1's encoder; Model 2's spatial encoder)
    new parts (Model 2's temporal encoder, the head): initialised as Scenic's initialisers do (Xavier-uniform
        kernels, zero biases, unit LayerNorm gains, positions N(0, 0.02), zero CLS token, zero head), seeded.

What this guarantees, and tests/scenic/test_inflate.py checks against HF's ViTModel:
    Model 2: the spatial encoder's output for time slice i (every token, after its LayerNorm) equals the ViT's
        last_hidden_state on one image: frame i*tt + floor(tt/2) of the clip (central), or the mean of the tt
        frames of slice i (filter: the tubelet projection is linear). For a clip of identical frames, both
        are the ViT's output on that frame, for every slice.
    Model 1: the embeddings (CLS, then the t copies of the h*w grid, + positions) equal the ViT's embeddings
        with the grid tiled t times, on the same images as above. The blocks' outputs do not equal the ViT's:
        every query sees each image token t times but the CLS token once, which reweights the softmax.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import ViViTConfig
from .model import Model
from .weights import expected_shapes, unflatten_params

VIT_FIELDS = ("image_size", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "hidden_act", "layer_norm_eps", "qkv_bias")
DROPPED = ("pooler.w", "pooler.b", "head.w", "head.b")  # the ViT's pooler and image classifier are not used


def read_vit(vit, vit_config=None) -> tuple[dict[str, np.ndarray], dict]:
    """An HF ViT directory / weights file (config.json beside it), or (state dict + vit_config) -> (flat
    minivivit-named arrays of the image model, its config dict)."""
    from .convert.hf import find_weights, hf_key_to_ours, read_weights_file, to_ours

    if isinstance(vit, (str, Path)):
        path = Path(vit)
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {path}")
        weights = find_weights(path) if path.is_dir() else path
        if vit_config is None:
            cfg_path = weights.parent / "config.json"
            if not cfg_path.is_file():
                raise FileNotFoundError(f"no config.json next to {weights}; pass vit_config={{...}}")
            vit_config = json.loads(cfg_path.read_text())
        state = read_weights_file(weights)
    else:
        state = dict(vit)
        if vit_config is None:
            raise ValueError("inflate(state_dict) needs vit_config (the ViT's config.json as a dict)")
    if hasattr(vit_config, "to_dict"):
        vit_config = vit_config.to_dict()
    if vit_config.get("model_type", "vit") != "vit":
        raise ValueError(f"expected an HF ViT (model_type 'vit'); this config has model_type={vit_config['model_type']!r}")
    flat, unknown = {}, []
    for key, a in state.items():
        k = key.removeprefix("vit.")
        ours = hf_key_to_ours(k)
        if ours is None:
            if k != "embeddings.mask_token":  # ViTModel(use_mask_token=True) only: not used for video
                unknown.append(f"{key} {tuple(np.shape(a))}")
            continue
        flat[ours] = to_ours(ours, np.asarray(a))  # [out, in] -> [in, out]; cls, pos lose the batch axis
    if unknown:
        raise ValueError(f"unknown keys in the ViT checkpoint (expected HF ViTModel / ViTForImageClassification "
                         f"names): {', '.join(unknown[:8])}")
    return flat, vit_config


def inflate(vit, *, num_frames: int, tubelet_frames: int = 2, method: str = "central",
            attention_type: str = "spacetime", temporal_num_layers: int = 4, num_labels: int | None = None,
            vit_config=None, seed: int = 0, dtype=np.float32) -> Model:
    """An HF ViT (directory, weights file, or state dict + vit_config) -> a ViViT Model 1 ('spacetime') or
    Model 2 ('factorized_encoder') with tubelets (tubelet_frames, p, p); a head only if num_labels is given."""
    if method not in ("filter", "central"):
        raise ValueError(f"method must be 'filter' (Eq. 8) or 'central' (Eq. 9); got {method!r}")
    if attention_type not in ("spacetime", "factorized_encoder"):
        raise ValueError(f"inflate builds Model 1 ('spacetime') or Model 2 ('factorized_encoder'); got "
                         f"attention_type={attention_type!r}")
    vit_flat, vc = read_vit(vit, vit_config)
    p = int(vc.get("patch_size", 16))
    tt = int(tubelet_frames)
    kwargs = {k: vc[k] for k in VIT_FIELDS if k in vc}
    flat_vit_blocks = {k: v for k, v in vit_flat.items() if k not in DROPPED}
    config = ViViTConfig(**kwargs, num_frames=num_frames, tubelet_size=(tt, p, p), attention_type=attention_type,
                         num_labels=num_labels or 2, classifier="token",
                         **({"temporal_num_layers": temporal_num_layers} if attention_type == "factorized_encoder"
                            else {}))
    t, h, w = config.grid
    D, C = config.hidden_size, config.num_channels
    E = vit_flat["embed.proj.w"]  # Conv2d weight [D, C, p, p]
    if E.shape != (D, C, p, p):
        raise ValueError(f"the ViT's patch projection has shape {E.shape}, expected {(D, C, p, p)} from its config")
    pos = vit_flat["embed.pos"]  # [1 + h*w, D]
    if pos.shape != (1 + h * w, D):
        raise ValueError(f"the ViT's position embeddings have shape {pos.shape}; a {config.image_hw} frame with "
                         f"{p}x{p} patches needs {(1 + h * w, D)}")

    e_image = E.transpose(2, 3, 1, 0)  # [D, C, p, p] -> [p, p, C, D]: minivivit's (row, col, channel) order
    if method == "filter":  # Eq. 8: the image filter in every frame, divided by tt
        kernel = np.stack([e_image / tt] * tt)  # [tt, p, p, C, D]
    else:  # Eq. 9: the image filter in the central frame only
        kernel = np.zeros((tt, *e_image.shape), e_image.dtype)
        kernel[tt // 2] = e_image  # [tt, p, p, C, D]
    flat = {"embed.proj.w": kernel.reshape(-1, D), "embed.proj.b": vit_flat["embed.proj.b"]}  # [tt*p*p*C, D]

    copied = {k: v for k, v in flat_vit_blocks.items() if k.startswith(("blocks.", "norm."))}
    if attention_type == "spacetime":
        flat["embed.cls"] = vit_flat["embed.cls"]
        flat["embed.pos"] = np.concatenate([pos[:1], np.tile(pos[1:], (t, 1))])  # [1 + t*h*w, D]: grid over time
        flat.update(copied)
    else:
        flat.update({"spatial.cls": vit_flat["embed.cls"], "spatial.pos": pos})
        flat.update({f"spatial.{k}": v for k, v in copied.items()})
    shapes = expected_shapes(config, head=num_labels is not None, pooler=False)
    rng = np.random.default_rng(seed)
    for key, shape in shapes.items():  # what the image model does not have: Scenic's initialisers
        if key not in flat:
            flat[key] = _scenic_init(key, shape, rng)
    problems = [f"unexpected {k}" for k in sorted(set(flat) - set(shapes))]
    problems += [f"{k} has shape {flat[k].shape}, expected {s}" for k, s in shapes.items() if flat[k].shape != s]
    if problems:
        raise ValueError("the ViT's weights do not fit its config.json:\n  " + "\n  ".join(problems))
    return Model(unflatten_params({k: np.ascontiguousarray(v, dtype=dtype) for k, v in flat.items()}), config)


def _scenic_init(key: str, shape: tuple, rng) -> np.ndarray:
    """Scenic's initialiser for a new parameter: Xavier-uniform kernels (zero for the head, as Scenic's
    output_projection), zero biases and CLS token, unit LayerNorm gains, positions N(0, 0.02)."""
    name = key.rsplit(".", 1)[-1]
    if key.startswith("head."):
        return np.zeros(shape)
    if name == "w":
        limit = np.sqrt(6.0 / (shape[0] + shape[1]))
        return rng.uniform(-limit, limit, shape)
    if name == "g":
        return np.ones(shape)
    if name == "pos":
        return rng.normal(0.0, 0.02, shape)
    return np.zeros(shape)  # biases, LayerNorm biases, the CLS token
