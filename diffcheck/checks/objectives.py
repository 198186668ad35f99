"""Checks of training objectives against their closed-form minima."""

from __future__ import annotations

from typing import Callable

import torch

import toy

from ..exact import ExactModel
from ..losses import denoising_score_matching
from ..param import as_model
from ..process import VE, VP
from ..testing import stats as st
from . import Outcome, check

ORDER = 50  # position in the tour


def _perturbation(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A smooth, bounded score perturbation delta(x) of size about 0.3/sigma."""
    return 0.3 / sigma * torch.stack([torch.sin(x[:, 1]), torch.cos(x[:, 0])], -1)


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
    failures, rows = [], {}
    for name, m, p, t in cases:
        exact = ExactModel(m, p, "score")
        model = exact if score_fn is None else score_fn(exact)
        a, s = float(p.alpha(t)), float(p.sigma(t))
        x0 = m.sample(n, gen)
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        xt = a * x0 + s * eps
        loss = denoising_score_matching(model, p, x0, t, eps=eps, weight="none")
        closed = a * a * exact.posterior_cov(xt, t).diagonal(dim1=-2, dim2=-1).sum(-1) / (2 * s**4)
        bumped = as_model(lambda x, tt: model(x, tt) + _perturbation(x, s), "score")
        loss_b = denoising_score_matching(bumped, p, x0, t, eps=eps, weight="none")
        rise = loss_b - loss - 0.5 * _perturbation(xt, s).pow(2).sum(-1)
        r1 = st.zero_mean_test(loss - closed, alpha=each, name=f"DSM minimum, {name}")
        r2 = st.zero_mean_test(rise, alpha=each, name=f"DSM rise, {name}")
        rows[name] = {"minimum (MC)": float(loss.mean()), "minimum (closed form)": float(closed.mean()),
                      "rise (MC)": float((loss_b - loss).mean()), "rise (closed form)": float(0.5 * _perturbation(xt, s).pow(2).sum(-1).mean())}
        failures += [str(r) for r in (r1, r2) if not r.passed]
    return Outcome("zero mean differences", f"{len(failures)} rejections", f"alpha={alpha:g} overall", not failures,
                   f"paired Monte Carlo differences with plug-in standard errors, n={n}, Bonferroni over {2 * len(cases)}",
                   {"failures": failures, **rows})
