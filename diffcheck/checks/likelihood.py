"""Checks of the probability-flow likelihood (Song et al. 2021, App. D.2): exact against the closed-form log-density,
and Hutchinson's divergence estimate unbiased."""

from __future__ import annotations

import torch

import toy

from ..exact import ExactModel
from ..likelihood import divergence, log_likelihood
from ..process import VE, VP
from ..reverse import ReverseSDE
from ..testing import stats as st
from . import Outcome, check

ORDER = 63  # position in the tour: after DDIM's identities

@check(
    "likelihood.exact",
    source="Song et al. 2021, App. D.2 (instantaneous change of variables)",
    claim="The probability-flow likelihood with the exact score equals the exact log-density, with an error that shrinks in proportion to the solver tolerance",
)
def likelihood_exact(n: int = 16, seed: int = 46) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m = toy.anisotropic()
    errs = {}
    ok = True
    for pname, p in (("VP", VP()), ("VE", VE(sigma_max=20.0))):
        model = ExactModel(m, p, "score")
        x = m.sample(n, gen)
        row = []
        for tol in (1e-5, 1e-7):
            L = log_likelihood(model, p, x, t_start=1e-5, rtol=tol, atol=tol, prior_log_prob=lambda z: model.log_prob(z, 1.0))
            row.append(float((L.log_prob - model.log_prob(x, 1e-5)).abs().max()))
        errs[pname] = row
        ok &= row[1] <= 1e-5 and row[1] <= row[0] / 10
    return Outcome({"error at tol 1e-7": "<= 1e-5", "shrinks with tol": "at least 10x for 100x"}, errs, 1e-5, ok,
                   "the global error of an adaptive RK45 solve is a modest multiple of its tolerance; 100x tighter must cut it >= 10x")


@check(
    "likelihood.hutchinson",
    source="Song et al. 2021, App. D.2; Grathwohl et al. 2019 (Hutchinson's estimator)",
    claim="Hutchinson's divergence estimate (Rademacher and Gaussian probes) is unbiased for the exact divergence of the probability-flow velocity",
)
def likelihood_hutchinson(draws: int = 4000, seed: int = 47, alpha: float = 1e-3) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m = toy.anisotropic()
    p = VP()
    model = ExactModel(m, p, "score")
    flow = ReverseSDE(p, model, probability_flow=True)  # the velocity the ODE samplers and the likelihood run
    x = model.law(0.3).sample(8, gen)
    v = lambda z: flow.drift(z, torch.tensor(0.3, dtype=torch.float64))
    exact, _ = divergence(v, x)
    fails, worst = [], 0.0
    for kind in ("rademacher", "gaussian"):
        est = []
        for _ in range(draws // 100):
            xs = x.repeat(100, 1)
            probe = torch.randn(xs.shape, generator=gen, dtype=xs.dtype)
            if kind == "rademacher":
                probe = torch.sign(probe)
            d, _ = divergence(v, xs, probe=probe)
            est.append(d.reshape(100, -1))
        est = torch.cat(est)
        test = st.zero_mean_test(est - exact, alpha=alpha / 2, name=f"Hutchinson ({kind})")
        worst = max(worst, test.statistic)
        if not test.passed:
            fails.append(str(test))
    return Outcome(0.0, worst, "|z| per point, Bonferroni", not fails,
                   f"{draws} probes per point, 8 points, alpha={alpha:g} split over two probe kinds", {"failures": fails})
