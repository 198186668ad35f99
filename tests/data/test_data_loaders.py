"""The loaders on files written here in their exact formats: CIFAR-10 python batches (as Python 2 wrote them and as
Python 3 does), image folders of PNG and JPEG, and scikit-learn's bundled digits."""

from __future__ import annotations

import pickle
import struct
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from diffcheck.data import ImageData, from_uint8, load_cifar10, load_digits, load_image_folder, read_cifar_batch


# --------------------------------------------------------------------------- CIFAR-10


def _str(b: bytes) -> bytes:
    """A Python 2 str: SHORT_BINSTRING below 256 bytes, else BINSTRING."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def python2_batch(data: np.ndarray, labels: list[int], label: bytes = b"training batch 1 of 5") -> bytes:
    """The bytes cPickle (protocol 2) wrote for a CIFAR-10 batch: str keys, numpy.core globals, raw array data."""
    n, d = data.shape
    dtype = (b"cnumpy\ndtype\n" + _str(b"u1") + b"K\x00K\x01\x87R"
             + b"(K\x03" + _str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"K\x00\x85" + _str(b"b") + b"\x87R"
             + b"(K\x01" + b"M" + struct.pack("<H", n) + b"M" + struct.pack("<H", d) + b"\x86" + dtype
             + b"\x89" + _str(data.tobytes()) + b"tb")
    items = (_str(b"batch_label") + _str(label)
             + _str(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
             + _str(b"data") + array
             + _str(b"filenames") + b"](" + b"".join(_str(f"img_{i}.png".encode()) for i in range(n)) + b"e")
    return b"\x80\x02}(" + items + b"u."


def cifar_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, size=n)]


def test_python2_cifar_batch_reads_with_channel_planes_in_order(tmp_path):
    data, labels = cifar_images(5, 0)
    path = tmp_path / "data_batch_1"
    path.write_bytes(python2_batch(data, labels))
    pixels, y = read_cifar_batch(path)
    assert pixels.shape == (5, 3, 32, 32) and pixels.dtype == np.uint8
    # red plane first, each a 32×32 image row by row: value (c, i, j) sits at c·1024 + 32·i + j
    for n in range(5):
        for c, i, j in [(0, 0, 0), (0, 0, 31), (1, 5, 7), (2, 31, 31), (2, 17, 3)]:
            assert pixels[n, c, i, j] == data[n, c * 1024 + 32 * i + j]
    assert y.tolist() == labels


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python3_pickles_of_the_same_dict_read_alike(tmp_path, protocol):
    data, labels = cifar_images(4, 1)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"a"] * 4},
                                  protocol=protocol))
    pixels, y = read_cifar_batch(path)
    np.testing.assert_array_equal(pixels.reshape(4, 3072), data)
    assert y.tolist() == labels


def test_load_cifar10_concatenates_the_five_batches_and_scales_to_unit_interval(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    parts = [cifar_images(3, seed) for seed in range(6)]
    for i, (data, labels) in enumerate(parts[:5], start=1):
        (root / f"data_batch_{i}").write_bytes(python2_batch(data, labels))
    (root / "test_batch").write_bytes(python2_batch(*parts[5], label=b"testing batch 1 of 1"))
    train = load_cifar10(tmp_path)  # the parent folder also works
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == torch.float32
    expected = np.concatenate([d for d, _ in parts[:5]]).reshape(15, 3, 32, 32).astype(np.float64) / 127.5 - 1.0
    np.testing.assert_allclose(train.images.numpy(), expected, rtol=0, atol=1e-7)
    assert train.labels.tolist() == sum((y for _, y in parts[:5]), [])
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    test = load_cifar10(root, train=False)
    assert len(test) == 3 and test.labels.tolist() == parts[5][1]
    # class names come from batches.meta when it is there
    names = [f"class{i}".encode() for i in range(10)]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    assert load_cifar10(root).classes == tuple(f"class{i}" for i in range(10))


def test_a_cifar_file_naming_any_other_callable_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load global (__builtin__|builtins)\.exec"):
        read_cifar_batch(path)
    assert not marker.exists()


def test_cifar_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="root"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path)
    bad = tmp_path / "bad"
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        read_cifar_batch(bad)
    bad.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(ValueError, match="labels"):
        read_cifar_batch(bad)
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        read_cifar_batch(bad)


# --------------------------------------------------------------------------- image folders


def test_image_folder_png_values_labels_and_classes(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"cat": [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(2)],
              "ant": [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)]}
    for name, imgs in arrays.items():
        (tmp_path / name).mkdir()
        for i, arr in enumerate(imgs):
            Image.fromarray(arr).save(tmp_path / name / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path)
    assert data.classes == ("ant", "cat")
    assert data.labels.tolist() == [0, 1, 1]
    expected = np.stack([arrays["ant"][0], *arrays["cat"]]).transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1.0
    assert data.images.shape == (3, 3, 5, 7)
    np.testing.assert_allclose(data.images.numpy(), expected, rtol=0, atol=1e-7)
    resized = load_image_folder(tmp_path, size=(4, 6))
    assert resized.images.shape == (3, 3, 4, 6) and resized.images.abs().max() <= 1


def test_image_folder_grayscale_and_jpeg(tmp_path):
    (tmp_path / "a").mkdir()
    gray = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
    Image.fromarray(gray, mode="L").save(tmp_path / "a" / "g.png")
    smooth = np.repeat(np.linspace(20, 230, 8, dtype=np.uint8)[None, :, None], 8, axis=0).repeat(3, axis=2)
    Image.fromarray(smooth).convert("L").save(tmp_path / "a" / "s.jpg", quality=100)
    data = load_image_folder(tmp_path, channels=1)
    assert data.images.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(data.images[0, 0].numpy(), gray / 127.5 - 1.0, rtol=0, atol=1e-7)
    # JPEG is lossy: a smooth ramp at quality 100 comes back within a few grey levels
    ramp = np.asarray(Image.fromarray(smooth).convert("L"), dtype=np.float64)
    assert np.abs(data.images[1, 0].numpy() - (ramp / 127.5 - 1.0)).max() < 4 / 127.5


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="root"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no class subfolders"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no .png"):
        load_image_folder(tmp_path)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a" / "0.png")
    Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save(tmp_path / "a" / "1.png")
    with pytest.raises(ValueError, match="size="):
        load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(tmp_path, channels=2)
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path, size=0)
    (tmp_path / "a" / "2.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image_folder(tmp_path, size=4)


# --------------------------------------------------------------------------- digits


def test_digits_are_sklearns_values_mapped_to_the_symmetric_interval():
    from sklearn.datasets import load_digits as sk

    bunch = sk()
    data = load_digits()
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == torch.float32
    np.testing.assert_allclose(data.images[:, 0].numpy(), bunch.images / 8.0 - 1.0, rtol=0, atol=1e-7)
    assert data.labels.tolist() == bunch.target.tolist()
    assert float(data.images.min()) == -1.0 and float(data.images.max()) == 1.0
    assert data.classes == tuple("0123456789")


def test_digits_at_16_pixels():
    small = load_digits().images
    nearest = load_digits(size=16).images
    assert torch.equal(nearest[..., ::2, ::2], small) and torch.equal(nearest[..., 1::2, 1::2], small)
    pad = load_digits(size=16, resize="pad").images
    assert torch.equal(pad[..., 4:12, 4:12], small)
    border = torch.ones(16, 16, dtype=torch.bool)
    border[4:12, 4:12] = False
    assert bool((pad[..., border] == -1).all())
    bilinear = load_digits(size=16, resize="bilinear").images
    assert bilinear.shape == (1797, 1, 16, 16) and bilinear.abs().max() <= 1
    # bilinear interpolation of a 2× enlargement keeps each image's mean away from the border effects: compare means
    torch.testing.assert_close(bilinear.mean((1, 2, 3)), small.mean((1, 2, 3)), rtol=0, atol=0.05)
    with pytest.raises(ValueError, match="size"):
        load_digits(size=12)
    with pytest.raises(ValueError, match="resize"):
        load_digits(size=16, resize="lanczos")


def test_digits_without_sklearn_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'diffcheck\[sklearn\]'"):
        load_digits()


def test_image_data_validates_itself():
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ImageData(x + 2, torch.zeros(2, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="float32"):
        ImageData(x.double(), torch.zeros(2, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="labels"):
        ImageData(x, torch.zeros(3, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="index classes"):
        ImageData(x, torch.ones(2, dtype=torch.int64), ("a",))
    with pytest.raises(ValueError, match="uint8"):
        from_uint8(np.zeros((1, 1, 2, 2), np.float32))
    assert torch.equal(from_uint8(np.array([0, 255], np.uint8).reshape(1, 1, 1, 2)), torch.tensor([[[[-1.0, 1.0]]]]))
