"""Builders of every input the suite feeds minivivit: checkpoints (HF and minivivit), videos, images, arrays.

All are made here from nothing (or from the small fixtures in tests/fixtures), in the case's own folder.
Only public minivivit APIs that exist on every version the suite is run against are used.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HF_FIXTURE = ROOT / "tests" / "fixtures" / "hf448" / "classifier-gelu-t2x16x16"  # 2 layers, D=16, 3 labels, 4x32x32

# The tiny model of the suite: grid (2, 2, 2), N = 9 tokens.
TINY = dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=24, num_hidden_layers=2,
            num_attention_heads=3, intermediate_size=40, num_labels=5)


def tiny_hf_config(**changes) -> dict:
    """An HF config.json dict for the tiny model, with changes (a value of `...` deletes the key)."""
    d = {"model_type": "vivit", **TINY, "hidden_act": "gelu_fast", "layer_norm_eps": 1e-6, "qkv_bias": True}
    d.update(changes)
    return {k: v for k, v in d.items() if v is not ...}


def tiny_model(**changes):
    import minivivit
    from minivivit.weights import init_params

    config = minivivit.ViViTConfig(**{**TINY, **changes})
    return minivivit.Model(init_params(config, 0), config)


def minivivit_file(path, model=None, preprocessor_config=None, **changes) -> Path:
    from minivivit.weights import save

    model = model or tiny_model(**changes)
    save(path, model.params, model.config, preprocessor_config=preprocessor_config)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# HF checkpoints
# ---------------------------------------------------------------------------------------------


def hf_state() -> dict:
    """The fixture's HF state dict {v4 name: float32 array} (2 layers, D = 16)."""
    from safetensors.numpy import load_file

    return load_file(str(HF_FIXTURE / "model.safetensors"))


def hf_config() -> dict:
    return json.loads((HF_FIXTURE / "config.json").read_text())


def hf_dir(folder, *, config=None, state=None, fmt="safetensors", metadata=None) -> Path:
    """An HF model directory: config.json + model.safetensors (or pytorch_model.bin, written without torch)."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = hf_config() if config is None else config
    (folder / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg, indent=2))
    state = hf_state() if state is None else state
    if fmt == "safetensors":
        save_file(state, str(folder / "model.safetensors"), metadata=metadata or {"format": "pt"})
    elif fmt == "bin":
        from pickles import write_torch_zip

        write_torch_zip(folder / "pytorch_model.bin", state)
    else:
        raise ValueError(fmt)
    return folder


def copy_fixture(folder) -> Path:
    folder = Path(folder)
    shutil.copytree(HF_FIXTURE, folder)
    return folder


def safetensors_raw(path, tensors: dict, metadata=None):
    """A safetensors file written by hand: tensors {name: (dtype string, shape, raw bytes)}; any dtype name."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return Path(path)


def to_bfloat16_bytes(a: np.ndarray) -> bytes:
    """float32 -> bfloat16 bytes (round to nearest even), little-endian."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


# ---------------------------------------------------------------------------------------------
# Videos and images
# ---------------------------------------------------------------------------------------------


def frames(n=8, h=32, w=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def gif(path, n=8, h=32, w=32, seed=0) -> Path:
    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames(n, h, w, seed)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return Path(path)


@functools.cache
def _mp4_bytes(n=8, h=32, w=32) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames(n, h, w):
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def mp4(path, n=8, h=32, w=32) -> Path:
    Path(path).write_bytes(_mp4_bytes(n, h, w))
    return Path(path)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(path, width, height) -> Path:
    """A PNG whose header claims width x height (valid CRCs) with a few bytes of image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
                           + png_chunk(b"IEND", b""))
    return Path(path)


def gif_claiming(path, width, height) -> Path:
    """A GIF whose logical screen and first image claim width x height."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    Path(path).write_bytes(head + image + b";")
    return Path(path)


def npy_claiming(path, shape, dtype="|u1", payload=b"") -> Path:
    """An .npy file whose header claims `shape` but holds only `payload`."""
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    text = repr(header).encode()
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    Path(path).write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Zip archives written byte by byte (zip64 sizes, any flags and methods: bombs, encrypted, unsupported)
# ---------------------------------------------------------------------------------------------


def zip_member(name: str, data: bytes, *, method: int = 0, flags: int = 0, declared_size: int | None = None,
               crc: int | None = None, compressed: bytes | None = None) -> dict:
    """One member: data stored (method 0) or deflated (8), or `compressed` bytes as they are with any method."""
    if compressed is None:
        if method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            compressed = c.compress(data) + c.flush()
        else:
            compressed = data
    return {"name": name.encode(), "method": method, "flags": flags, "comp": compressed,
            "size": len(data) if declared_size is None else declared_size,
            "crc": zlib.crc32(data) & 0xFFFFFFFF if crc is None else crc}


def write_zip(path, members: list[dict]) -> Path:
    """A zip file with zip64 size fields for every member (so a member may claim more than 4 GiB)."""
    out, central = io.BytesIO(), []
    for m in members:
        offset = out.tell()
        extra = struct.pack("<HHQQ", 1, 16, m["size"], len(m["comp"]))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, m["flags"], m["method"], 0, 0x21, m["crc"],
                              0xFFFFFFFF, 0xFFFFFFFF, len(m["name"]), len(extra)) + m["name"] + extra + m["comp"])
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, m["flags"], m["method"], 0, 0x21,
                                   m["crc"], 0xFFFFFFFF, 0xFFFFFFFF, len(m["name"]), len(extra), 0, 0, 0, 0, offset)
                       + m["name"] + extra)
    cd_offset = out.tell()
    cd = b"".join(central)
    out.write(cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(cd), cd_offset, 0))
    Path(path).write_bytes(out.getvalue())
    return Path(path)


@functools.cache
def zeros_deflated(gib: int) -> bytes:
    """A raw deflate stream that inflates to `gib` GiB of zeros (about 1 MB per GiB): the zip bomb's payload."""
    block = b"\0" * (1 << 24)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    return first + again * (gib * 64 - 1) + c.flush()


def torch_members(state: dict, prefix="archive", pickle_bytes: bytes | None = None) -> list[dict]:
    """The members of a torch zip checkpoint for `state`, as zip_member dicts (to be altered by a case)."""
    from pickles import TORCH_STORAGE, contiguous_strides, state_dict_pickle

    entries, blobs = [], []
    for i, (name, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array)
        entries.append((name, TORCH_STORAGE[array.dtype.type], str(i), array.size, 0, array.shape,
                        contiguous_strides(array.shape)))
        blobs.append(zip_member(f"{prefix}/data/{i}", array.tobytes()))
    pkl = pickle_bytes if pickle_bytes is not None else state_dict_pickle(entries)
    return [zip_member(f"{prefix}/data.pkl", pkl), zip_member(f"{prefix}/byteorder", b"little")] + blobs
