"""The dense evaluation path of the answer key agrees with the per-component path to 1e-12 of each quantity's
sensitivity to rounding, over random mixtures with far-apart, far-from-origin, very narrow and anisotropic components.

Tolerance: in float64 a quantity computed from x, mu_k, S_k, pi_k cannot be known better than its first-order
response to relative perturbations of about u = 1.1e-16 in those inputs. For log p(x) that response is at most
kappa = 1 + sum_k r_k (q_k + |h_k| + |g_k| (|x| + |mu_k|)), with q_k the Mahalanobis square, h_k the log weight
and log-determinant terms and g_k = P_k (mu_k - x) the component's score; for a responsibility-weighted average
sum_k r_k v_k (the score, the posterior mean) it is sum_k r_k (|dv_k| + |v_k - v| (1 + q_k + |h_k| + |g_k| (|x| +
|mu_k|))), |dv_k| the response of v_k itself. Both paths must agree to 1e-12 kappa, about 4500 u kappa: a wide
margin over rounding, yet a dense path that expands the quadratic form about one far origin fails it (shown below).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import toy
from toy import dense
from toy.evaluate import _tables

RTOL = 1e-12
LOG_2PI = math.log(2 * math.pi)


@st.composite
def hard_mixtures(draw):
    """Mixtures in D = 1..12 with K = 1..5 components: spread from 1 to 1e3, offset up to 1e3, std 1e-4 to 10, anisotropy up to 1e3."""
    d = draw(st.sampled_from([1, 2, 3, 5, 8, 12]))
    k = draw(st.integers(1, 5))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    spread = 10.0 ** draw(st.sampled_from([0, 1, 2, 3]))
    offset = draw(st.sampled_from([0.0, 30.0, 1e3])) * torch.randn(d, generator=g, dtype=torch.float64)
    means = offset + spread * (2 * torch.rand(k, d, generator=g, dtype=torch.float64) - 1)
    log_std = draw(st.floats(-4.0, 1.0))
    covs = []
    for _ in range(k):
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        stds = 10.0 ** (log_std + draw(st.floats(-3.0, 0.0)) * torch.rand(d, generator=g, dtype=torch.float64))
        covs.append((q * stds**2) @ q.T)
    w = torch.rand(k, generator=g, dtype=torch.float64) + 0.05
    labels = [int(v) for v in torch.randint(0, 2, (k,), generator=g)]
    alpha = draw(st.sampled_from([1.0, 0.999, 0.7, 0.2, 0.0]))
    sigma = draw(st.sampled_from([0.0, 1e-4, 1e-2, 0.3, 2.0])) if alpha > 0 else 0.5
    return toy.GaussianMixture(w / w.sum(), means, torch.stack(covs), labels), alpha, sigma


def _points(law, n: int = 200) -> torch.Tensor:
    """Draws of the law, draws pushed out by 3 of their own scale, and points around and far from the means."""
    g = torch.Generator().manual_seed(0)
    x = law.sample(n, g)
    sd = float(law.covariance().diagonal().max().sqrt())
    c = law.mean()
    return torch.cat([x, x + 3 * torch.randn(x.shape, generator=g, dtype=x.dtype) * x.std(0).clamp_min(1e-300),
                      c + 3 * sd * torch.randn(n // 2, law.dim, generator=g, dtype=x.dtype),
                      c + 50 * sd * torch.randn(n // 4, law.dim, generator=g, dtype=x.dtype)])


def _sensitivity(law, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """First-order responses (kappa above) of log p, the score and the posterior mean, per point; independent closed forms."""
    m = law.mixture
    a, s = float(law.alpha), float(law.sigma)
    d = m.dim
    cov = a * a * m.covs + s * s * torch.eye(d, dtype=torch.float64)
    prec = torch.linalg.inv(cov)
    mu = a * m.means
    diff = x[:, None, :] - mu  # (n, K, D)
    pd = torch.einsum("kde,nke->nkd", prec, diff)
    q = (diff * pd).sum(-1)
    logdet = torch.logdet(cov)
    h = torch.log(m.weights) - 0.5 * logdet - 0.5 * d * LOG_2PI
    h_abs = torch.log(m.weights).abs() + 0.5 * logdet.abs() + 0.5 * d * LOG_2PI
    r = torch.softmax(h - 0.5 * q, -1)
    size = x.norm(dim=-1)[:, None] + mu.norm(dim=-1)
    g = -pd
    per = 1.0 + q + h_abs + g.norm(dim=-1) * size  # response of log pi_k N_k
    out = {"log_prob": (r * per).sum(-1)}
    score = (r[..., None] * g).sum(1)
    p_norm = torch.linalg.matrix_norm(prec, ord=2)
    out["score"] = (r * (p_norm * size + (g - score[:, None]).norm(dim=-1) * per)).sum(-1)
    gain = a * torch.einsum("kde,kef->kdf", m.covs, prec)
    post = m.means + torch.einsum("kde,nke->nkd", gain, -diff)
    mean = (r[..., None] * post).sum(1)
    g_norm = torch.linalg.matrix_norm(gain, ord=2)
    out["posterior_mean"] = (r * (m.means.norm(dim=-1) + g_norm * size + (post - mean[:, None]).norm(dim=-1) * per)).sum(-1)
    return out


def _excess(law, x, kind: str, y=None) -> float:
    """Largest |dense - per-component| / (RTOL kappa) over the points (at most 1 passes)."""
    fn = getattr(law, kind)
    dense_out = fn(x, y, engine="dense") if y is not None else fn(x, engine="dense")
    ref = fn(x, y, engine="reference") if y is not None else fn(x, engine="reference")
    kappa = _sensitivity(law, x)[kind]
    diff = (dense_out - ref).abs()
    if diff.ndim > 1:
        diff = diff.norm(dim=-1)
    return float((diff / (RTOL * kappa)).max())


@given(hard_mixtures())
def test_dense_agrees_with_per_component_path(case):
    m, a, s = case
    law = m.noised(a, s)
    if _tables(m, a, s, torch.float64, torch.device("cpu")) is None:
        with pytest.raises(ValueError, match="engine='dense' does not apply"):
            law.score(torch.zeros(1, m.dim, dtype=torch.float64), engine="dense")
        return
    x = _points(law)
    for kind in ("log_prob", "score", "posterior_mean"):
        assert _excess(law, x, kind) <= 1.0, kind
    y = m.labels[torch.arange(x.shape[0]) % m.num_components]
    cond = law.given(int(y[0]))
    xs = x[y == y[0]]
    assert _excess(cond, xs, "score") <= 1.0
    assert torch.allclose(law.score(xs, y[y == y[0]], engine="dense"), cond.score(xs, engine="reference"),
                          rtol=0, atol=RTOL * float(_sensitivity(cond, xs)["score"].max()))
    r_dense = law.responsibilities(x, engine="dense")
    r_ref = law.responsibilities(x, engine="reference")
    per = _sensitivity(law, x)["log_prob"][:, None]
    assert bool(((r_dense - r_ref).abs() <= RTOL * 2 * per * r_ref + 1e-300).all())


def test_expanding_about_one_far_origin_fails_the_tolerance(monkeypatch):
    # narrow components (std 1e-3) 1e3 from the origin: the expanded quadratic form about 0 loses about 12 digits
    m = toy.GaussianMixture([0.5, 0.5], [[1000.0, 1000.0], [1000.01, 1000.0]], 1e-6)
    law = m.noised(1.0, 1e-4)
    x = _points(law)
    assert _excess(law, x, "score") <= 1.0  # grouped features about the components' centre
    monkeypatch.setattr(dense, "_groups", lambda mu, lam: [(np.zeros(mu.shape[1]), np.arange(mu.shape[0]))])
    monkeypatch.setattr(dense, "BITS", 200)  # and no point handed back to the per-component path
    m2 = toy.GaussianMixture(m.weights, m.means, m.covs)
    assert _excess(m2.noised(1.0, 1e-4), x, "score") > 1.0


def test_flagged_points_fall_back_and_the_rest_stay_dense():
    m = toy.GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], 1e-4)
    law = m.noised(1.0, 0.0)
    t = _tables(m, 1.0, 0.0, torch.float32, torch.device("cpu"))
    near = law.sample(100, torch.Generator().manual_seed(0)).float()
    far = torch.tensor([[1e4, 1e4], [-3e3, 0.0]])
    _, bad = dense.run(t, torch.cat([near, far]), "score")
    assert not bool(bad[:100].any()) and bool(bad[100:].all())
    s = law.score(torch.cat([near, far]))
    assert torch.isfinite(s).all()
    assert torch.allclose(s[100:].double(), law.score(far.double(), engine="reference"), rtol=1e-6)


def test_dense_applies_to_equal_per_sample_scales_only():
    m = toy.three_classes()
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    same = m.noised(torch.full((50,), 0.6, dtype=torch.float64), torch.full((50,), 0.8, dtype=torch.float64))
    assert torch.allclose(same.score(x, engine="dense"), m.noised(0.6, 0.8).score(x), rtol=1e-13, atol=1e-13)
    varied = m.noised(torch.linspace(0.1, 0.9, 50, dtype=torch.float64), torch.full((50,), 0.8, dtype=torch.float64))
    with pytest.raises(ValueError, match="alpha and sigma differ between points"):
        varied.score(x, engine="dense")
    assert torch.allclose(varied.score(x), varied.score(x, engine="reference"), rtol=0, atol=0)


def test_engine_argument_is_checked():
    with pytest.raises(ValueError, match="engine must be one of"):
        toy.two_modes().score(torch.zeros(1, 2), engine="fast")
