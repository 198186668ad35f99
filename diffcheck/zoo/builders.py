"""One builder per catalogued report: the sampler in its two forms on a target, as ``Variant``s for the generic checks."""

from __future__ import annotations

import math

import torch

from ..adapters.kdiffusion.denoiser import exact_denoiser
from ..adapters.kdiffusion.noise import BrownianNoise
from ..adapters.kdiffusion.sigmas import alternating, karras
from ..exact import ExactModel
from ..process.discrete import DiscreteVP
from . import references as R
from . import variants as V
from .base import Variant, eps_v_models, prior, sd_betas, start_at, start_vp, table_model, table_sigmas, zero_snr

__all__ = ["karras_ve", "heun_v", "dpm_karras_repeat", "ddim_x0", "leading", "ddpm_prev", "learned_range", "float16",
           "edm_sigma_min", "dpmpp_final", "radicand", "single_order", "swap", "sign", "sde_request"]


def karras_ve(mix, form):
    n, hi, lo = 50, 100.0, 0.02
    i = torch.arange(n, dtype=torch.float64)
    if form == "buggy":  # sigma_max * (sigma_min^2 / sigma_max^2)^(i / (n - 1))
        s = hi * (lo**2 / hi**2) ** (i / (n - 1))
    else:  # sqrt(t_i) of Karras et al. (2022), Table 1, VE column
        s = hi * (lo / hi) ** (i / (n - 1))
    levels = s.tolist() + [0.0]
    den = exact_denoiser(mix)
    run = lambda x, nz: V.karras_stochastic(den, x, levels, nz, s_churn=80.0, s_min=0.05, s_max=50.0)
    return Variant(run, prior(mix.dim, hi), levels=levels, configured=(hi, lo))


def heun_v(mix, form):
    _, vm = eps_v_models(mix)
    which = "hat" if form == "buggy" else "next"

    def runs(n):
        sig = alternating(n, 0.03, 14.6).tolist()
        return sig, (lambda x, nz: V.heun_v(vm, x, sig, second_stage_sigma=which))

    sig, _ = runs(32)
    full = karras(32, 0.03, 14.6).tolist()
    return Variant(lambda x, nz: V.heun_v(vm, x, full, second_stage_sigma=which), start_at(mix, full[0]), levels=full,
                   order_runs=[(n, runs(n)[1], runs(n)[0][-1]) for n in (8, 16, 32)], order=2.0,
                   reference=R.flow_law(mix, full, "heun_ode"))


def dpm_karras_repeat(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    s_all = torch.tensor(table_sigmas(ab, list(range(1000))), dtype=torch.float64)
    sig = karras(60, float(s_all[0]), float(s_all[-1]), append_zero=False).tolist()
    levels = sig + ([sig[-1]] if form == "buggy" else [0.0])
    den = exact_denoiser(mix)
    return Variant(lambda x, nz: V.dpmpp_2m(den, x, levels), start_at(mix, levels[0]), levels=levels)


def ddim_x0(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / 50).tolist()] + [-1]
    model = table_model(mix, proc, "x0")
    run = lambda x, nz: V.ddim_table(model, ab, x, steps, prediction="x0", eps_from_x0=(form == "fixed"))
    # 50 steps: DDIM's own error (KL 0.009 on this target) exceeds the law check's resolution; judged by the discrete law
    return Variant(run, start_vp(mix, proc, steps[0]), judge_law=False, reference=R.ddim_law(mix, proc, steps))


def leading(mix, form):
    n = 50
    if form == "buggy":  # leading spacing: range(0, T, T // n) reversed, first index 980; x_T ~ N(0, I)
        proc = DiscreteVP(sd_betas())
        steps = list(range(0, 1000, 1000 // n))[::-1] + [-1]
        pred = "eps"
    else:  # trailing spacing from index 999 on the zero-terminal-SNR table, v-prediction (Lin et al. 2024)
        proc = DiscreteVP(zero_snr(sd_betas()))
        steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / n).tolist()] + [-1]
        pred = "v"
    ab = proc.alphas_cumprod[1:]
    model = table_model(mix, proc, pred)
    # the discrete law starts from the table's exact law at the first index; the pipeline starts from N(0, I)
    return Variant(lambda x, nz: V.ddim_table(model, ab, x, steps, prediction=pred), prior(mix.dim, 1.0), judge_law=False,
                   reference=R.ddim_law(mix, proc, steps))


def ddpm_prev(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    n = 30  # trailing spacing: steps 33.3 apart, while the stride rule takes T // n = 33
    steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / n).tolist()]
    model = table_model(mix, proc, "eps")
    rule = "stride" if form == "buggy" else "list"
    run = lambda x, nz: V.ddpm_table(model, ab, x, steps, nz, prev=rule)
    prevs = [(steps[i + 1] if i + 1 < n else -1) if rule == "list" else t - 1000 // n for i, t in enumerate(steps)]
    sig = lambda i: 0.0 if i < 0 else table_sigmas(ab, [i])[0]
    # DDPM's beta_tilde chain at 30 of 1000 steps is itself biased beyond the law check's resolution: judged by its walk
    # and by the discrete law of the chain on the trailing steps
    return Variant(run, start_vp(mix, proc, steps[0]), walk=[(sig(t), sig(p)) for t, p in zip(steps, prevs)], judge_law=False,
                   reference=R.ddpm_law(mix, proc, steps))


def learned_range(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    steps = [round(v) - 1 for v in torch.arange(1000, 0, -1000 / 50).tolist()]
    model = table_model(mix, proc, "eps")
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
    return Variant(run, start_vp(mix, proc, steps[0]))


def float16(mix, form):
    proc = DiscreteVP.linear()
    ab = proc.alphas_cumprod[1:]
    held = ab.to(torch.float16) if form == "buggy" else ab
    steps = list(range(0, 1000, 1000 // 50))[::-1] + [-1]  # DDIM's default then: 50 steps, leading spacing, 980 ... 0
    model = table_model(mix, proc, "eps")
    h = held.to(torch.float64)
    sig = lambda i: 0.0 if i < 0 else math.sqrt(max(1.0 - float(h[i]), 0.0) / float(h[i]))
    return Variant(lambda x, nz: V.ddim_table(model, held, x, steps, prediction="eps"), start_vp(mix, proc, steps[0]),
                   levels=[sig(i) for i in steps], judge_law=False, reference=R.ddim_law(mix, proc, steps))


def edm_sigma_min(mix, form):
    lo = 0.02 if form == "buggy" else 0.002
    levels = karras(60, lo, 80.0).tolist()  # 60 steps: the fixed form 50 times inside the resolution
    den = exact_denoiser(mix)
    run = lambda x, nz: V.karras_stochastic(den, x, levels, nz, s_churn=0.0, s_min=0.0, s_max=math.inf)
    return Variant(run, start_at(mix, 80.0), levels=levels, configured=(80.0, lo), reference=R.flow_law(mix, levels, "heun_ode"))


def dpmpp_final(mix, form):
    levels = karras(40, 0.03, 14.6).tolist()
    den = exact_denoiser(mix)
    run = lambda x, nz: V.dpmpp_2m(den, x, levels, final="second" if form == "buggy" else "first")
    return Variant(run, start_at(mix, levels[0]), levels=levels)


def radicand(mix, form):
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
    return Variant(run, start_at(mix, float(sig[0])), levels=[float(v) for v in sig.double()], judge_law=False)


def single_order(mix, form):
    n = 40  # an even number of steps
    levels = karras(n, 0.03, 14.6).tolist()
    orders = [1, 2] * (n // 2) if form == "buggy" else [1, 2] * (n // 2 - 1) + [1, 1]
    den = exact_denoiser(mix)
    return Variant(lambda x, nz: V.dpmpp_2s_single(den, x, levels, orders), start_at(mix, levels[0]), levels=levels)


def swap(mix, form):
    """k-diffusion #56: the report's sample_dpmpp_2m_v2 "swapped -h with -h_last at the end" of the multistep branch.

    With D constant over a step the exact map is x' = e^-h x + (1 - e^-h) D (weights summing to 1).
    The proposal x' = e^-h_i x + (1 - e^-h_{i-1}) D_d has local error (e^-h_i - e^-h_{i-1}) D, about
    (h_{i-1} - h_i) D: O(h) where neighbouring steps differ by O(h) (alternating ladders), O(h^2)
    on Karras' (h_i - h_{i-1} ~ h^2 / rho), and 0 only on uniform-lambda ladders, where the change
    is a no-op. Summed, sum (h_{i-1} - h_i) D_i = h_0 D_1 - h_{N-2} D_{N-1} + sum h_i (D_{i+1} - D_i)
    = O(h): the data itself is scaled by about 1 - h_last-step, a first-order error of the size
    of the data, which the law and order checks see (not the swap r = h / h_last, which is not
    what was proposed: its errors, of order D' (h_{i-1}^2 - h_i^2), telescope and stay second order).
    """
    den = exact_denoiser(mix)
    step = "h_last" if form == "proposed" else "h"

    def runs(n):
        sig = alternating(n, 0.03, 14.6).tolist()
        return sig, (lambda x, nz: V.dpmpp_2m(den, x, sig, weight_step=step))

    full = karras(32, 0.03, 14.6).tolist()
    return Variant(lambda x, nz: V.dpmpp_2m(den, x, full, weight_step=step), start_at(mix, full[0]), levels=full,
                   order_runs=[(n, runs(n)[1], runs(n)[0][-1]) for n in (16, 32, 64)], order=2.0)


def sign(mix, form):
    e, _ = eps_v_models(mix)
    proc = DiscreteVP(sd_betas())
    ab = proc.alphas_cumprod[1:]
    idx = torch.linspace(0, 999, 50, dtype=torch.float64).round().long().flip(0).tolist()
    levels = table_sigmas(ab, idx) + [0.0]
    sign = 1.0 if form == "proposed" else -1.0
    # 50 Euler steps: their own error exceeds the law check's resolution; judged by the discrete law of Euler on the ladder
    return Variant(lambda x, nz: V.euler_eps(e, x, levels, sign=sign), start_at(mix, levels[0]), levels=levels, judge_law=False,
                   reference=R.flow_law(mix, levels, "euler_ode"))


def sde_request(mix, form):
    """k-diffusion #59: the single-step stochastic DPM-Solver++ it had, and the multistep SDE-DPM-Solver++(2M) the request brought."""
    den = exact_denoiser(mix)

    def run_on(sig):
        if form == "single-step":
            return lambda x, nz: V.dpmpp_sde_single(den, x, sig, BrownianNoise(nz, x))
        return lambda x, nz: V.dpmpp_2m_sde(den, x, sig, nz)

    full = karras(64, 0.03, 14.6).tolist()
    order_runs = []
    for n in (16, 32, 64):
        sig = alternating(n, 0.03, 14.6).tolist()
        order_runs.append((n, run_on(sig), sig[-1]))
    return Variant(run_on(full), start_at(mix, full[0]), levels=full, order_runs=order_runs, order=1.0)

