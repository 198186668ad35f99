"""Test configuration: numerics settings, hypothesis profiles, GPU skipping."""

import os

# Idle OpenMP threads must not spin: with another busy process on a 2-core machine,
# spinning makes small tensor operations orders of magnitude slower. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

from diffcheck.testing.strategies import register_profiles  # noqa: E402

register_profiles()
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
