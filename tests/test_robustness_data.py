"""Data files under attack and damage: a pickle's payload never runs, and broken image files raise a clear error
naming the file (or, when only bytes after the image data are cut, load exactly)."""

from __future__ import annotations

import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from diffcheck.data import load_cifar10, load_image_folder, read_cifar_batch


def _payloads(marker):
    """Objects whose unpickling would create ``marker``, through the callables an attacker would reach for."""
    import os
    import subprocess

    cmd = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').write('x')"

    def reducer(fn, *args):
        class P:
            def __reduce__(self):
                return (fn, args)
        return P()

    return {
        "builtins.exec": reducer(exec, code),
        "builtins.eval": reducer(eval, code),
        "os.system": reducer(os.system, cmd),
        "subprocess.Popen": reducer(subprocess.Popen, ["sh", "-c", cmd]),
        "builtins.open": reducer(open, str(marker), "w"),
        "numpy's runstring": reducer(__import__("numpy.testing._private.utils", fromlist=["runstring"]).runstring, code, {}),
    }


def _batch(payload, where: str):
    data = np.zeros((2, 3072), np.uint8)
    if where == "data":
        return {b"data": payload, b"labels": [0, 1]}
    if where == "labels":
        return {b"data": data, b"labels": [0, payload]}
    return {b"data": data, b"labels": [0, 1], b"batch_label": [[{"deep": payload}]]}  # nested anywhere


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("where", ["data", "labels", "nested"])
def test_no_payload_in_a_cifar_batch_ever_runs(tmp_path, protocol, where):
    marker = tmp_path / "ran"
    for name, payload in _payloads(marker).items():
        path = tmp_path / "data_batch_1"
        path.write_bytes(pickle.dumps(_batch(payload, where), protocol=protocol))
        with pytest.raises(ValueError, match=r"data_batch_1: refusing to load global") as err:
            read_cifar_batch(path)
        assert "Traceback" not in str(err.value)
        assert not marker.exists(), name


def test_no_payload_in_the_label_names_ever_runs(tmp_path):
    marker = tmp_path / "ran"
    batch = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}").write_bytes(batch)
    for name, payload in _payloads(marker).items():
        (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": [payload] * 10}, protocol=2))
        with pytest.raises(ValueError, match="batches.meta is not a CIFAR-10 batches.meta"):
            load_cifar10(tmp_path)
        assert not marker.exists(), name


def test_a_truncated_cifar_batch_is_named_at_every_cut(tmp_path):
    full = pickle.dumps({b"data": np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072),
                         b"labels": [3, 7]}, protocol=2)
    path = tmp_path / "data_batch_1"
    for cut in range(0, len(full), 97):
        path.write_bytes(full[:cut])
        with pytest.raises(ValueError, match="data_batch_1 is not a CIFAR-10 python batch"):
            read_cifar_batch(path)
    path.write_bytes(full)
    pixels, labels = read_cifar_batch(path)
    assert labels.tolist() == [3, 7] and pixels.shape == (2, 3, 32, 32)


# -- image folders --------------------------------------------------------------------------------------------


def _encoded(fmt: str) -> tuple[bytes, np.ndarray]:
    arr = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue(), arr


def _folder(tmp_path, name: str, data: bytes):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True, exist_ok=True)
    for old in (root / "a").iterdir():
        old.unlink()
    (root / "a" / name).write_bytes(data)
    return root


@pytest.mark.parametrize("fmt, name", [("PNG", "x.png"), ("JPEG", "x.jpg")])
def test_a_truncated_image_raises_naming_the_file_or_loads_exactly(tmp_path, fmt, name):
    data, _ = _encoded(fmt)
    whole = load_image_folder(_folder(tmp_path, name, data)).images
    refused = 0
    for cut in range(len(data)):
        root = _folder(tmp_path, name, data[:cut])
        try:
            images = load_image_folder(root).images
        except ValueError as err:
            assert f"{name} is not a readable image" in str(err)
            refused += 1
        else:  # only bytes after the pixel data were cut (PNG's final chunks): the image is whole
            assert np.array_equal(images.numpy(), whole.numpy()), cut
    assert refused >= len(data) * 0.6


def test_a_png_with_a_flipped_byte_raises_or_loads_exactly(tmp_path):
    # PNG checks its data (CRC per chunk, Adler-32 of the pixels): a flipped byte is refused or was in an unused field
    data, _ = _encoded("PNG")
    whole = load_image_folder(_folder(tmp_path, "x.png", data)).images
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        try:
            images = load_image_folder(_folder(tmp_path, "x.png", bytes(bad))).images
        except ValueError as err:
            assert "x.png is not a readable image" in str(err)
        else:
            assert np.array_equal(images.numpy(), whole.numpy()), i


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@pytest.mark.parametrize("content, why", [
    (b"", "empty"),
    (b"GIF89a not really", "another format's magic"),
    (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
     + _chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + _chunk(b"IEND", b""), "a decompression bomb's header"),
    ("text".encode() * 100, "a text file named .png"),
])
def test_a_file_that_is_not_an_image_is_named(tmp_path, content, why):
    with pytest.raises(ValueError, match="x.png is not a readable image"):
        load_image_folder(_folder(tmp_path, "x.png", content))
