"""Jensen-Shannon divergences: the pointwise term against 50-digit arithmetic, quadrature against
independent integrals, Monte Carlo against quadrature (and failing on a wrong law), Wang et al. 2022, Theorem 1's 2D example."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hs
from scipy import integrate

import toy
from diffcheck.gan.divergence import (
    jsd_discrete,
    jsd_gaussian_shift,
    jsd_gaussian_shift_grad,
    jsd_monte_carlo,
    jsd_quadrature,
    jsd_term,
    point_mass_jsd,
    point_mass_jsd_grad,
)
from diffcheck.gan.noise import InstanceNoise
from diffcheck.testing import stats as st

LOG2 = math.log(2.0)


def _g_exact(r: float) -> float:
    with mpmath.workdps(60):
        r = mpmath.mpf(r)
        return float(mpmath.log(2) - mpmath.log1p(mpmath.exp(r)) + r / (1 + mpmath.exp(-r)))


@pytest.mark.parametrize("r", [1e-12, -3e-7, 1e-4, 0.0999, 0.1001, -0.5, 1.0, 7.0, -40.0, 800.0])
def test_jsd_term_to_full_relative_precision(r):
    exact = _g_exact(r)
    for got in (float(jsd_term(np.array(r))), float(jsd_term(torch.tensor(r, dtype=torch.float64)))):
        assert got == pytest.approx(exact, rel=3e-13, abs=0)


@given(hs.floats(-50, 50, allow_nan=False))
def test_jsd_term_is_even_nonnegative_and_bounded(r):
    g, h = float(jsd_term(np.array(r))), float(jsd_term(np.array(-r)))
    assert g == h and 0.0 <= g <= LOG2 + 1e-16


def test_jsd_discrete_from_the_definition():
    assert jsd_discrete([1.0, 0.0], [0.0, 1.0]) == pytest.approx(LOG2, abs=1e-16)
    assert jsd_discrete([0.5, 0.5], [0.5, 0.5]) == 0.0
    p, q = [0.2, 0.8], [0.6, 0.4]
    m = [0.4, 0.6]
    expected = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m)) + 0.5 * sum(b * math.log(b / c) for b, c in zip(q, m))
    assert jsd_discrete(p, q) == pytest.approx(expected, rel=1e-15)
    with pytest.raises(ValueError, match="probability"):
        jsd_discrete([0.5, 0.6], [0.5, 0.5])


def test_generic_quadrature_agrees_with_the_unit_gaussian_form():
    # N(0, 0.3^2) vs N(0.45, 0.3^2): delta = 1.5 in units of the standard deviation
    lp = lambda y: -0.5 * (y / 0.3) ** 2 - math.log(0.3 * math.sqrt(2 * math.pi))
    lq = lambda y: -0.5 * ((y - 0.45) / 0.3) ** 2 - math.log(0.3 * math.sqrt(2 * math.pi))
    v, err = jsd_quadrature(lp, lq, -6.0, 7.0, [0.0, 0.45])
    assert v == pytest.approx(jsd_gaussian_shift(1.5)[0], abs=1e-12) and err < 1e-10
    with pytest.raises(ValueError, match="hi"):
        jsd_quadrature(lp, lq, 1.0, 1.0)


def test_gaussian_shift_against_the_direct_integral_of_the_definition():
    # JSD = 1/2 int p log(2p/(p+q)) + 1/2 int q log(2q/(p+q)), integrated by scipy on the whole line
    for d in (0.3, 2.0, 6.0):
        def f(u):
            p = math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
            q = math.exp(-0.5 * (u - d) ** 2) / math.sqrt(2 * math.pi)
            out = 0.0
            if p > 0:
                out += 0.5 * p * math.log(2 * p / (p + q))
            if q > 0:
                out += 0.5 * q * math.log(2 * q / (p + q))
            return out

        direct = integrate.quad(f, -30, 30 + d, points=[0.0, d], limit=200, epsabs=1e-14)[0]
        assert jsd_gaussian_shift(d)[0] == pytest.approx(direct, abs=1e-11)


def test_gradient_is_the_derivative_and_positive():
    for d in (0.05, 0.7, 3.0, 9.0):
        g, err = jsd_gaussian_shift_grad(d)
        h = 1e-4
        fd = (jsd_gaussian_shift(d + h)[0] - jsd_gaussian_shift(d - h)[0]) / (2 * h)
        assert g > 0 and g == pytest.approx(fd, rel=1e-6, abs=1e-11)
    assert jsd_gaussian_shift_grad(0.0)[0] == pytest.approx(0.0, abs=1e-15)


def test_monte_carlo_agrees_with_quadrature_in_1d():
    a = toy.GaussianMixture([0.4, 0.6], [[-1.0], [1.5]], [0.2, 0.5])
    b = toy.GaussianMixture([0.7, 0.3], [[-0.5], [1.0]], [0.3, 0.3])
    noise = InstanceNoise(1000, noise_std=0.5)
    gen = torch.Generator().manual_seed(7)
    for t in (0, 500):
        la, lb = noise.law(a, t), noise.law(b, t)
        lf = lambda L: (lambda y: float(L.log_prob(torch.tensor([[y]], dtype=torch.float64))[0]))
        quad, _ = jsd_quadrature(lf(la), lf(lb), -12.0, 12.0, [-1.0, 0.0, 1.5])
        mc, se = jsd_monte_carlo(la, lb, 20000, gen)
        assert abs(mc - quad) <= st.normal_quantile(1 - 1e-3 / 4) * se


def test_monte_carlo_detects_a_wrong_law():
    # the estimator is of p vs q; evaluating it against a slightly different q must move it by many standard errors
    p = toy.GaussianMixture([1.0], [[0.0, 0.0]], 1.0)
    q = toy.GaussianMixture([1.0], [[0.3, 0.0]], 1.0)
    q_wrong = toy.GaussianMixture([1.0], [[0.45, 0.0]], 1.0)
    gen = torch.Generator().manual_seed(8)
    right, se = jsd_monte_carlo(p, q, 20000, gen)
    wrong, se2 = jsd_monte_carlo(p, q_wrong, 20000, gen)
    exact = jsd_gaussian_shift(0.3)[0]
    assert abs(right - exact) <= 4 * se
    assert abs(wrong - exact) > 10 * se2


def test_theorem1_example_in_two_dimensions_reduces_to_one():
    # Wang et al.'s example: x = (0, z) vs g(z) = (theta, z), z ~ U[0, 1]; noised, the second coordinate has the
    # same law under both, so the 2D JSD equals the 1D JSD of the first coordinate. Checked by 2D quadrature.
    noise = InstanceNoise(1000)
    t, theta = 400, 0.02
    a, s = (float(v) for v in noise.scales(t))
    phi = lambda u, m: math.exp(-0.5 * ((u - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    cdf = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))
    unif = lambda v: (cdf(v / s) - cdf((v - a) / s)) / a  # density of a z + s eps, z ~ U[0, 1]

    def f(v, u):
        p, q, w = phi(u, 0.0), phi(u, a * theta), unif(v)
        m = 0.5 * (p + q)
        out = 0.0
        if p > 0:
            out += 0.5 * p * math.log(p / m)
        if q > 0:
            out += 0.5 * q * math.log(q / m)
        return out * w

    lo, hi = -10 * s, a * theta + 10 * s
    two_d = integrate.dblquad(f, lo, hi, -10 * s, a + 10 * s, epsabs=1e-9, epsrel=1e-7)[0]
    assert two_d == pytest.approx(point_mass_jsd(theta, t, noise)[0], rel=1e-6)


def test_point_masses_at_t0_jump_and_have_no_derivative_at_zero():
    noise = InstanceNoise(1000)
    assert point_mass_jsd(1e-300, 0, noise)[0] == LOG2 and point_mass_jsd(0.0, 0, noise)[0] == 0.0
    assert point_mass_jsd(0.0, 5, noise)[0] == 0.0
    with pytest.raises(ValueError, match="jumps"):
        point_mass_jsd_grad(0.0, 0, noise)
    assert point_mass_jsd_grad(0.0, 5, noise)[0] == 0.0
    # odd in theta
    assert point_mass_jsd_grad(-0.01, 300, noise)[0] == pytest.approx(-point_mass_jsd_grad(0.01, 300, noise)[0], rel=1e-15)
    # as t -> 0 the smooth curves approach the jump: at fixed theta the JSD rises to log 2
    vals = [point_mass_jsd(0.01, t, noise)[0] for t in (1000, 300, 100, 30, 10, 1)]
    assert all(x < y for x, y in zip(vals, vals[1:])) and LOG2 - vals[-1] < 1e-12
