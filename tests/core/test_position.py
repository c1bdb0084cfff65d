"""(t, h, w) position-embedding resizing vs torch.nn.functional.interpolate, and at model level."""

import numpy as np
import pytest

from minivivit.position import bicubic_matrix, linear_matrix, resize_grid

torch = pytest.importorskip("torch", reason="compares with torch.nn.functional.interpolate (dev extra)")
F = torch.nn.functional


@pytest.mark.parametrize("old,new", [((14, 14), (20, 20)), ((14, 14), (7, 9)), ((3, 5), (8, 2)), ((1, 4), (3, 4))])
def test_spatial_resize_equals_torch_bicubic_per_time_slice(old, new):
    rng = np.random.default_rng(0)
    t, D = 3, 6
    pos = rng.standard_normal((t * old[0] * old[1], D))  # float64: the algorithm itself, to 1e-12
    for dtype, atol in [(np.float64, 1e-12), (np.float32, 1e-5)]:  # float32: torch accumulates in float32
        p = pos.astype(dtype)
        ours = resize_grid(p, (t, *old), (t, *new)).reshape(t, *new, D)
        assert ours.dtype == dtype
        for ti in range(t):  # HF's ViT: [1, D, h, w] -> bicubic, align_corners=False
            grid = torch.from_numpy(p.reshape(t, *old, D)[ti]).permute(2, 0, 1)[None]
            ref = F.interpolate(grid, size=new, mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
            np.testing.assert_allclose(ours[ti], ref, atol=atol, rtol=0)


@pytest.mark.parametrize("n_in,n_out", [(16, 8), (16, 24), (2, 5), (5, 1)])
def test_temporal_resize_equals_torch_linear(n_in, n_out):
    x = np.random.default_rng(1).standard_normal((n_in, 3))
    ref = F.interpolate(torch.from_numpy(x.T[None]), size=n_out, mode="linear", align_corners=False)[0].numpy().T
    np.testing.assert_allclose(linear_matrix(n_in, n_out) @ x, ref, atol=1e-12)


def test_identity_when_shapes_match():
    pos = np.random.default_rng(2).standard_normal((16 * 14 * 14, 4)).astype(np.float32)
    assert resize_grid(pos, (16, 14, 14), (16, 14, 14)) is pos
    np.testing.assert_allclose(bicubic_matrix(7, 7), np.eye(7), atol=1e-12)
    np.testing.assert_allclose(linear_matrix(5, 5), np.eye(5), atol=1e-12)


def test_time_and_space_are_not_mixed():
    """The sqrt(N) mistake: a grid whose value depends only on t must stay constant within each time slice."""
    t, h, w = 4, 3, 3
    pos = np.repeat(np.arange(t, dtype=np.float64), h * w)[:, None]  # value = t
    out = resize_grid(pos, (t, h, w), (t, 5, 6)).reshape(t, 5, 6)
    for ti in range(t):
        np.testing.assert_allclose(out[ti], ti, atol=1e-12)


def test_wrong_grid_is_a_clear_error():
    with pytest.raises(ValueError, match="do not form the grid"):
        resize_grid(np.zeros((10, 2)), (2, 2, 2), (2, 3, 3))
