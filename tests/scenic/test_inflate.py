"""minivivit.inflate (paper Section 3.4) against HF transformers' ViTModel: a randomised ViT checkpoint saved to
a tmp dir, inflated to Model 2 / Model 1, compared in float64 with what the image model computes. ~3 s."""

import numpy as np
import pytest

import minivivit
from minivivit import factorized
from minivivit.kernels import get_backend

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

T, TT, P, IMG = 6, 2, 4, (8, 12)  # 6 frames, tubelets of 2 frames x 4 x 4 pixels, 8x12 frames: grid (3, 2, 3)


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=list(IMG), patch_size=P, num_channels=3, hidden_size=16,
                                 num_hidden_layers=2, num_attention_heads=4, intermediate_size=24)
    vit = transformers.ViTModel(cfg).eval()
    with torch.no_grad():  # every parameter random (HF zero-initialises the CLS token and biases)
        for p in vit.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.ndim < 2 else 1.0 / p.shape[-1] ** 0.5))
    path = tmp_path_factory.mktemp("vit")
    vit.save_pretrained(path)
    return path, vit.double()


def vit_tokens(vit, frames):
    """HF ViTModel's last_hidden_state (after its final LayerNorm) for images [n, C, H, W], float64."""
    with torch.no_grad():
        return vit(pixel_values=torch.from_numpy(frames), interpolate_pos_encoding=False).last_hidden_state.numpy()


def vit_embeddings(vit, frames):
    with torch.no_grad():
        return vit(pixel_values=torch.from_numpy(frames), output_hidden_states=True).hidden_states[0].numpy()


def clip(identical: bool):
    rng = np.random.default_rng(5)
    if identical:
        return np.repeat(rng.normal(size=(2, 1, 3, *IMG)), T, axis=1)  # [B, T, C, H, W], every frame the same
    return rng.normal(size=(2, T, 3, *IMG))


def slice_images(x, method):
    """The image each time slice of a video shows the inflated model: [B, t, C, H, W]."""
    x = x.reshape(x.shape[0], T // TT, TT, *x.shape[2:])  # [B, t, tt, C, H, W]
    return x[:, :, TT // 2] if method == "central" else x.mean(axis=2)


def spatial_output(model, x):
    seen = {}
    factorized.forward(model.params, model.config, x, ops=get_backend("numpy"),
                       tap=lambda name, a: seen.setdefault(name, a))
    return seen["spatial.norm"].reshape(x.shape[0], T // TT, *seen["spatial.norm"].shape[1:])  # [B, t, n_s, D]


@pytest.mark.parametrize("identical", [True, False], ids=["identical-frames", "random-frames"])
@pytest.mark.parametrize("method", ["filter", "central"])
def test_model2_spatial_tokens_equal_the_image_vit(vit_dir, method, identical):
    path, vit = vit_dir
    model = minivivit.inflate(path, num_frames=T, tubelet_frames=TT, method=method,
                              attention_type="factorized_encoder", temporal_num_layers=1, num_labels=5,
                              dtype=np.float64)
    x = clip(identical)
    ours = spatial_output(model, x)  # [B, t, 1 + h*w, D]
    images = slice_images(x, method)  # [B, t, C, H, W]
    ref = vit_tokens(vit, images.reshape(-1, *images.shape[2:])).reshape(ours.shape)
    if identical:  # every slice shows the clip's one frame, whatever the method
        ref_one = vit_tokens(vit, x[:, 0])  # [B, 1 + h*w, D]
        assert np.abs(ref - ref_one[:, None]).max() < 1e-12
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    assert err < 1e-12, f"{method}: inflated spatial tokens differ from the ViT's by {err:.1e}"
    assert np.all(model.params["head"]["w"] == 0)  # Scenic's zero-initialised output projection


@pytest.mark.parametrize("method", ["filter", "central"])
def test_model1_embeddings_are_the_vit_grid_repeated_over_time(vit_dir, method):
    path, vit = vit_dir
    model = minivivit.inflate(path, num_frames=T, tubelet_frames=TT, method=method, dtype=np.float64)
    assert model.config.is_hf_model and model.config.grid == (3, 2, 3)
    x = clip(identical=False)
    seen = {}
    model_out = minivivit.model.vivit_forward(model.params, model.config, x, tap=lambda n, a: seen.setdefault(n, a))
    images = slice_images(x, method)  # [B, t, C, H, W]
    ref = vit_embeddings(vit, images.reshape(-1, *images.shape[2:])).reshape(2, 3, 7, 16)  # [B, t, 1 + h*w, D]
    ours = seen["embed.out"]  # [B, 1 + t*h*w, D]
    assert np.abs(ours[:, 0] - ref[:, 0, 0]).max() < 1e-12  # CLS + its position
    grid = ours[:, 1:].reshape(2, 3, 6, 16)  # tokens flattened (t, h, w)
    assert np.abs(grid - ref[:, :, 1:]).max() / np.abs(ref).max() < 1e-12
    assert model_out.last_hidden_state.shape == (2, 1 + 18, 16)


def test_identical_frames_stay_identical_in_model1(vit_dir):
    path, _ = vit_dir
    model = minivivit.inflate(path, num_frames=T, tubelet_frames=TT, method="filter", dtype=np.float64)
    out = model(clip(identical=True)).last_hidden_state[:, 1:].reshape(2, 3, 6, 16)  # [B, t, h*w, D]
    assert np.abs(out - out[:, :1]).max() < 1e-12


def test_inflate_errors(vit_dir, tmp_path):
    path, _ = vit_dir
    with pytest.raises(ValueError, match="'filter' \\(Eq. 8\\) or 'central'"):
        minivivit.inflate(path, num_frames=T, method="mean")
    with pytest.raises(ValueError, match="Model 1 .* or Model 2"):
        minivivit.inflate(path, num_frames=T, attention_type="factorized_dot_product_attention")
    (tmp_path / "config.json").write_text('{"model_type": "vivit"}')
    (tmp_path / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="expected an HF ViT"):
        minivivit.inflate(tmp_path, num_frames=T)
