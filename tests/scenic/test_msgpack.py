"""minivivit/convert/msgpack.py against the reference encoder (the `msgpack` package, dev extra): every type
code, nested, through the spec's boundaries; and flax's extension types, hand-built from the spec. < 5 s."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivivit.convert import msgpack as ours

mp = pytest.importorskip("msgpack")

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
           | st.text(max_size=70) | st.binary(max_size=300))
trees = st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5),
                     max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_decodes_what_the_reference_encoder_writes(obj):
    assert ours.unpack(mp.packb(obj, use_bin_type=True)) == obj


@pytest.mark.parametrize("n", [0, 15, 16, 255, 256, 65535, 65536])
def test_length_boundaries(n):
    for obj in ("x" * n, b"y" * n, list(range(min(n, 70000)))):
        assert ours.unpack(mp.packb(obj, use_bin_type=True)) == obj
    m = {str(i): i for i in range(min(n, 70000))}
    assert ours.unpack(mp.packb(m)) == m


def test_float32_and_int_widths():
    assert ours.unpack(mp.packb(1.5, use_single_float=True)) == 1.5
    for v in (-33, -129, -32769, -(2**31) - 1, 200, 70000, 2**33):
        assert ours.unpack(mp.packb(v)) == v


def ndarray_ext(a, code=1, dtype_name=None):
    payload = mp.packb([list(a.shape), dtype_name or a.dtype.name, a.tobytes("C")], use_bin_type=True)
    return mp.ExtType(code, payload)


def test_flax_ndarray_npscalar_complex_extensions():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    data = mp.packb({"a": ndarray_ext(a), "s": ndarray_ext(np.asarray(np.int64(7)), code=3),
                     "c": mp.ExtType(2, mp.packb((1.0, -2.0))), "i": ndarray_ext(np.arange(3, dtype=np.uint8))},
                    use_bin_type=True)
    got = ours.unpack(data)
    assert got["a"].dtype == np.float32 and np.array_equal(got["a"], a)
    assert got["s"] == 7 and got["c"] == complex(1, -2) and got["i"].tolist() == [0, 1, 2]


def test_bfloat16_is_the_top_half_of_a_float32():
    f = np.array([1.0, -2.5, 3.140625, 1e-3], np.float32)
    bits = (f.view(np.uint32) >> 16).astype(np.uint16)  # exact bf16 values for these (bf16-representable) numbers
    got = ours.unpack(mp.packb({"w": ndarray_ext(bits, dtype_name="bfloat16")}, use_bin_type=True))["w"]
    assert got.dtype == np.float32 and np.array_equal(got, (bits.astype(np.uint32) << 16).view(np.float32))
    assert got[0] == 1.0 and got[1] == -2.5 and got[2] == 3.140625


def test_refuses_what_flax_does_not_write():
    with pytest.raises(ours.MsgpackError, match="extension type 9"):
        ours.unpack(mp.packb(mp.ExtType(9, b"abc")))
    with pytest.raises(ours.MsgpackError, match="dtype 'object'"):
        ours.unpack(mp.packb(ndarray_ext(np.zeros(2, np.float32), dtype_name="object"), use_bin_type=True))
    with pytest.raises(ours.MsgpackError, match="needs 32 bytes"):
        ours.unpack(mp.packb(mp.ExtType(1, mp.packb([[8], "float32", b"\0" * 12], use_bin_type=True))))
    with pytest.raises(ours.MsgpackError, match="truncated"):
        ours.unpack(mp.packb({"a": "x" * 100})[:50])
    with pytest.raises(ours.MsgpackError, match="bytes left"):
        ours.unpack(mp.packb(1) + mp.packb(2))
    with pytest.raises(ours.MsgpackError, match="0xc1"):
        ours.unpack(b"\xc1")
    deep = b"\x91" * 100 + b"\x00"
    with pytest.raises(ours.MsgpackError, match="nesting deeper"):
        ours.unpack(deep)


def test_chunked_form_is_joined():
    a = np.arange(10, dtype=np.float64)
    chunked = {"__msgpack_chunked_array__": True, "shape": {"0": 2, "1": 5},
               "chunks": {"0": ndarray_ext(a[:4]), "1": ndarray_ext(a[4:])}}
    got = ours.unpack(mp.packb({"w": chunked}, use_bin_type=True))["w"]
    assert np.array_equal(got, a.reshape(2, 5))


def test_big_endian_payload_numbers():
    assert ours.unpack(b"\xcb" + struct.pack(">d", 2.25)) == 2.25
    assert ours.unpack(b"\xd1\xff\x00") == -256
