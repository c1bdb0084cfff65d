"""Frame sampling: each strategy returns exactly the indices its documentation promises.

References are independent of minivivit: HF's doc-example sampler copied verbatim from
transformers' ViViT docstring, and a NumPy transcription of DMVR's `sample_linspace_sequence`
(float32 linspace, tiled sequence), which Scenic uses for evaluation.
"""

import warnings

import numpy as np
import pytest

from minivivit.video.sampling import ShortVideoWarning, hf_indices, sample_indices, scenic_indices, uniform_indices

# ---- references ------------------------------------------------------------------------------


def hf_doc_sample_frame_indices(clip_len, frame_sample_rate, seg_len):
    """Verbatim from transformers/models/vivit/modeling_vivit.py (VivitForVideoClassification example)."""
    converted_len = int(clip_len * frame_sample_rate)
    end_idx = np.random.randint(converted_len, seg_len)
    start_idx = end_idx - converted_len
    indices = np.linspace(start_idx, end_idx, num=clip_len)
    indices = np.clip(indices, start_idx, end_idx - 1).astype(np.int64)
    return indices


def dmvr_linspace(sequence_length, num_windows, num_steps, stride):
    """DMVR processors.sample_linspace_sequence, transcribed from TF to NumPy (float32 like tf.linspace)."""
    max_offset = max(0, sequence_length - num_steps * stride)
    if num_windows == 1:
        offsets = np.zeros(1, np.float32)
    else:
        delta = np.float32(max_offset) / np.float32(num_windows - 1)
        offsets = np.arange(num_windows, dtype=np.float32) * delta
        offsets[-1] = max_offset  # tf.linspace ends exactly at stop
    offsets = offsets.astype(np.int32)
    out = []
    for off in offsets:  # _sample_or_pad_sequence_indices: tile the sequence, then take a strided range
        num_repeats = int(np.ceil((num_steps * stride + off) / sequence_length))
        sel = np.tile(np.arange(sequence_length), num_repeats)
        out.append(sel[np.arange(off, off + num_steps * stride, stride)])
    return np.stack(out)


# ---- uniform ---------------------------------------------------------------------------------


def test_uniform_matches_the_documented_picture():
    np.testing.assert_array_equal(uniform_indices(10, 4), [1, 3, 6, 8])
    np.testing.assert_array_equal(uniform_indices(32, 32), np.arange(32))
    np.testing.assert_array_equal(uniform_indices(64, 16), np.arange(16) * 4 + 2)
    np.testing.assert_array_equal(uniform_indices(7, 1), [3])


@pytest.mark.parametrize("n,k", [(10, 4), (100, 16), (31, 32), (300, 32), (17, 5), (1000, 7)])
def test_uniform_takes_the_centre_of_each_segment(n, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortVideoWarning)
        idx = uniform_indices(n, k)
    assert idx.shape == (k,) and idx.dtype == np.int64
    centres = (np.arange(k) + 0.5) * n / k  # exact in float64 for these sizes
    np.testing.assert_array_equal(idx, np.floor(centres).astype(np.int64))
    assert idx.min() >= 0 and idx.max() < n


def test_uniform_short_video_repeats_frames_in_place_with_a_warning():
    with pytest.warns(ShortVideoWarning, match="repeats frames"):
        idx = uniform_indices(2, 4)
    np.testing.assert_array_equal(idx, [0, 0, 1, 1])
    with pytest.warns(ShortVideoWarning):
        np.testing.assert_array_equal(uniform_indices(1, 3), [0, 0, 0])


# ---- HF doc sampler ----------------------------------------------------------------------------


@pytest.mark.parametrize("n,clip_len,rate,seed", [(300, 32, 1, 0), (300, 32, 2, 0), (100, 16, 4, 7), (40, 8, 3, 123),
                                                  (33, 32, 1, 5), (10, 4, 2, 0)])
def test_hf_sampler_equals_the_hf_doc_example(n, clip_len, rate, seed):
    np.random.seed(seed)
    expected = hf_doc_sample_frame_indices(clip_len, rate, n)
    np.testing.assert_array_equal(hf_indices(n, clip_len, rate, seed=seed), expected)


def test_hf_sampler_seed_none_uses_the_global_generator_like_the_doc():
    np.random.seed(42)
    expected = hf_doc_sample_frame_indices(8, 2, 50)
    np.random.seed(42)
    np.testing.assert_array_equal(hf_indices(50, 8, 2, seed=None), expected)


def test_hf_sampler_docstring_picture():
    np.testing.assert_array_equal(hf_indices(10, 4, frame_sample_rate=2, seed=0), [0, 2, 5, 7])


def test_hf_sampler_short_video_starts_at_zero_and_loops():
    np.random.seed(0)
    with pytest.raises(ValueError):  # what the HF doc code does: randint(low >= high)
        hf_doc_sample_frame_indices(4, 2, 5)
    with pytest.warns(ShortVideoWarning, match="loops"):
        idx = hf_indices(5, 4, 2)
    np.testing.assert_array_equal(idx, [0, 2, 0, 2])  # window 0..7 = linspace(0, 8, 4) -> 0,2,5,7 -> mod 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly fits (HF's doc would raise): no loop, no warning
        np.testing.assert_array_equal(hf_indices(8, 4, 2), [0, 2, 5, 7])


# ---- Scenic evaluation ------------------------------------------------------------------------


def test_scenic_matches_the_documented_picture():
    np.testing.assert_array_equal(scenic_indices(10, 3, stride=2, num_clips=2), [[0, 2, 4], [4, 6, 8]])
    np.testing.assert_array_equal(scenic_indices(300, 32, stride=2, num_clips=4)[:, 0], [0, 78, 157, 236])  # 236 * c // 3
    np.testing.assert_array_equal(scenic_indices(50, 4), [[0, 1, 2, 3]])  # one clip starts at 0


@pytest.mark.parametrize("n", [1, 3, 7, 32, 63, 64, 65, 100, 301, 1000])
@pytest.mark.parametrize("k,stride,clips", [(32, 2, 4), (16, 1, 3), (8, 4, 1), (4, 3, 7), (1, 1, 5)])
def test_scenic_equals_dmvr_linspace_sampling(n, k, stride, clips):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortVideoWarning)
        ours = scenic_indices(n, k, stride, clips)
    assert ours.shape == (clips, k)
    np.testing.assert_array_equal(ours, dmvr_linspace(n, clips, k, stride))


def test_scenic_short_video_loops_with_a_warning():
    with pytest.warns(ShortVideoWarning, match="loop"):
        idx = scenic_indices(3, 4)
    np.testing.assert_array_equal(idx, [[0, 1, 2, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 9 frames, 5 at stride 2 -> 0..8: fits, no warning
        np.testing.assert_array_equal(scenic_indices(9, 5, stride=2), [[0, 2, 4, 6, 8]])


# ---- dispatch and bad arguments ----------------------------------------------------------------


def test_sample_indices_dispatches_and_rejects_unused_options():
    np.testing.assert_array_equal(sample_indices("uniform", 10, 4), [1, 3, 6, 8])
    np.testing.assert_array_equal(sample_indices("scenic", 10, 3, stride=2, num_clips=2), [[0, 2, 4], [4, 6, 8]])
    with pytest.raises(ValueError, match="does not use stride"):
        sample_indices("uniform", 10, 4, stride=2)
    with pytest.raises(ValueError, match="does not use frame_sample_rate"):
        sample_indices("scenic", 10, 4, frame_sample_rate=2)
    with pytest.raises(ValueError, match="unknown sampling strategy 'random'"):
        sample_indices("random", 10, 4)


@pytest.mark.parametrize("call,match", [
    (lambda: uniform_indices(0, 4), "0 frames"),
    (lambda: uniform_indices(10, 0), "num_frames must be >= 1"),
    (lambda: scenic_indices(10, 4, stride=0), "stride must be >= 1"),
    (lambda: hf_indices(10, 4, frame_sample_rate=0), "frame_sample_rate must be >= 1"),
    (lambda: uniform_indices(10.5, 4), "must be an int"),
])
def test_bad_counts_get_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
