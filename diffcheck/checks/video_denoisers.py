"""Checks of the exact denoisers of conditional video diffusion: RaMViD's masked denoiser and MCVD's Bayes-optimal predictor."""

from __future__ import annotations

import math
from typing import Any

import torch

import toy
from toy.gaussian import complement

from .. import samplers as S
from ..exact import ExactModel
from ..process import DiscreteVP
from ..video import STATES, ExactConditional, MCVDExact, RaMViDExact, conditioning, mcvd_loss, ramvid_sample
from . import Outcome, check
from .video import BLOCKS, FRAME_DIM, ar1, ar1_mixture, ddpm_process, samplers

ORDER = 91  # position in the tour: after VDM (video, 90)


# -- RaMViD ------------------------------------------------------------------------------------------------------------


class _ScatterNoise:
    """Noise drawn for the free coordinates only, scattered into whole videos (zeros on the conditioning frames)."""

    def __init__(self, seed: int, free: torch.Tensor, dim: int, whole: bool) -> None:
        self.gen, self.free, self.dim, self.whole = torch.Generator().manual_seed(seed), free, dim, whole

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        z = torch.randn(like.shape[0], self.free.numel(), generator=self.gen, dtype=like.dtype)
        if not self.whole:
            return z.reshape(like.shape)
        out = torch.zeros(like.shape[0], self.dim, dtype=like.dtype)
        out[:, self.free] = z
        return out.reshape(like.shape)


@check(
    "ramvid.exact_denoiser",
    source="Höppe et al. 2022 (Tobi-r9/RaMViD gaussian_diffusion.py: training_losses, p_sample_loop)",
    claim="The Bayes-optimal RaMViD denoiser is E[eps^b | z^b_t, x^a] (= the exact model of the conditional mixture), and RaMViD's reset sampler with it gives the exact conditional sampler's samples, draw for draw, for DDPM and DDIM",
)
def ramvid_exact_denoiser(n: int = 64, seed: int = 902, denoiser: Any = None) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    p, m = ddpm_process(), ar1_mixture()
    ram = RaMViDExact(m, p, m.frames) if denoiser is None else denoiser
    worst_pred, worst_path = 0.0, 0.0
    for frames in ([0, 1], [0, 5], [1, 2, 4]):
        known = m.frame_coords(frames)
        mask = torch.zeros(m.frames, dtype=torch.bool)
        mask[frames] = True
        video = m.sample(n, gen)
        cond = m.condition(known, video[0, known])
        ec = ExactConditional(m, p, known, "eps")
        for t in (0.01, 0.3, 0.9):
            z = p.marginal(cond, t).sample(n, gen)
            x = video.clone()
            x[:, ec.free] = z
            x[:, known] = video[0, known]
            got = ram(x, t, mask=mask[None].expand(n, -1))
            want = ExactModel(cond, p, "eps")(z, t)
            worst_pred = max(worst_pred, float((got[:, ec.free] - want).abs().max()), float(got[:, known].abs().max()))
        x_T = p.prior_sample((n, m.dim), gen)
        clean = torch.zeros(n, m.dim, dtype=torch.float64)
        clean[:, known] = video[:, known]
        shape = (n, m.frames, m.frame_dim)
        for full, step, grid in samplers(p).values():
            ddpm = step is S.ancestral_step
            a = ramvid_sample(ram, p, clean.reshape(shape), mask, x_T.reshape(shape), grid, step=step,
                              generator=_ScatterNoise(seed, ec.free, m.dim, True) if ddpm else None).reshape(n, -1)
            b = full(ec, x_T[:, ec.free], _ScatterNoise(seed, ec.free, m.dim, False), cond=video[:, known])
            worst_path = max(worst_path, float((a[:, ec.free] - b).abs().max()), float((a[:, known] - video[:, known]).abs().max()))
    tol = 1e-10
    return Outcome({"denoiser vs exact conditional model": 0.0, "reset sampler vs exact conditional sampler": 0.0},
                   {"denoiser vs exact conditional model": worst_pred, "reset sampler vs exact conditional sampler": worst_path},
                   tol, worst_pred <= tol and worst_path <= tol,
                   "float64; the conditional model built by toy's conditioning of the mixture (an independent route); same noise draws",
                   {"masks (conditioning frames)": "[0, 1], [0, 5], [1, 2, 4] of 6", "toy": "mixture of two AR(1) videos"})


# -- MCVD --------------------------------------------------------------------------------------------------------------


def _bayes_risk(m: toy.GaussianMixture, p: DiscreteVP, current: torch.Tensor, known: torch.Tensor) -> float:
    """E_t ½ E||eps − E[eps | z_t, kept]||² for a single Gaussian: ½ sum_j alpha² lambda_j / (alpha² lambda_j + sigma²), t ~ U{1..T}."""
    mean, cov = m.means[0], m.covs[0]
    keep = torch.cat([current, known])
    sub = cov[keep][:, keep]
    if known.numel():
        _, c, _ = toy.condition_gaussian(mean[keep], sub, torch.arange(current.numel(), keep.numel()), mean[known])
    else:
        c = sub
    lam = torch.linalg.eigvalsh(c)
    t = p.times(torch.arange(1, p.T + 1))
    a2, s2 = p.alpha(t)[:, None] ** 2, p.sigma(t)[:, None] ** 2
    return float((0.5 * (a2 * lam / (a2 * lam + s2)).sum(1)).mean())


@check(
    "mcvd.bayes_optimal",
    source="Voleti et al. 2022, Sec. 3 (masked conditional training)",
    claim="In every mask state the Bayes-optimal MCVD predictor is the exact conditional eps of the current block given the kept blocks: it equals the exact model of toy's conditional mixture, and its loss equals the closed-form Bayes risk",
)
def mcvd_bayes_optimal(n: int = 20000, seed: int = 903, k_se: float = 4.0, model: Any = None) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    p = ddpm_process()
    fs = FRAME_DIM
    coords = BLOCKS.coords(fs)
    # (1) deterministic: the exact predictor against toy's conditioning, on a mixture window
    mm = ar1_mixture(BLOCKS.total)
    exact_m = MCVDExact(mm, p, BLOCKS)
    worst = 0.0
    w = mm.sample(4, gen).reshape(4, BLOCKS.total, fs)
    past, _, fut = BLOCKS.split(w)
    for name, st_ in STATES.items():
        known = torch.cat([coords["past"] if st_[0] else coords["past"][:0], coords["future"] if st_[1] else coords["future"][:0]])
        state = torch.tensor([st_]).expand(8, 2)
        cond = conditioning(BLOCKS, past, fut, torch.tensor([st_]).expand(4, 2))
        for i in range(4):
            row = w[i].reshape(-1)
            if known.numel():  # toy's conditional mixture of the free coordinates (sorted), then its current-block marginal
                free = complement(known, mm.dim)
                law = mm.condition(known, row[known]).marginal(torch.searchsorted(free, coords["current"]))
            else:
                law = mm.marginal(coords["current"])
            for t in (0.05, 0.4, 0.9):
                z = p.marginal(law, t).sample(8, gen)
                got = exact_m(z.reshape(8, BLOCKS.current, fs), t, cond=cond[i : i + 1].expand(8, -1, -1), cond_mask=state)
                want = ExactModel(law, p, "eps")(z, t)
                worst = max(worst, float((got.reshape(8, -1) - want).abs().max()))
    # (2) Monte Carlo: the loss of the exact predictor equals the closed-form Bayes risk, per state
    m = ar1(BLOCKS.total)
    exact = MCVDExact(m, p, BLOCKS) if model is None else model
    risks, fails = {}, []
    window = m.sample(n, gen).reshape(n, BLOCKS.total, fs)
    for name, st_ in STATES.items():
        known = torch.cat([coords["past"] if st_[0] else coords["past"][:0], coords["future"] if st_[1] else coords["future"][:0]])
        state = torch.tensor([st_]).expand(n, 2)
        loss = mcvd_loss(exact, p, window, BLOCKS, gen, state=state)
        mc, se = float(loss.mean()), float(loss.std() / math.sqrt(n))
        closed = _bayes_risk(m, p, coords["current"], known)
        risks[name] = {"closed form": closed, "Monte Carlo": mc, "se": se}
        if abs(mc - closed) > k_se * se:
            fails.append(name)
    order_ok = risks["interpolation"]["closed form"] < risks["prediction"]["closed form"] < risks["generation"]["closed form"]
    tol = 1e-12
    ok = worst <= tol and not fails and order_ok
    return Outcome({"vs toy conditioning": 0.0, "loss - Bayes risk": f"within {k_se:g} SE"},
                   {"vs toy conditioning": worst, "states outside": fails, **{f"Bayes risk ({k})": v["closed form"] for k, v in risks.items()}},
                   {"deterministic": tol, "Monte Carlo": f"{k_se:g} SE"}, ok,
                   f"float64 against an independent route; loss means over n={n} windows with t ~ U{{1..T}}",
                   {"risks": risks, "interpolation < prediction < generation": order_ok})
