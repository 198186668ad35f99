"""pytest-benchmark view of the exact score throughput (run: pytest benchmarks --benchmark-enable)."""

import pytest
import torch

from diffcheck.bench.scores import einsum_score, loop_score, mixture


@pytest.mark.parametrize("k", [8, 25])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("impl", ["dense", "reference", "einsum", "loop"])
def test_score_100k(benchmark, k, dtype, impl):
    m = mixture(k)
    law = m.noised(0.8, 0.5)
    base = law.to_mixture()
    x = (3 * torch.randn(100_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).to(dtype)
    fn = {"dense": lambda: law.score(x, engine="dense"), "reference": lambda: law.score(x, engine="reference"),
          "einsum": lambda: einsum_score(base, x), "loop": lambda: loop_score(base, x)}[impl]
    out = benchmark(fn)
    assert torch.allclose(out.double(), loop_score(base, x.double()), rtol=1e-3, atol=1e-3)
