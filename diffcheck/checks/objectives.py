"""Checks of the training losses of ``diffcheck.losses`` against their closed-form minima.

Each objective is run on the exact model and on the exact model plus a smooth
perturbation delta, with the same draws (paired). The loss minus its closed-form
minimum given (t, x_t), and the rise minus its predicted value, must both have mean
zero: z-tests with plug-in standard errors, Bonferroni across the tests of a check.
"""

from __future__ import annotations

from typing import Callable

import torch

import toy

from ..exact import ExactModel
from ..losses import (
    denoising_score_matching,
    implicit_score_matching,
    ncsn_loss,
    score_sde_loss,
    simple_loss,
    sliced_score_matching,
    uniform_steps,
    uniform_times,
)
from ..param import function_model
from ..process import VE, VP, DiscreteVP, SubVP, discretize, geometric_sigmas
from ..testing import stats as st
from . import Outcome, check

ORDER = 50  # position in the tour


def _perturbation(x: torch.Tensor, sigma) -> torch.Tensor:
    """A smooth, bounded score perturbation delta(x) of size about 0.3/sigma (sigma scalar or per-sample)."""
    scale = 0.3 / torch.as_tensor(sigma, dtype=x.dtype)
    scale = scale[:, None] if scale.ndim == 1 else scale
    return scale * torch.stack([torch.sin(x[:, 1]), torch.cos(x[:, 0])], -1)


def _verdict(tests: list, rows: dict, n: int, alpha: float) -> Outcome:
    failures = [str(r) for r in tests if not r.passed]
    return Outcome("zero mean differences", f"{len(failures)} rejections", f"alpha={alpha:g} overall", not failures,
                   f"paired Monte Carlo differences with plug-in standard errors, n={n}, Bonferroni over {len(tests)}",
                   {"failures": failures, **rows})


@check(
    "dsm.minimizer",
    source="Vincent 2011; Song & Ermon 2019, Eq. 5-6",
    claim="The exact score minimises denoising score matching with minimum alpha^2 E tr Cov(x0|xt)/(2 sigma^4), and score + delta raises it by exactly E|delta|^2/2",
)
def dsm_minimizer(n: int = 20000, seed: int = 30, alpha: float = 1e-3, score_fn: Callable | None = None) -> Outcome:
    """``score_fn(exact)`` returns a replacement score model (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    cases = [
        ("anisotropic VP t=0.3", toy.anisotropic(), VP(), 0.3),
        ("anisotropic VP t=0.7", toy.anisotropic(), VP(), 0.7),
        ("two_modes VE t=0.5", toy.two_modes(), VE(sigma_max=20.0), 0.5),
        ("narrow VP t=0.05", toy.narrow(), VP(), 0.05),
    ]
    each = alpha / (2 * len(cases))
    tests, rows = [], {}
    for name, m, p, t in cases:
        exact = ExactModel(m, p, "score")
        model = exact if score_fn is None else score_fn(exact)
        a, s = float(p.alpha(t)), float(p.sigma(t))
        x0 = m.sample(n, gen)
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        xt = a * x0 + s * eps
        loss = denoising_score_matching(model, p, x0, t, eps=eps, weight="none")
        closed = a * a * exact.posterior_cov(xt, t).diagonal(dim1=-2, dim2=-1).sum(-1) / (2 * s**4)
        bumped = function_model(lambda x, tt: model(x, tt) + _perturbation(x, s), "score")
        loss_b = denoising_score_matching(bumped, p, x0, t, eps=eps, weight="none")
        rise = loss_b - loss - 0.5 * _perturbation(xt, s).pow(2).sum(-1)
        tests.append(st.zero_mean_test(loss - closed, alpha=each, name=f"DSM minimum, {name}"))
        tests.append(st.zero_mean_test(rise, alpha=each, name=f"DSM rise, {name}"))
        rows[name] = {"minimum (MC)": float(loss.mean()), "minimum (closed form)": float(closed.mean()),
                      "rise (MC)": float((loss_b - loss).mean()), "rise (closed form)": float(0.5 * _perturbation(xt, s).pow(2).sum(-1).mean())}
    return _verdict(tests, rows, n, alpha)


@check(
    "ddpm.simple_minimizer",
    source="Ho et al. 2020, Eq. 14 and Algorithm 1",
    claim="At uniform steps the exact eps minimises L_simple with minimum E (alpha/sigma)^2 tr Cov(x0|x_t), and eps + delta raises it by exactly E|delta|^2",
)
def simple_minimizer(n: int = 20000, seed: int = 31, alpha: float = 1e-3, eps_fn: Callable | None = None) -> Outcome:
    """``eps_fn(exact)`` returns a replacement eps model (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    cases = [
        ("anisotropic, linear T=1000", toy.anisotropic(), DiscreteVP.linear()),
        ("narrow, cosine T=1000", toy.narrow(), DiscreteVP.cosine()),
    ]
    each = alpha / (2 * len(cases))
    tests, rows = [], {}
    for name, m, p in cases:
        sched = discretize(p, torch.arange(p.T + 1, dtype=torch.float64) / p.T)
        exact = ExactModel(m, p, "eps")
        model = exact if eps_fn is None else eps_fn(exact)
        steps = uniform_steps(p.T, n, gen)
        x0 = m.sample(n, gen)
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        t, a, s = sched.t[steps], sched.alpha[steps], sched.sigma[steps]
        xt = a[:, None] * x0 + s[:, None] * eps
        loss = simple_loss(model, sched, x0, steps=steps, eps=eps)
        closed = (a / s) ** 2 * exact.posterior_cov(xt, t).diagonal(dim1=-2, dim2=-1).sum(-1)
        delta = lambda x: _perturbation(x, 1.0)
        bumped = function_model(lambda x, tt: model(x, tt) + delta(x), "eps")
        loss_b = simple_loss(bumped, sched, x0, steps=steps, eps=eps)
        rise = loss_b - loss - delta(xt).pow(2).sum(-1)
        tests.append(st.zero_mean_test(loss - closed, alpha=each, name=f"L_simple minimum, {name}"))
        tests.append(st.zero_mean_test(rise, alpha=each, name=f"L_simple rise, {name}"))
        rows[name] = {"minimum (MC)": float(loss.mean()), "minimum (closed form)": float(closed.mean()),
                      "rise (MC)": float((loss_b - loss).mean()), "rise (closed form)": float(delta(xt).pow(2).sum(-1).mean())}
    return _verdict(tests, rows, n, alpha)


def _score_cases(gen: torch.Generator, n: int, score_fn: Callable | None, cases, loss_fn, weight_fn) -> tuple[list, dict]:
    """Minimum and rise tests of a weighted DSM objective; ``loss_fn(model, p, x0, eps, t)``, ``weight_fn(p, t)``."""
    tests, rows = [], {}
    for name, m, p, draw_t in cases:
        exact = ExactModel(m, p, "score")
        model = exact if score_fn is None else score_fn(exact)
        t = draw_t(n)
        x0 = m.sample(n, gen)
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        a, s, lam = p.alpha(t), p.sigma(t), weight_fn(p, t)
        xt = a[:, None] * x0 + s[:, None] * eps
        loss = loss_fn(model, p, x0, eps, t)
        closed = lam * a**2 * exact.posterior_cov(xt, t).diagonal(dim1=-2, dim2=-1).sum(-1) / (2 * s**4)
        bumped = function_model(lambda x, tt: model(x, tt) + _perturbation(x, p.sigma(tt)), "score")
        loss_b = loss_fn(bumped, p, x0, eps, t)
        predicted = 0.5 * lam * _perturbation(xt, s).pow(2).sum(-1)
        tests.append(("minimum", name, loss - closed))
        tests.append(("rise", name, loss_b - loss - predicted))
        rows[name] = {"minimum (MC)": float(loss.mean()), "minimum (closed form)": float(closed.mean()),
                      "rise (MC)": float((loss_b - loss).mean()), "rise (closed form)": float(predicted.mean())}
    return tests, rows


@check(
    "ncsn.ladder_minimizer",
    source="Song & Ermon 2019, Eq. 5-6 and App. B.1",
    claim="Over NCSN's sigma ladder with lambda(sigma) = sigma^2 the exact score minimises the loss, with minimum E tr Cov(x0|x~)/(2 sigma^2), and score + delta raises it by E sigma^2 |delta|^2/2",
)
def ladder_minimizer(n: int = 20000, seed: int = 32, alpha: float = 1e-3, score_fn: Callable | None = None) -> Outcome:
    """``score_fn(exact)`` returns a replacement score model (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    ve = VE(sigma_min=0.01, sigma_max=50.0)
    sigmas = geometric_sigmas(20.0, 1.0, 10)  # the toy's ladder (Song & Ermon 2019, App. B.1)
    times = ve.t_of_edm_sigma(sigmas)
    draw = lambda k: times[torch.randint(0, sigmas.numel(), (k,), generator=gen)]

    def loss_fn(model, p, x0, eps, t):
        index = (t[:, None] == times[None, :]).to(torch.int64).argmax(-1)
        return ncsn_loss(model, p, x0, sigmas, eps=eps, index=index)

    cases = [("two_modes, sigma 20 -> 1 (L=10)", toy.two_modes(), ve, draw),
             ("anisotropic, sigma 20 -> 1 (L=10)", toy.anisotropic(), ve, draw)]
    raw, rows = _score_cases(gen, n, score_fn, cases, loss_fn, lambda p, t: p.sigma(t) ** 2)
    each = alpha / len(raw)
    tests = [st.zero_mean_test(v, alpha=each, name=f"NCSN {kind}, {name}") for kind, name, v in raw]
    return _verdict(tests, rows, n, alpha)


@check(
    "sde.loss_minimizer",
    source="Song et al. 2021, Eq. 7; Song et al. 2021b, Thm. 1 (likelihood weighting)",
    claim="With t ~ U(t_eps, 1) and lambda = sigma^2 or g^2 the exact score minimises the continuous-time loss, with minimum E lambda alpha^2 tr Cov(x0|x_t)/(2 sigma^4), and score + delta raises it by E lambda |delta|^2/2",
)
def sde_loss_minimizer(n: int = 20000, seed: int = 33, alpha: float = 1e-3, score_fn: Callable | None = None) -> Outcome:
    """``score_fn(exact)`` returns a replacement score model (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    t_min = 1e-2  # the likelihood weight g^2/sigma^2 grows like 1/t: a floor keeps the loss's variance moderate
    draw = lambda k: uniform_times(k, gen, t_min, 1.0)
    cases = [
        ("anisotropic VP", toy.anisotropic(), VP(), draw, "sigma2"),
        ("anisotropic VP", toy.anisotropic(), VP(), draw, "likelihood"),
        ("narrow sub-VP", toy.narrow(), SubVP(), draw, "likelihood"),
        ("two_modes VE", toy.two_modes(), VE(sigma_max=20.0), draw, "sigma2"),
    ]
    raw, rows = [], {}
    for name, m, p, d, weighting in cases:
        loss_fn = lambda model, p, x0, eps, t, w=weighting: score_sde_loss(model, p, x0, weighting=w, t=t, eps=eps)
        weight_fn = (lambda p, t: p.sigma(t) ** 2) if weighting == "sigma2" else (lambda p, t: p.g2(t))
        r, rw = _score_cases(gen, n, score_fn, [(f"{name}, {weighting}", m, p, d)], loss_fn, weight_fn)
        raw += r
        rows.update(rw)
    each = alpha / len(raw)
    tests = [st.zero_mean_test(v, alpha=each, name=f"score SDE loss {kind}, {name}") for kind, name, v in raw]
    return _verdict(tests, rows, n, alpha)


@check(
    "score_matching.sliced_implicit",
    source="Hyvarinen 2005, Thm. 1; Song et al. 2019 (sliced score matching); Song & Ermon 2019, Fig. 2",
    claim="Implicit and sliced score matching equal explicit score matching less 1/2 E|grad log p|^2: at the exact score ISM = -1/2 E|s|^2 and SSM = ISM, and score + delta raises both by E|delta|^2/2",
)
def sliced_implicit(n: int = 20000, seed: int = 34, alpha: float = 1e-3, score_fn: Callable | None = None) -> Outcome:
    """``score_fn(exact)`` returns a replacement score model (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    cases = [
        ("two_modes data (t=0)", toy.two_modes(), VP(), 0.0, "gaussian"),
        ("anisotropic VP t=0.3", toy.anisotropic(), VP(), 0.3, "rademacher"),
    ]
    tests_raw, rows = [], {}
    for name, m, p, t, dist in cases:
        exact = ExactModel(m, p, "score")
        model = exact if score_fn is None else score_fn(exact)
        s = max(float(p.sigma(t)), 1.0)
        delta = lambda x: _perturbation(x, s)
        bumped = function_model(lambda x, tt: model(x, tt) + delta(x), "score")
        x0 = m.sample(n, gen)
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        xt = float(p.alpha(t)) * x0 + float(p.sigma(t)) * eps
        seed_v = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        ssm = lambda mod: sliced_score_matching(mod, p, x0, t, torch.Generator().manual_seed(seed_v), distribution=dist, eps=eps).detach()
        ism = implicit_score_matching(model, p, x0, t, eps=eps).detach()
        ism_b = implicit_score_matching(bumped, p, x0, t, eps=eps).detach()
        ssm0, ssm_b = ssm(model), ssm(bumped)
        score_sq = exact.score(xt, t).pow(2).sum(-1)
        half = 0.5 * delta(xt).pow(2).sum(-1)
        tests_raw += [("ISM minimum = -1/2 E|s|^2", name, ism + 0.5 * score_sq),
                      ("SSM = ISM", name, ssm0 - ism),
                      ("ISM rise", name, ism_b - ism - half),
                      ("SSM rise", name, ssm_b - ssm0 - half)]
        rows[name] = {"ISM at exact score": float(ism.mean()), "-1/2 E|s|^2": float(-0.5 * score_sq.mean()),
                      "SSM at exact score": float(ssm0.mean()), "ISM rise": float((ism_b - ism).mean()),
                      "SSM rise": float((ssm_b - ssm0).mean()), "E|delta|^2/2": float(half.mean())}
    each = alpha / len(tests_raw)
    tests = [st.zero_mean_test(v, alpha=each, name=f"{kind}, {name}") for kind, name, v in tests_raw]
    return _verdict(tests, rows, n, alpha)
