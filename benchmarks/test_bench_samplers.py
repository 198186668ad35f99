"""pytest-benchmark view of sampler throughput on the exact model (run: pytest benchmarks --benchmark-enable)."""

import pytest
import torch

import toy
from diffcheck.exact import ExactModel
from diffcheck.bench.samplers import configurations

CONFIGS = {name: (p, grid, fn) for name, p, grid, fn in configurations(steps_scale=0.1)}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sampler_throughput(benchmark, name):
    p, grid, fn = CONFIGS[name]
    model = ExactModel(toy.ring(), p, "eps")
    x = model.law(grid[0]).sample(512, torch.Generator().manual_seed(0))
    out = benchmark(lambda: fn(model, p, x, grid))
    assert out.shape == x.shape and torch.isfinite(out).all()
