"""Weights in other dtypes, written by torch itself: bfloat16 is read exactly (as torch's .float()), float8 is
refused by name (not as hostile), an expanded (zero-stride) tensor loads, NaN is refused naming the tensor.
About 3 s; needs torch."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from minivivit.convert.torch_pickle import UnsafePickleError, UnsupportedTensorError, load_torch_state_dict  # noqa: E402
from minivivit.fileio import read_safetensors  # noqa: E402
from minivivit.weights import check_tensors  # noqa: E402


def test_bfloat16_safetensors_equal_torch_float(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    state = {"a": torch.randn(7, 5, generator=g).to(torch.bfloat16), "b": torch.tensor([1e30, -3.5, 0.0]).bfloat16(),
             "c": torch.randn(4, generator=g)}
    save_file(state, str(tmp_path / "m.safetensors"))
    with pytest.warns(UserWarning, match=r"2 bfloat16 tensor\(s\) upcast to float32"):
        ours, _ = read_safetensors(tmp_path / "m.safetensors")
    for k, t in state.items():
        assert ours[k].dtype == np.float32 and ours[k].shape == tuple(t.shape)
        assert np.array_equal(ours[k], t.float().numpy()), k


def test_bfloat16_and_expanded_tensors_from_torch_save(tmp_path):
    state = {"w": torch.randn(3, 4).bfloat16(), "bias": torch.zeros(1).expand(1000), "h": torch.randn(2, 3).half()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    ours = load_torch_state_dict(tmp_path / "pytorch_model.bin")
    for k, t in state.items():
        assert np.array_equal(ours[k], t.float().numpy() if k == "w" else t.numpy()), k


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_float8_torch_save_is_refused_by_name_not_as_hostile(tmp_path, dtype):
    torch.save({"w": torch.zeros(4, dtype=getattr(torch, dtype))}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UnsupportedTensorError) as e:
        load_torch_state_dict(tmp_path / "pytorch_model.bin")
    assert not isinstance(e.value, UnsafePickleError)
    msg = str(e.value)
    assert f"torch.{dtype}" in msg and "pytorch_model.bin" in msg and "run code" not in msg and "float()" in msg


def test_complex_torch_save_is_refused_by_name(tmp_path):
    torch.save({"w": torch.zeros(4, dtype=torch.complex64)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UnsupportedTensorError, match="complex"):
        load_torch_state_dict(tmp_path / "pytorch_model.bin")


def test_non_finite_and_integer_weights(monkeypatch):
    ok = {"a": np.ones(3, np.float32)}
    check_tensors(ok)
    with pytest.raises(ValueError, match=r"'b' \(1 NaN, 1 inf of 3\).*MINIVIVIT_ALLOW_NONFINITE_WEIGHTS=1"):
        check_tensors({**ok, "b": np.array([np.nan, np.inf, 0], np.float32)})
    with pytest.raises(ValueError, match=r"'i' \(int64\)"):
        check_tensors({**ok, "i": np.ones(3, np.int64)})
    monkeypatch.setenv("MINIVIVIT_ALLOW_NONFINITE_WEIGHTS", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_tensors({"b": np.array([np.nan], np.float32)})
    assert any("Loaded anyway" in str(w.message) for w in caught)
