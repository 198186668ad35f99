"""Checks of DDIM's identities through the sampler itself (Song et al. 2020): Lemma 1, eta = 1 is DDPM, Proposition 1
(Euler on a VE probability flow) and encoding by the reversed ODE."""

from __future__ import annotations

from typing import Any

import torch

import toy

from .. import samplers as S
from ..exact import ExactModel
from ..process import VP, DiscreteVP, LinearVE, ddim_grid, iddpm_grid, uniform_grid
from ..testing import stats as st
from ..testing.gaussian_law import affine_law
from . import Outcome, check

ORDER = 62  # position in the tour: after the sampler orders

class _X0Oracle:
    """A model that knows each sample's x_0: it predicts the fixed x_0 whatever x_t is."""

    prediction = "x0"

    def __init__(self, x0: torch.Tensor) -> None:
        self.x0 = x0

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        return self.x0.expand_as(x)


@check(
    "ddim.lemma1",
    source="Song et al. 2020, Lemma 1 (Eq. 7)",
    claim="For every choice of sigma_t (eta), DDIM's non-Markovian process keeps the marginals N(sqrt(alpha_t) x0, (1 - alpha_t) I) at every step",
)
def ddim_lemma1(etas: tuple[float, ...] = (0.0, 0.3, 0.7, 1.0)) -> Outcome:
    p = DiscreteVP.linear()
    x0 = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    grid = ddim_grid(p, 20, "quadratic")
    worst = 0.0
    for eta in etas:
        oracle = _X0Oracle(x0)
        for k in range(1, len(grid)):
            sub = grid[: k + 1]
            a_T, s_T = float(p.alpha(grid[0])), float(p.sigma(grid[0]))
            mean, cov = affine_law(lambda x, nz: S.ddim(oracle, p, x, sub, eta=eta, generator=nz),
                                   a_T * x0[0], s_T**2 * torch.eye(2, dtype=torch.float64))
            a, s = float(p.alpha(sub[-1])), float(p.sigma(sub[-1]))
            err = float((mean - a * x0[0]).abs().max()) + float((cov - s * s * torch.eye(2, dtype=torch.float64)).abs().max())
            worst = max(worst, err)
    tol = 1e-12
    return Outcome(0.0, worst, tol, worst <= tol,
                   "exact Gaussian composition in float64 (the law of the chain is computed, not sampled)",
                   {"etas": list(etas)})


@check(
    "ddim.eta1_is_ddpm",
    source="Song et al. 2020, Sec. 4.1 (eta = 1 gives DDPM)",
    claim="DDIM with eta = 1 makes exactly the DDPM ancestral step (posterior mean at the predicted x0, variance beta_tilde) from the same noise",
)
def ddim_eta1_is_ddpm(n: int = 256, seed: int = 41) -> Outcome:
    p = DiscreteVP.linear()
    m = toy.anisotropic()
    worst = 0.0
    for grid in (iddpm_grid(p, [50]), ddim_grid(p, 30, "quadratic")):
        for pred in ("eps", "x0", "v", "score"):
            model = ExactModel(m, p, pred)
            x = model.law(grid[0]).sample(n, torch.Generator().manual_seed(seed))
            a = S.ddim(model, p, x, grid, eta=1.0, generator=torch.Generator().manual_seed(seed + 1))
            b = S.ddpm_ancestral(model, p, x, grid, generator=torch.Generator().manual_seed(seed + 1))
            worst = max(worst, float((a - b).abs().max() / (1.0 + b.abs().max())))
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol, "the same Gaussian step written two ways; float64 rounding over <= 50 steps")


@check(
    "ddim.prop1",
    source="Song et al. 2020, Proposition 1 (Eq. 13-14)",
    claim="DDIM (eta = 0) on a VP process is Euler's method on the probability-flow ODE of a VE process in x/alpha with noise level sigma/alpha",
)
def ddim_prop1(n: int = 256, seed: int = 42) -> Outcome:
    vp = DiscreteVP.cosine()
    m = toy.anisotropic()
    grid = ddim_grid(vp, 40, "quadratic")
    x = ExactModel(m, vp).law(grid[0]).sample(n, torch.Generator().manual_seed(seed))
    ddim_out = S.ddim(ExactModel(m, vp, "eps"), vp, x, grid)
    # the same path as a VE process with sigma(t') = sigma_max t' (t' = sigma/alpha / sigma_max), in x/alpha
    ve = LinearVE(sigma_max=float(vp.edm_sigma(grid[0])) * 1.000001)
    t_ve = vp.edm_sigma(grid) / ve.sigma_max
    euler_out = S.euler_ode(ExactModel(m, ve, "eps"), ve, x / vp.alpha(grid[0]), t_ve)
    worst = float((ddim_out / vp.alpha(grid[-1]) - euler_out).abs().max() / (1.0 + euler_out.abs().max()))
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol, "identical updates in exact arithmetic; float64 rounding over 40 steps")


@check(
    "ddim.inversion",
    source="Song et al. 2020, Sec. 4.3 and 5.4 (encoding by the ODE)",
    claim="DDIM inversion (encode x0 to x_T and decode back) reconstructs x0 with an error that shrinks at first order in the steps",
)
def ddim_inversion(steps: tuple[int, ...] = (25, 50, 100, 200), n: int = 64, seed: int = 43) -> Outcome:
    p = VP()
    m = toy.anisotropic()
    model = ExactModel(m, p, "eps")
    x0 = model.law(1e-3).sample(n, torch.Generator().manual_seed(seed))
    errs = []
    for k in steps:
        grid = uniform_grid(k, 1.0, 1e-3)
        x_T = S.ddim_invert(model, p, x0, grid)
        back = S.ddim(model, p, x_T, grid)
        errs.append(float((back - x0).norm(dim=-1).mean()))
    fit = st.fit_order(steps, errs)
    ok = all(b < a for a, b in zip(errs, errs[1:])) and abs(fit.order - 1.0) <= 0.15
    return Outcome({"order": 1.0, "monotone": True}, {"order": fit.order, "errors": errs}, 0.15, ok,
                   "round trip of two first-order solvers in opposite directions; log-log slope over 25-200 steps")
