"""tokens.py, the one owner of the tubelet grid and HF's token order, against the producer of the order
(layers.patchify, HF's Conv3d flatten written out) on random grids and tubelets."""

import conftest
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivivit import layers
from minivivit.tokens import TokenMap, clip_thw, tubelet_grid


@settings(max_examples=30, deadline=None)
@given(tubelet=st.tuples(*[st.integers(1, 3)] * 3), grid=st.tuples(*[st.integers(1, 4)] * 3),
       extra=st.tuples(*[st.integers(0, 2)] * 3), seed=st.integers(0, 2**16))
def test_every_patchify_row_is_the_box_tokenmap_names(tubelet, grid, extra, seed):
    """Row j of patchify is token j + 1; its values are the pixels of TokenMap.box(j + 1), in (frame, row, col,
    channel) order. Leftover frames/pixels (extra) are in no box, as the strided Conv3d drops them."""
    T, H, W = (g * t + e % t for g, t, e in zip(grid, tubelet, extra))  # a leftover smaller than a tubelet
    x = np.random.default_rng(seed).standard_normal((1, T, 3, H, W))
    assert tubelet_grid((T, H, W), tubelet) == grid
    tokens = TokenMap.for_config(conftest.tiny_config(tubelet_size=tubelet, num_frames=T, image_size=(H, W)),
                                 x.shape)
    assert tokens.grid == grid
    rows = layers.patchify(x, tubelet)[0]  # [P, K]
    for k in range(1, tokens.num_tokens):
        frames, ys, xs = tokens.box(k)
        box = x[0][frames.start:frames.stop, :, ys.start:ys.stop, xs.start:xs.stop]  # [tt, C, ph, pw]
        np.testing.assert_array_equal(rows[k - 1], box.transpose(0, 2, 3, 1).ravel())


def test_config_grid_and_clip_shapes_agree():
    c = conftest.tiny_config()
    assert c.grid == tubelet_grid((c.num_frames, *c.image_hw), c.tubelet_size) == (2, 2, 2)
    assert clip_thw((1, 4, 3, 32, 48)) == (4, 32, 48) and clip_thw((4, 32, 48)) == (4, 32, 48)


def test_to_grid_inverts_the_flatten_order():
    tokens = TokenMap((2, 3, 4), (1, 1, 1))
    values = np.arange(tokens.num_tokens)  # token k has value k
    g = tokens.to_grid(values)  # [2, 3, 4]
    t, y, x = np.meshgrid(range(2), range(3), range(4), indexing="ij")
    np.testing.assert_array_equal(g, 1 + t * 12 + y * 4 + x)


def test_old_explain_tokenmap_is_the_same_class():
    from minivivit import explain

    assert explain.TokenMap is TokenMap


def test_cls_has_no_place():
    with pytest.raises(ValueError, match="token 0 is CLS"):
        TokenMap((2, 2, 2), (2, 16, 16)).coords(0)
