"""The zoo's catalogue: real sampler bugs re-created beside their fixes, and two reported "bugs" that were not.

Each entry cites the report and the line that was wrong, and builds the sampler in both
forms on a Gaussian target, ready for the generic checks (``diffcheck.zoo.checks``).
A ``Variant`` runs the sampler from a batch and a noise function and says where it starts
(the law its pipeline draws x_T from), the noise levels it walks and the range it was
configured with, and, where its theory gives one, runs at several step counts for an
order fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

import toy
from toy.mixture import GaussianMixture

from ..adapters.kdiffusion.denoiser import exact_denoiser, law
from ..adapters.kdiffusion.sigmas import alternating, karras
from ..exact import ExactModel
from ..process.discrete import DiscreteVP
from . import variants as V

__all__ = ["Variant", "Entry", "ENTRIES", "by_id"]


@dataclass
class Variant:
    """One form of a sampler on a target: ``run(x, noise)``, its start law, its walk, its configured range, its order runs."""

    run: Callable[[torch.Tensor, Callable], torch.Tensor]
    start: tuple[torch.Tensor, torch.Tensor]
    end_sigma: float = 0.0
    levels: list[float] | None = None
    configured: tuple[float, float] | None = None
    order_runs: list[tuple[int, Callable, float]] = field(default_factory=list)  # (steps, run, end sigma)
    order: float | None = None
    walk: list[tuple[float, float]] | None = None  # (from, to) noise levels of each step, where a step need not start where the last ended
    judge_law: bool = True  # False where the configuration's own discretization error exceeds the law check's resolution


@dataclass(frozen=True)
class Entry:
    """A catalogued report: where, which line, whether it was a bug, and its two forms (buggy/fixed or original/proposed)."""

    id: str
    where: str
    title: str
    url: str
    line: str
    kind: str  # "bug" or "not a bug"
    target: Callable[[], GaussianMixture]
    build: Callable[[GaussianMixture, str], Variant]
    forms: tuple[str, str] = ("buggy", "fixed")

    @property
    def wrong(self) -> str:
        """The form the checks must reject: the buggy one, or the proposed change of a report that was not a bug."""
        return self.forms[0]


def unit() -> GaussianMixture:
    """A unit-scale anisotropic Gaussian."""
    return toy.single_gaussian((1.0, -0.5), [[1.0, 0.6], [0.6, 0.5]])


def medium() -> GaussianMixture:
    """A Gaussian of standard deviation 0.1: narrow, yet wide beside a DDPM table's smallest noise level (0.01)."""
    return toy.single_gaussian((1.0, -0.5), 0.1**2)


def isotropic() -> GaussianMixture:
    """An isotropic Gaussian (a per-coordinate variance is exact for it)."""
    return toy.single_gaussian((1.0, -0.5), 0.25)


def narrow() -> GaussianMixture:
    """A narrow Gaussian (standard deviation 0.015): final-step and alpha_bar-boundary errors show on it."""
    return toy.single_gaussian((1.0, -0.5), 0.015**2)


def _start(mix: GaussianMixture, sigma: float):
    w = law(mix, sigma)
    return w.mean(), w.covariance()


def _prior(d: int, std: float):
    return torch.zeros(d, dtype=torch.float64), std**2 * torch.eye(d, dtype=torch.float64)


def _table_model(mix: GaussianMixture, proc: DiscreteVP, prediction: str):
    m = ExactModel(mix, proc, prediction)
    return lambda x, idx: m(x, (idx + 1) / proc.T)  # training index i sits at t = (i + 1) / T


def _eps_v(mix: GaussianMixture):
    den = exact_denoiser(mix)

    def parts(x, s):
        a = 1.0 / math.sqrt(1.0 + s * s)
        x0 = den(x, s)
        eps = (x - x0) / s
        return a, s * a, x0, eps

    def v(x, s):
        a, sig, x0, eps = parts(x, s)
        return a * eps - sig * x0

    def e(x, s):
        return parts(x, s)[3]

    return e, v


def _table_sigmas(ab: torch.Tensor, idx: list[int]) -> list[float]:
    return [math.sqrt((1 - float(ab[i])) / float(ab[i])) for i in idx]


# -- the entries -------------------------------------------------------------------------------------
def _karras_ve(mix, form):
    n, hi, lo = 50, 100.0, 0.02
    i = torch.arange(n, dtype=torch.float64)
    if form == "buggy":  # sigma_max * (sigma_min^2 / sigma_max^2)^(i / (n - 1))
        s = hi * (lo**2 / hi**2) ** (i / (n - 1))
    else:  # sqrt(t_i) of Karras et al. (2022), Table 1, VE column
        s = hi * (lo / hi) ** (i / (n - 1))
    levels = s.tolist() + [0.0]
    den = exact_denoiser(mix)
    run = lambda x, nz: V.karras_stochastic(den, x, levels, nz, s_churn=80.0, s_min=0.05, s_max=50.0)
    return Variant(run, _prior(mix.dim, hi), levels=levels, configured=(hi, lo))


def _heun_v(mix, form):
    _, vm = _eps_v(mix)
    which = "hat" if form == "buggy" else "next"

    def runs(n):
        sig = alternating(n, 0.03, 14.6).tolist()
        return sig, (lambda x, nz: V.heun_v(vm, x, sig, second_stage_sigma=which))

    sig, _ = runs(32)
    full = karras(32, 0.03, 14.6).tolist()
    return Variant(lambda x, nz: V.heun_v(vm, x, full, second_stage_sigma=which), _start(mix, full[0]), levels=full,
                   order_runs=[(n, runs(n)[1], runs(n)[0][-1]) for n in (8, 16, 32)], order=2.0)


def _dpm_karras_repeat(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    s_all = torch.tensor(_table_sigmas(ab, list(range(1000))), dtype=torch.float64)
    sig = karras(60, float(s_all[0]), float(s_all[-1]), append_zero=False).tolist()
    levels = sig + ([sig[-1]] if form == "buggy" else [0.0])
    den = exact_denoiser(mix)
    return Variant(lambda x, nz: V.dpmpp_2m(den, x, levels), _start(mix, levels[0]), levels=levels)


def _ddim_x0(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / 250).tolist()] + [-1]
    model = _table_model(mix, proc, "x0")
    run = lambda x, nz: V.ddim_table(model, ab, x, steps, prediction="x0", eps_from_x0=(form == "fixed"))
    return Variant(run, _start_vp(mix, proc, steps[0]))


def _start_vp(mix, proc, idx):
    m = proc.marginal(mix, (idx + 1) / proc.T)
    return m.mean(), m.covariance()


def _sd_betas() -> torch.Tensor:
    return torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2


def _zero_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. (2024), Algorithm 1: shift and scale sqrt(alpha_bar) so that it ends at 0 (here at 1e-6: DiscreteVP needs beta < 1)."""
    r = torch.cumprod(1 - betas, 0).sqrt()
    r0, rT = r[0].clone(), r[-1].clone()
    r = (r - rT) * r0 / (r0 - rT)
    r[-1] = 1e-6
    ab = r**2
    return 1 - torch.cat([ab[:1], ab[1:] / ab[:-1]])


def _leading(mix, form):
    n = 500
    if form == "buggy":  # leading spacing: range(0, T, T // n) reversed, first index 980; x_T ~ N(0, I)
        proc = DiscreteVP(_sd_betas())
        steps = list(range(0, 1000, 1000 // n))[::-1] + [-1]
        pred = "eps"
    else:  # trailing spacing from index 999 on the zero-terminal-SNR table, v-prediction (Lin et al. 2024)
        proc = DiscreteVP(_zero_snr(_sd_betas()))
        steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / n).tolist()] + [-1]
        pred = "v"
    ab = proc.alphas_cumprod[1:]
    model = _table_model(mix, proc, pred)
    return Variant(lambda x, nz: V.ddim_table(model, ab, x, steps, prediction=pred), _prior(mix.dim, 1.0))


def _ddpm_prev(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    n = 300
    steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / n).tolist()]
    model = _table_model(mix, proc, "eps")
    rule = "stride" if form == "buggy" else "list"
    run = lambda x, nz: V.ddpm_table(model, ab, x, steps, nz, prev=rule)
    prevs = [(steps[i + 1] if i + 1 < n else -1) if rule == "list" else t - 1000 // n for i, t in enumerate(steps)]
    sig = lambda i: 0.0 if i < 0 else _table_sigmas(ab, [i])[0]
    # DDPM's beta_tilde variance is itself biased at 300 of 1000 steps beyond the law check's resolution: judged by its walk
    return Variant(run, _start_vp(mix, proc, steps[0]), walk=[(sig(t), sig(p)) for t, p in zip(steps, prevs)], judge_law=False)


def _learned_range(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / 50).tolist()]
    model = _table_model(mix, proc, "eps")
    exact = ExactModel(mix, proc, "x0")

    def learned(x, t, p):
        """The output v in [-1, 1] whose log-space interpolation gives the exact reverse variance (isotropic target)."""
        a_t, a_p = float(ab[t]), float(ab[p])
        beta = 1 - a_t / a_p
        tilde = (1 - a_p) / (1 - a_t) * beta
        c = math.sqrt(a_p) * beta / (1 - a_t)
        post = torch.diagonal(exact.posterior_cov(x, (t + 1) / proc.T), dim1=-2, dim2=-1)
        var = tilde + c * c * post
        frac = (var.log() - math.log(tilde)) / (math.log(beta) - math.log(tilde))
        return 2.0 * frac - 1.0

    kind = "learned_range_linear" if form == "buggy" else "learned_range_log"
    run = lambda x, nz: V.ddpm_table(model, ab, x, steps, nz, variance=kind, learned=learned)
    return Variant(run, _start_vp(mix, proc, steps[0]))


def _float16(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    held = ab.to(torch.float16) if form == "buggy" else ab
    steps = list(range(999, -1, -1)) + [-1]
    model = _table_model(mix, proc, "eps")
    h = held.to(torch.float64)
    sig = lambda i: 0.0 if i < 0 else math.sqrt(max(1.0 - float(h[i]), 0.0) / float(h[i]))
    return Variant(lambda x, nz: V.ddim_table(model, held, x, steps, prediction="eps"), _start_vp(mix, proc, 999),
                   levels=[sig(i) for i in steps])


def _edm_sigma_min(mix, form):
    lo = 0.02 if form == "buggy" else 0.002
    levels = karras(40, lo, 80.0).tolist()
    den = exact_denoiser(mix)
    run = lambda x, nz: V.karras_stochastic(den, x, levels, nz, s_churn=0.0, s_min=0.0, s_max=math.inf)
    return Variant(run, _start(mix, 80.0), levels=levels, configured=(80.0, lo))


def _dpmpp_final(mix, form):
    levels = karras(40, 0.03, 14.6).tolist()
    den = exact_denoiser(mix)
    run = lambda x, nz: V.dpmpp_2m(den, x, levels, final="second" if form == "buggy" else "first")
    return Variant(run, _start(mix, levels[0]), levels=levels)


def _radicand(mix, form):
    import numpy as np

    from ..process.discrete import cosine_betas

    betas = cosine_betas().to(torch.float32)  # squaredcos_cap_v2 in float32, as the scheduler holds it
    ab = torch.cumprod(1.0 - betas, 0)
    table = (((1 - ab) / ab) ** 0.5).numpy()
    n = 4  # a few-step configuration; the first step's radicand rounds below 0 here
    s = np.interp(np.linspace(0, 999, n)[::-1].copy(), np.arange(1000), table)
    sig = torch.from_numpy(np.concatenate([s, [0.0]]).astype(np.float32))
    den = exact_denoiser(mix)
    run = lambda x, nz: V.euler_ancestral(den, x, sig, nz, clamp=(form == "fixed"))
    return Variant(run, _start(mix, float(sig[0])), levels=[float(v) for v in sig.double()], judge_law=False)


def _single_order(mix, form):
    n = 40  # an even number of steps
    levels = karras(n, 0.03, 14.6).tolist()
    orders = [1, 2] * (n // 2) if form == "buggy" else [1, 2] * (n // 2 - 1) + [1, 1]
    den = exact_denoiser(mix)
    return Variant(lambda x, nz: V.dpmpp_2s_single(den, x, levels, orders), _start(mix, levels[0]), levels=levels)


def _swap(mix, form):
    den = exact_denoiser(mix)
    ratio = "h/h_last" if form == "proposed" else "h_last/h"

    def runs(n):
        sig = alternating(n, 0.03, 14.6).tolist()
        return sig, (lambda x, nz: V.dpmpp_2m(den, x, sig, ratio=ratio))

    full = karras(32, 0.03, 14.6).tolist()
    return Variant(lambda x, nz: V.dpmpp_2m(den, x, full, ratio=ratio), _start(mix, full[0]), levels=full,
                   order_runs=[(n, runs(n)[1], runs(n)[0][-1]) for n in (16, 32, 64)], order=2.0)


def _sign(mix, form):
    e, _ = _eps_v(mix)
    proc = DiscreteVP(_sd_betas())
    ab = proc.alphas_cumprod[1:]
    idx = torch.linspace(0, 999, 400, dtype=torch.float64).round().long().flip(0).tolist()
    levels = _table_sigmas(ab, idx) + [0.0]
    sign = 1.0 if form == "proposed" else -1.0
    return Variant(lambda x, nz: V.euler_eps(e, x, levels, sign=sign), _start(mix, levels[0]), levels=levels)


_D = "https://github.com/huggingface/diffusers"
_K = "https://github.com/crowsonkb/k-diffusion"
ENTRIES: tuple[Entry, ...] = (
    Entry("diffusers#590", "diffusers KarrasVeScheduler.set_timesteps (fixed by #627, v0.4.0)", "KarrasVe sigma schedule missing a square",
          f"{_D}/issues/590", "schedule = sigma_max * (sigma_min**2 / sigma_max**2) ** (i / (N - 1)): the levels fall to "
          "sigma_min^2 / sigma_max instead of sigma_min", "bug", unit, _karras_ve),
    Entry("diffusers#1512", "diffusers HeunDiscreteScheduler.step (v0.10.0)", "Heun's second stage converted at sigma_hat (v-prediction)",
          f"{_D}/pull/1512", "pred_original_sample and the derivative of the second stage used sigma_hat where the model was "
          "evaluated at sigma_next", "bug", unit, _heun_v),
    Entry("diffusers#6477", "diffusers DPMSolverMultistepScheduler.set_timesteps, use_karras_sigmas (#5689; v0.26.0)",
          "Karras sigmas repeat the last sigma", f"{_D}/pull/6477",
          "sigmas = np.concatenate([sigmas, sigmas[-1:]]): a final step of size 0 leaves the noise of sigma_min in the output",
          "bug", medium, _dpm_karras_repeat),
    Entry("diffusers#2094", "diffusers DDIMScheduler.step, prediction_type='sample' (#1486; v0.15.0)",
          "DDIM keeps the model's x_0 output as eps", f"{_D}/pull/2094",
          "pred_epsilon = model_output also for x_0-prediction, instead of (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)",
          "bug", unit, _ddim_x0),
    Entry("diffusers#2585", "diffusers DDIMScheduler.set_timesteps, leading spacing (Lin et al. 2024)",
          "leading spacing starts at index 980 while x_T ~ N(0, I)", f"{_D}/issues/2585",
          "timesteps = arange(0, N) * (T // N): the first state is taken as x_980 of a table whose terminal SNR is not 0",
          "bug", unit, _leading),
    Entry("diffusers#9261", "diffusers DDPMScheduler.previous_timestep, trailing spacing (fixed by #9384, v0.32.0)",
          "DDPM's previous timestep for trailing spacing", f"{_D}/issues/9261",
          "prev_t = t - T // num_inference_steps, which trailing spacing does not follow; the last step lands on index 0, not on the data",
          "bug", medium, _ddpm_prev),
    Entry("diffusers#2090", "diffusers DDPMScheduler._get_variance, learned_range (v0.13.0)",
          "learned-range variance interpolated in beta, not log beta", f"{_D}/pull/2090",
          "min_log = variance; max_log = self.betas[t]: the interpolation of Nichol & Dhariwal (2021, Eq. 15) taken between "
          "the variances, not their logarithms", "bug", isotropic, _learned_range),
    Entry("diffusers#3005", "a scheduler's alpha_bar held in float16 (pipelines cast to half precision)",
          "alpha_bar in float16 rounds to 1 at small t", f"{_D}/issues/3005",
          "alphas_cumprod cast to float16: 1 - abar_t underflows at the first indices, so the last steps see no noise to remove",
          "bug", medium, _float16),
    Entry("generative-models#114", "Stability-AI generative-models, EDM discretization default",
          "EDM sigma_min 0.02 instead of 0.002", "https://github.com/Stability-AI/generative-models/issues/114",
          "sigma_min=0.02 where Karras et al. (2022) use 0.002: the final step from sigma_min to 0 leaves an O(sigma_min^2) "
          "covariance deficit", "bug", narrow, _edm_sigma_min),
    Entry("k-diffusion#43", "k-diffusion sample_dpmpp_2m, last step (adopted after #43)",
          "DPM-Solver++(2M) correction on the last step into sigma = 0", f"{_K}/issues/43",
          "the multistep correction with r = h_last / h on the step to sigma = 0, where h = inf: 1 / (2 r) is infinite",
          "bug", unit, _dpmpp_final),
    Entry("diffusers#14213", "diffusers EulerAncestralDiscreteScheduler.step, squaredcos_cap_v2, float32",
          "negative radicand in sigma_down", f"{_D}/issues/14213",
          "sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5 with sigma_up rounded above sigma_to in float32 (sigma_from ~ 2e4)",
          "bug", unit, _radicand),
    Entry("diffusers#6953", "diffusers DPMSolverSinglestepScheduler.get_order_list (v0.26.3, v0.27.0)",
          "lower_order_final ignored for even step counts", f"{_D}/pull/6953",
          "orders = [1, 2] * (steps // 2) for even steps: the last step is of order 2 into sigma = 0",
          "bug", unit, _single_order),
    Entry("k-diffusion#56", "k-diffusion sample_dpmpp_2m (report not a bug)", "proposed swap of h and h_last in DPM++ 2M",
          f"{_K}/issues/56", "the report proposed r = h / h_last; the algorithm's r = h_last / h is right", "not a bug", unit, _swap,
          forms=("proposed", "original")),
    Entry("diffusers#1481", "diffusers EulerDiscreteScheduler.step (report not a bug)", "claimed wrong sign of Euler's c_out",
          f"{_D}/issues/1481", "the report claimed x_0 = x + sigma eps; x_0 = x - sigma eps is right", "not a bug", unit, _sign,
          forms=("proposed", "original")),
)


def by_id(entry_id: str) -> Entry:
    """The entry with this id (e.g. "diffusers#590")."""
    for e in ENTRIES:
        if e.id == entry_id:
            return e
    raise ValueError(f"unknown zoo entry {entry_id!r}; choose one of {', '.join(e.id for e in ENTRIES)}")
