"""explain.py: token <-> pixel mapping, rollout, per-head metrics.

Expected values are written by hand in the tests (or come from HF's Conv3d), never from explain.py.
"""

import numpy as np
import pytest

from minivivit import explain
from minivivit.explain import TokenMap

# ---------------------------------------------------------------------------------------------
# Token <-> pixel mapping
# ---------------------------------------------------------------------------------------------


def _hf_order_values(grid, f):
    """Token values [N] (CLS = NaN first) in HF's Conv3d flatten order: nested loops t, then y, then x."""
    t, h, w = grid
    vals = [np.nan]
    for ti in range(t):
        for yi in range(h):
            for xi in range(w):
                vals.append(f(ti, yi, xi))
    return np.array(vals)


def test_token_coords_box_and_pixel_lookup_by_hand():
    tm = TokenMap(grid=(3, 2, 4), tubelet=(2, 5, 7))
    assert tm.num_patches == 24 and tm.num_tokens == 25 and tm.clip_shape == (6, 10, 28)
    # token 1 + 1*8 + 1*4 + 2 = 15 is (t=1, y=1, x=2)
    assert tuple(int(a) for a in tm.coords(15)) == (1, 1, 2)
    assert int(tm.token(1, 1, 2)) == 15
    assert tm.box(15) == (range(2, 4), range(5, 10), range(14, 21))
    assert int(tm.token_at(3, 9, 20)) == 15 and int(tm.token_at(2, 5, 14)) == 15
    assert int(tm.token_at(4, 9, 20)) == 23  # next time slice
    assert int(tm.token_at(0, 0, 0)) == 1
    ks = np.arange(1, 25)
    assert np.array_equal(tm.token(*tm.coords(ks)), ks)  # round trip on every patch token
    with pytest.raises(ValueError, match="CLS"):
        tm.coords(0)
    with pytest.raises(ValueError, match="outside"):
        tm.token_at(6, 0, 0)


def test_token_order_matches_hf_conv3d():
    """Feed HF's own tubelet embedding a clip whose channels are (frame, row, col) and an averaging kernel:
    token k's embedding is then the centre of the pixels it covers, which TokenMap.box must name."""
    torch = pytest.importorskip("torch")
    from transformers import VivitConfig
    from transformers.models.vivit.modeling_vivit import VivitTubeletEmbeddings

    cfg = VivitConfig(num_frames=6, image_size=[10, 28], tubelet_size=[2, 5, 7], hidden_size=3, num_channels=3)
    emb = VivitTubeletEmbeddings(cfg)
    with torch.no_grad():
        emb.projection.weight.zero_()
        emb.projection.bias.zero_()
        for c in range(3):
            emb.projection.weight[c, c] = 1.0 / (2 * 5 * 7)
    f, r, c = np.meshgrid(np.arange(6), np.arange(10), np.arange(28), indexing="ij")
    clip = np.stack([f, r, c], axis=1)[None].astype(np.float32)  # [1, T, C=3, H, W]
    centres = emb(torch.from_numpy(clip)).detach().numpy()[0]  # [P, 3]
    tm = TokenMap(grid=(3, 2, 4), tubelet=(2, 5, 7))
    for k in range(1, tm.num_tokens):
        frames, rows, cols = tm.box(k)
        expect = [np.mean(frames), np.mean(rows), np.mean(cols)]
        np.testing.assert_allclose(centres[k - 1], expect, atol=1e-4, err_msg=f"token {k}")


def _assert_renders_tyx(render, grid, tubelet):
    """render(token values [N]) -> [T, H, W]; values are 100 t + 10 y + x of the tubelet, so every pixel
    (frame, row, col) must show 100 (frame // tt) + 10 (row // ph) + col // pw."""
    tt, ph, pw = tubelet
    vals = _hf_order_values(grid, lambda t, y, x: 100 * t + 10 * y + x)
    out = render(vals)
    T, H, W = (g * s for g, s in zip(grid, tubelet))
    assert out.shape == (T, H, W), out.shape
    f, r, c = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    expect = 100 * (f // tt) + 10 * (r // ph) + (c // pw)
    assert np.array_equal(out, expect), "pixels show the wrong tubelet"


@pytest.mark.parametrize("grid,tubelet", [((4, 2, 3), (2, 3, 5)), ((4, 2, 2), (1, 4, 4)), ((2, 3, 3), (2, 2, 2))])
def test_synthetic_attention_renders_into_the_right_frames_and_boxes(grid, tubelet):
    tm = TokenMap(grid, tubelet)
    _assert_renders_tyx(lambda v: tm.to_pixels(tm.to_grid(v)), grid, tubelet)


def test_index_check_catches_sqrt_n_and_swapped_axes():
    """The check above must fail for the two classic mistakes (so a regression in to_grid would be caught)."""
    grid, tubelet = (4, 2, 2), (1, 4, 4)  # P = 16 = 4 x 4: the sqrt(N) reading "works" without error
    tt, ph, pw = tubelet

    def sqrt_n(v):  # image-ViT tools: P tokens as a sqrt(P) x sqrt(P) picture, the same for every frame
        s = int(np.sqrt(v.size - 1))
        img = np.kron(v[1:].reshape(s, s), np.ones((ph, pw)))[: grid[1] * ph, : grid[2] * pw]
        return np.broadcast_to(img, (grid[0] * tt,) + img.shape)

    def swapped(v):  # t and h swapped: the P axis read as (h, t, w)
        g = v[1:].reshape(grid[1], grid[0], grid[2]).transpose(1, 0, 2)
        return np.kron(g, np.ones(tubelet))

    for wrong in (sqrt_n, swapped):
        with pytest.raises(AssertionError):
            _assert_renders_tyx(wrong, grid, tubelet)
    tm = TokenMap(grid, tubelet)
    _assert_renders_tyx(lambda v: tm.to_pixels(tm.to_grid(v)), grid, tubelet)


def test_to_pixels_smooth_and_padding():
    tm = TokenMap(grid=(1, 1, 3), tubelet=(1, 2, 4))
    ramp = np.array([[[0.0, 4.0, 8.0]]])  # [t, h, w]
    sm = tm.to_pixels(ramp, mode="smooth")  # [1, 2, 12]
    # pixel-column centres 1.5, 5.5, 9.5 are the tubelet centres; between them the ramp is linear, 1 per pixel
    assert np.allclose(sm[0, 0], [0, 0, 0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8, 8, 8][:12][:0] or
                       [0, 0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8, 8])
    padded = tm.to_pixels(ramp, size=(2, 3, 13))  # the remainder a Conv3d drops is NaN
    assert np.isnan(padded[1]).all() and np.isnan(padded[0, 2]).all() and np.isnan(padded[0, :, 12]).all()
    assert np.array_equal(padded[0, :2, :12], np.repeat(np.repeat(ramp[0], 2, 0), 4, 1))


def test_tubelet_coverage():
    tm = TokenMap(grid=(2, 2, 2), tubelet=(2, 4, 4))
    mask = np.zeros((4, 8, 8), bool)
    mask[3, 5, 1] = True  # one pixel in tubelet (t=1, y=1, x=0)
    mask[0:2, 0:4, 4:8] = True  # the whole tubelet (0, 0, 1)
    cov = explain.tubelet_coverage(mask, tm)
    expect = np.zeros((2, 2, 2))
    expect[1, 1, 0] = 1 / 32
    expect[0, 0, 1] = 1.0
    assert np.allclose(cov, expect)


# ---------------------------------------------------------------------------------------------
# Rollout
# ---------------------------------------------------------------------------------------------

A1 = np.array([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.0, 0.5, 0.5]])
A2 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def test_rollout_two_layers_by_hand():
    maps = [A1[None, None], A2[None, None]]  # [B=1, nh=1, 3, 3] per layer
    # by hand, alpha = 0.5: A1^ = 0.5 A1 + 0.5 I, A2^ = 0.5 A2 + 0.5 I, rollout = A2^ @ A1^
    expect = np.array([[0.425, 0.4625, 0.1125], [0.05, 0.525, 0.425], [0.375, 0.1875, 0.4375]])
    r = explain.rollout(maps)[0]
    assert np.allclose(r, expect)
    assert np.allclose(explain.rollout_cls(maps)[0], expect[0])
    # start_layer=1 leaves only layer 2: [[.5, .5, 0], [0, .5, .5], [.5, 0, .5]]
    assert np.allclose(explain.rollout(maps, start_layer=1)[0], [[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]])
    # alpha = 1 is the bare product A2 @ A1 (a permutation of A1's rows here)
    assert np.allclose(explain.rollout(maps, alpha=1.0)[0], A1[[1, 2, 0]])


@pytest.mark.parametrize("how,expect", [
    ("mean", [[0.65, 0.15, 0.2], [0.125, 0.875, 0.0], [0.1, 0.15, 0.75]]),
    ("max", [[23 / 36, 5 / 36, 8 / 36], [1 / 6, 5 / 6, 0.0], [0.1, 0.15, 0.75]]),
    ("min", [[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.1, 0.15, 0.75]]),
    (1, [[0.55, 0.05, 0.4], [0.25, 0.75, 0.0], [0.1, 0.15, 0.75]]),
])
def test_head_fusion_by_hand(how, expect):
    h0 = [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5]]
    h1 = [[0.1, 0.1, 0.8], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]
    a = np.array([h0, h1])  # [nh=2, 3, 3]
    assert np.allclose(explain.rollout_matrix(a, head_fusion=how, alpha=0.5), expect)


def test_discard_never_drops_diagonal_or_cls_column():
    f = np.array([
        [0.02, 0.4, 0.3, 0.2, 0.08],
        [0.1, 0.01, 0.5, 0.3, 0.09],
        [0.1, 0.4, 0.05, 0.3, 0.15],  # query 2: diagonal 0.05 and CLS 0.1 are the two smallest
        [0.3, 0.3, 0.3, 0.05, 0.05],  # ties: the earlier column goes first
        [0.2, 0.2, 0.2, 0.2, 0.2],
    ])
    out = explain.discard_lowest(f, 0.34)  # row 0 has 4 droppable entries -> 1 dropped; others 3 -> 1
    expect = f.copy()
    expect[0, 4] = 0  # 0.08 (the CLS entry 0.02 is protected)
    expect[1, 4] = 0  # 0.09 (the diagonal 0.01 is protected)
    expect[2, 4] = 0  # 0.15 (the diagonal 0.05 and the CLS 0.1 are protected)
    expect[3, 4] = 0  # droppable 0.3, 0.3, 0.05 (cols 1, 2, 4): 0.05 (the diagonal 0.05 is protected)
    expect[4, 1] = 0  # all equal: the earliest droppable column
    assert np.array_equal(out, expect)
    heavy = explain.discard_lowest(f, 0.99)  # drops 3 of 4 (row 0) or 2 of 3: diagonal and CLS survive
    assert (np.diag(heavy) == np.diag(f)).all() and (heavy[:, 0] == f[:, 0]).all()
    assert np.array_equal((heavy > 0).sum(axis=1), [2, 3, 3, 3, 3])


def _random_maps(rng, L, B, nh, N):
    return [rng.dirichlet(np.ones(N) * 0.3, size=(B, nh, N)) for _ in range(L)]  # rows sum to 1


@pytest.mark.parametrize("fusion", ["mean", "max", "min", 0])
@pytest.mark.parametrize("alpha,discard,start", [(0.5, 0.0, 0), (0.9, 0.3, 1), (0.2, 0.6, 2), (1.0, 0.0, 0)])
def test_rollout_rows_sum_to_one_and_cls_form_equals_full_product(fusion, alpha, discard, start):
    rng = np.random.default_rng(hash((str(fusion), alpha)) % 2**32)
    maps = _random_maps(rng, L=4, B=2, nh=3, N=9)
    r = explain.rollout(maps, fusion, alpha, discard, start)  # [B, N, N]
    assert r.shape == (2, 9, 9)
    assert np.allclose(r.sum(axis=-1), 1.0, atol=1e-12)
    v = explain.rollout_cls(maps, fusion, alpha, discard, start)
    assert np.allclose(v, r[:, 0, :], rtol=1e-12, atol=1e-14)
    # and against the product written out here
    mats = [explain.rollout_matrix(m, fusion, alpha, discard) for m in maps[start:]]
    full = mats[0]
    for m in mats[1:]:
        full = np.einsum("bij,bjk->bik", m, full)
    assert np.allclose(r, full)


def test_rollout_refuses_cls_rows_and_missing_layers():
    rng = np.random.default_rng(0)
    maps = _random_maps(rng, 2, 1, 2, 5)
    with pytest.raises(ValueError, match="cls_rollout"):
        explain.rollout([m[:, :, 0, :] for m in maps])
    with pytest.raises(ValueError, match="not captured"):
        explain.rollout_cls([None, maps[1]])
    assert explain.rollout_cls([None, maps[1]], start_layer=1).shape == (1, 5)  # layers before start unused
    with pytest.raises(ValueError, match="start_layer"):
        explain.rollout(maps, start_layer=2)


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def test_mean_attention_distance_identity_is_zero():
    tm = TokenMap((3, 2, 2), (2, 4, 4))
    eye = np.eye(tm.num_tokens)[None].repeat(2, axis=0)  # [nh=2, N, N]
    d = explain.mean_attention_distance(eye, tm)
    assert np.array_equal(d["space"], [0, 0]) and np.array_equal(d["time"], [0, 0])
    assert np.array_equal(d["cls_share"], [0, 0])


def test_mean_attention_distance_by_hand():
    # grid (t, h, w) = (2, 1, 2), tubelet (2, 4, 4): tokens 1 (0,0,0) 2 (0,0,1) 3 (1,0,0) 4 (1,0,1)
    tm = TokenMap((2, 1, 2), (2, 4, 4))
    uniform = np.full((5, 5), 0.2)
    # each patch query, renormalised without CLS: 1/4 on each patch; space 0,4,0,4 px -> 2; time 0,0,2,2 -> 1
    other_x = np.zeros((5, 5))
    other_x[:, 0] = 0.5  # half on CLS, half on the other column of the same time slice
    for q, k in ((1, 2), (2, 1), (3, 4), (4, 3)):
        other_x[q, k] = 0.5
    d = explain.mean_attention_distance(np.stack([uniform, other_x]), tm)
    assert np.allclose(d["space"], [2.0, 4.0]) and np.allclose(d["time"], [1.0, 0.0])
    assert np.allclose(d["cls_share"], [0.2, 0.5])
    # a diagonal neighbour in space: tubelet 3 rows x 4 cols -> hypot(3, 4) = 5 px
    tm2 = TokenMap((1, 2, 2), (1, 3, 4))
    diag = np.zeros((5, 5))
    diag[0, 0] = 1
    for q, k in ((1, 4), (4, 1), (2, 3), (3, 2)):
        diag[q, k] = 1
    assert np.allclose(explain.mean_attention_distance(diag, tm2)["space"], 5.0)
    by_layer = explain.distance_by_layer([np.stack([uniform, other_x])[None]] * 3, tm)
    assert by_layer["space"].shape == (3, 2) and np.allclose(by_layer["time"], [[1.0, 0.0]] * 3)


def test_entropy():
    assert np.allclose(explain.entropy(np.full(7, 1 / 7)), 1.0)
    assert explain.entropy(np.eye(4)[2]) == 0.0
    assert np.isclose(explain.entropy([0.5, 0.5, 0, 0]), 0.5)  # log 2 / log 4
    full = np.stack([np.full((6, 6), 1 / 6), np.eye(6)])  # [nh=2, N, N]
    assert np.allclose(explain.head_entropy(full), [1.0, 0.0])
    assert np.allclose(explain.head_entropy(full[:, 0, :]), [1.0, 0.0])  # CLS rows


def test_uniform_distance_by_hand():
    # two slices of one tubelet each, 2 frames apart: pairs (0,0), (0,1), (1,0), (1,1) -> time 0, 2, 2, 0 frames
    assert explain.uniform_distance(TokenMap((2, 1, 1), (2, 8, 8))) == {"space": 0.0, "time": 1.0}
    # one slice of 1 x 2 tubelets 8 px wide: space 0, 8, 8, 0 px
    assert explain.uniform_distance(TokenMap((1, 1, 2), (2, 8, 8))) == {"space": 4.0, "time": 0.0}


def test_space_time_decomposition_by_hand():
    tm = TokenMap((3, 2, 2), (2, 8, 8))  # t = 3 slices of 2 x 2
    q = int(tm.token(1, 0, 1))  # query at t=1, y=0, x=1 -> token 6
    assert q == 6
    row = np.zeros(13)
    row[0] = 0.2  # CLS
    row[6] = 0.2  # itself: same slice, same place, tau 0
    row[5] = 0.1  # (1, 0, 0): same slice
    row[2] = 0.3  # (0, 0, 1): same place, tau -1
    row[12] = 0.2  # (2, 1, 1): tau +1
    d = explain.space_time_decomposition(row, q, tm)  # patch mass 0.8 renormalised
    assert np.isclose(d["same_slice"], 0.3 / 0.8) and np.isclose(d["same_location"], 0.5 / 0.8)
    assert np.array_equal(d["taus"], [-1, 0, 1])  # a query in slice 1 of 3 has no key 2 slices away
    assert np.allclose(d["curve"], [0.3 / 0.8, 0.3 / 0.8, 0.2 / 0.8]) and np.allclose(d["uniform"], 1 / 3)
    first = explain.space_time_decomposition(row, int(tm.token(0, 0, 0)), tm)
    assert np.array_equal(first["taus"], [0, 1, 2])  # slice 0 looks only forward
    assert np.isclose(d["cls_share"], 0.2)
    assert np.allclose(explain.slice_profile(row, tm), [0.3 / 0.8, 0.3 / 0.8, 0.2 / 0.8])


# ---------------------------------------------------------------------------------------------
# Meaning: the demo model looks at the moving object
# ---------------------------------------------------------------------------------------------


def test_cls_rollout_mass_on_the_moving_object():
    """Averaged over 50 fresh visits clips (the demo model's task), CLS rollout mass on the object's tubelets >= 3x
    their uniform share."""
    import minivivit
    from minivivit.data import make_visit_clip

    model = minivivit.load()
    tokens = TokenMap.for_config(model.config)
    ratios = []
    for i in range(50):
        clip = make_visit_clip(seed=77, index=i, num_frames=model.config.num_frames, size=model.config.image_hw[0])
        x = clip.frames.astype(np.float32) / 127.5 - 1.0  # VivitImageProcessor defaults at the model's size:
        x = ((x - 0.5) / 0.5).transpose(0, 3, 1, 2)[None]  # rescale with offset, then mean = std = 0.5
        maps = model(x, output_attentions="full").attentions
        v = explain.rollout_cls(maps)[0]  # [N]
        heat = tokens.to_grid(v) / v[1:].sum()  # [t, h, w], patch mass renormalised without CLS
        covered = explain.tubelet_coverage(clip.masks, tokens) > 0
        ratios.append(heat[covered].sum() / (covered.sum() / tokens.num_patches))
    assert np.mean(ratios) >= 3.0, f"mean ratio {np.mean(ratios):.2f} (per clip: {np.round(ratios, 2)})"
