"""Test configuration: numerics settings, hypothesis profiles, GPU skipping."""

import os

# Idle OpenMP threads must not spin: with another busy process on a 2-core machine,
# spinning makes small tensor operations orders of magnitude slower. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# -- pytest-xdist workers (pytest -n N): one thread each, since the workers already share the cores -----------
# Set before torch loads (and again below, in case a plugin loaded it first); an explicit OMP_NUM_THREADS wins.
_XDIST_THREADS = os.environ.get("OMP_NUM_THREADS", "1") if os.environ.get("PYTEST_XDIST_WORKER") else None
if _XDIST_THREADS is not None:
    os.environ["OMP_NUM_THREADS"] = _XDIST_THREADS
    os.environ.setdefault("MKL_NUM_THREADS", _XDIST_THREADS)

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

from diffcheck.testing.strategies import register_profiles  # noqa: E402

if _XDIST_THREADS is not None:
    torch.set_num_threads(int(_XDIST_THREADS))

register_profiles()
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# Tests that share a per-process cache (a trained toy model, a table of exact KLs) run on one xdist worker
# (pyproject's --dist loadgroup), so each cache is filled once per run; cached results equal fresh ones, so no
# result depends on the order or the worker.
_SHARED_CACHES = {
    "learned": ("[learned.", "[learned_", "test_learned_checks.py"),
    "video": ("[vdm.", "[ramvid.", "[mcvd.", "[video_", "tests/video/test_checks_fail.py"),
    "gan": ("[gan.", "[gan_", "test_gan_checks_fail.py"),
}


def pytest_itemcollected(item):
    group = next((g for g, keys in _SHARED_CACHES.items() if any(k in item.nodeid for k in keys)), None)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gen():
    """A fresh, seeded CPU generator per test."""
    return torch.Generator().manual_seed(1234)
