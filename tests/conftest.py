"""Test-only settings. GPU skipping and the hypothesis profile come from diffcheck's own pytest plugin."""

import os

# Idle OpenMP threads must not spin: with another busy process on a 2-core machine,
# spinning makes small tensor operations orders of magnitude slower. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Turn on the plugin's options: skip ``gpu`` tests without CUDA; the hypothesis profile ($HYPOTHESIS_PROFILE, else ci)."""
    config.option.diffcheck_skip_gpu = True
    if not getattr(config.option, "diffcheck_hypothesis_profile", None):
        config.option.diffcheck_hypothesis_profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")


@pytest.fixture
def gen():
    """A fresh, seeded CPU generator per test."""
    return torch.Generator().manual_seed(1234)
