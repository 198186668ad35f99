"""Minimal re-creations of samplers in which real bugs lived, each with a switch between the buggy and the fixed line.

Written from the facts of the cited reports, in this project's terms: sigma-space samplers
take a denoiser D(x, sigma) on x = x_0 + sigma eps (``k`` steps of a ladder ``sigmas``);
table samplers walk training indices of a DDPM table with alpha_bar[i] and take the exact
model of that table. Every sampler draws its noise through ``noise(like)``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..variance import learned_v_raw


def _div(a: float, b: float) -> float:
    """a / b in IEEE arithmetic (inf or nan where b = 0), as tensors compute it."""
    return float(torch.tensor(a, dtype=torch.float64) / torch.tensor(b, dtype=torch.float64))


__all__ = ["karras_stochastic", "heun_v", "dpmpp_2m", "dpmpp_2s_single", "euler_ancestral", "euler_eps",
           "ddim_table", "ddpm_table", "InterpolatedVariance", "dpmpp_sde_single", "dpmpp_2m_sde"]

Den = Callable[[torch.Tensor, float], torch.Tensor]


def karras_stochastic(den: Den, x: torch.Tensor, sigmas: list[float], noise, *, s_churn: float, s_min: float, s_max: float,
                      s_noise: float = 1.0) -> torch.Tensor:
    """Karras et al. 2022, Algorithm 2: churn to sigma_hat, an Euler step, Heun's correction unless sigma_next = 0."""
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        gamma = min(s_churn / n, math.sqrt(2.0) - 1.0) if s_min <= s <= s_max else 0.0
        s_hat = s * (1.0 + gamma)
        if gamma > 0:
            x = x + math.sqrt(s_hat**2 - s**2) * s_noise * noise(x)
        d = (x - den(x, s_hat)) / s_hat
        x_next = x + (s_next - s_hat) * d
        if s_next > 0:
            d_next = (x_next - den(x_next, s_next)) / s_next
            x_next = x + (s_next - s_hat) * 0.5 * (d + d_next)
        x = x_next
    return x


def heun_v(v_model: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor, sigmas: list[float], *,
           second_stage_sigma: str) -> torch.Tensor:
    """Heun in sigma on x / alpha with a v-prediction model of a VP table (alpha^2 = 1 / (sigma^2 + 1)).

    x_0 = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) v. ``second_stage_sigma`` "next" converts
    the second evaluation with sigma_next (the fix of diffusers #1512); "hat" with the first
    stage's sigma (the bug).
    """
    def x0(xx, v, s):
        return xx / (s * s + 1.0) - s / math.sqrt(s * s + 1.0) * v

    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = (x - x0(x, v_model(x, s), s)) / s
        x_2 = x + (s_next - s) * d
        if s_next == 0:
            x = x_2
            continue
        conv = s_next if second_stage_sigma == "next" else s
        d_2 = (x_2 - x0(x_2, v_model(x_2, s_next), conv)) / conv
        x = x + (s_next - s) * 0.5 * (d + d_2)
    return x


def dpmpp_2m(den: Den, x: torch.Tensor, sigmas: list[float], *, final: str = "first", weight_step: str = "h") -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2) on a ladder: exponential-integrator steps in lambda = -log sigma.

    ``final`` "first": a first-order step into sigma = 0 (k-diffusion's fix after #43);
    "second": the multistep correction there too. ``weight_step`` "h": the multistep update
    x' = (sigma'/sigma) x - expm1(-h) D_d of the algorithm; "h_last": expm1(-h_last) there,
    the change proposed in k-diffusion #56.
    """
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        den_x = den(x, s)
        lam, lam_next = -math.log(s), (-math.log(s_next) if s_next > 0 else math.inf)
        h = lam_next - lam
        if old is None or (s_next == 0 and final == "first"):
            x = (s_next / s) * x - math.expm1(-h) * den_x
        else:
            r = _div(h_last, h)
            w = _div(1.0, 2.0 * r)
            d = (1.0 + w) * den_x - w * old
            x = (s_next / s) * x - math.expm1(-(h if weight_step == "h" else h_last)) * d
        old, h_last = den_x, h
    return x


def dpmpp_2s_single(den: Den, x: torch.Tensor, sigmas: list[float], orders: list[int]) -> torch.Tensor:
    """diffusers' single-step DPM-Solver++ of order 2 walking a ladder whose levels alternate first- and second-order targets.

    An order-1 step goes from the current level to the next (an intermediate); an order-2
    step goes from the level before that intermediate to the next level, with the
    midpoint-form correction from the two denoised values (Lu et al. 2022b, Alg. 1).
    """
    start_x, start_s, start_d = x, None, None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        if orders[i] == 1:
            start_x, start_s, start_d = x, s, den(x, s)
            lam, lam_next = -math.log(s), (-math.log(s_next) if s_next > 0 else math.inf)
            x = (s_next / s) * x - math.expm1(-(lam_next - lam)) * start_d
        else:
            d1 = den(x, s)
            lam0, lam1 = -math.log(start_s), -math.log(s)
            lam_t = -math.log(s_next) if s_next > 0 else math.inf
            h, h0 = lam_t - lam0, lam1 - lam0
            r0 = _div(h0, h)
            D1 = _div(1.0, r0) * (d1 - start_d)
            x = (s_next / start_s) * start_x - math.expm1(-h) * start_d - 0.5 * math.expm1(-h) * D1
    return x


def euler_ancestral(den: Den, x: torch.Tensor, sigmas: torch.Tensor, noise, *, clamp: bool) -> torch.Tensor:
    """Euler ancestral on float32 sigmas: sigma_up = sqrt(s'^2 (s^2 - s'^2) / s^2), sigma_down = sqrt(s'^2 - sigma_up^2).

    ``clamp`` floors the radicand of sigma_down at 0 (the fix proposed for diffusers #14213).
    """
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        up = (s_next**2 * (s**2 - s_next**2) / s**2) ** 0.5
        rad = s_next**2 - up**2
        down = (rad.clamp(min=0.0) if clamp else rad) ** 0.5
        d = (x - den(x, float(s))) / float(s)
        x = x + d * (down - s).to(x.dtype)
        if float(s_next) > 0:
            x = x + noise(x) * up.to(x.dtype)
    return x


def euler_eps(eps_model: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor, sigmas: list[float], *,
              sign: float) -> torch.Tensor:
    """diffusers' Euler on x / alpha with an eps model: x_0 = x - sigma eps (``sign`` -1); ``sign`` +1 is the change claimed in #1481."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = x + sign * s * eps_model(x, s)
        x = x + (s_next - s) * (x - x0) / s
    return x


def ddim_table(model, alpha_bar: torch.Tensor, x: torch.Tensor, steps: list[int], *, prediction: str,
               eps_from_x0: bool = True) -> torch.Tensor:
    """DDIM with eta = 0 over training indices ``steps`` (decreasing, then -1 for alpha_bar = 1), in float64 arithmetic.

    ``model(x, index)`` predicts ``prediction`` ("eps", "x0" or "v"); ``alpha_bar`` is the
    table the scheduler holds (of any dtype). ``eps_from_x0`` False keeps the model's x_0
    output as eps (diffusers #1486 / #2094).
    """
    ab = alpha_bar.to(torch.float64)
    for i in range(len(steps) - 1):
        t, prev = steps[i], steps[i + 1]
        a_t = float(ab[t])
        a_p = float(ab[prev]) if prev >= 0 else 1.0
        out = model(x, t)
        if prediction == "eps":
            eps = out
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        elif prediction == "x0":
            x0 = out
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t) if eps_from_x0 else out
        else:
            x0 = math.sqrt(a_t) * x - math.sqrt(1 - a_t) * out
            eps = math.sqrt(a_t) * out + math.sqrt(1 - a_t) * x
        x = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
    return x


def ddpm_table(model, alpha_bar: torch.Tensor, x: torch.Tensor, steps: list[int], noise, *, prev: str = "list",
               variance: str = "fixed_small", learned: Callable | None = None) -> torch.Tensor:
    """DDPM ancestral steps (Ho et al. 2020, Eq. 6-7) over decreasing training indices ``steps``, eps model.

    ``prev`` "list": the previous index is the next entry (-1 at the end: the data);
    "stride": t - T // N as in diffusers before #9384 (diffusers #9261). ``variance``
    "fixed_small" (beta_tilde) or "learned_range_log" / "learned_range_linear": Improved
    DDPM's interpolation between beta_tilde and beta of the output of ``learned(x, t, prev)``
    in log space (Nichol & Dhariwal 2021, Eq. 15) or, as before diffusers #2090, linearly.
    """
    ab = alpha_bar.to(torch.float64)
    T, N = ab.numel(), len(steps)
    for i, t in enumerate(steps):
        p = (steps[i + 1] if i + 1 < N else -1) if prev == "list" else t - T // N
        a_t = float(ab[t])
        a_p = float(ab[p]) if p >= 0 else 1.0
        beta = 1.0 - a_t / a_p
        eps = model(x, t)
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        mean = (math.sqrt(a_p) * beta / (1 - a_t)) * x0 + (math.sqrt(a_t / a_p) * (1 - a_p) / (1 - a_t)) * x
        if p < 0:
            x = mean
            continue
        tilde = max((1 - a_p) / (1 - a_t) * beta, 1e-20)
        if variance == "fixed_small":
            var = torch.full_like(x, tilde)
        else:
            frac = (learned(x, t, p) + 1.0) / 2.0
            if variance == "learned_range_log":
                var = torch.exp(frac * math.log(beta) + (1 - frac) * math.log(tilde))
            else:
                var = frac * beta + (1 - frac) * tilde
        x = mean + var.sqrt() * noise(x)
    return x


class InterpolatedVariance:
    """A learned-variance model (``diffcheck.variance``) whose variance output v_raw is interpolated in ``space``.

    "log": Improved DDPM's exp(v log beta + (1 - v) log beta_tilde), v = (v_raw + 1) / 2 (Nichol & Dhariwal 2021,
    Eq. 15), which ``ddpm_ancestral(variance="learned")`` applies: v_raw passes through. "beta":
    v beta + (1 - v) beta_tilde, as diffusers' DDPMScheduler._get_variance did before #2090; the step then takes that
    variance, written here as the v_raw that Nichol & Dhariwal 2021, Eq. 15 maps to it. ``model`` is an ``ExactLearnedVariance``, whose beta
    and beta_tilde are those of the sampler's steps.
    """

    def __init__(self, model, space: str) -> None:
        if space not in ("log", "beta"):
            raise ValueError(f"space must be 'log' or 'beta', got {space!r}")
        self.model, self.space, self.prediction = model, space, model.prediction

    def __call__(self, x: torch.Tensor, t, *args):
        return self.model(x, t, *args)

    def forward_full(self, x: torch.Tensor, t, *args) -> torch.Tensor:
        mean, v_raw = self.model.forward_full(x, t, *args).split(x.shape[1], dim=1)
        if self.space == "beta":
            i = self.model.step_index(t, x)
            log_beta, log_tilde = self.model.log_beta[i][:, None], self.model.log_beta_tilde[i][:, None]
            v = (v_raw + 1.0) / 2.0
            variance = v * log_beta.exp() + (1.0 - v) * log_tilde.exp()
            v_raw = learned_v_raw(variance, log_beta, log_tilde)
        return torch.cat([mean, v_raw], dim=1)


def _ancestral(s_from: float, s_to: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step: sigma_up^2 = eta^2 s_to^2 (s_from^2 - s_to^2) / s_from^2, capped at s_to."""
    up = min(s_to, eta * math.sqrt(s_to**2 * (s_from**2 - s_to**2) / s_from**2))
    return math.sqrt(s_to**2 - up**2), up


def dpmpp_sde_single(den: Den, x: torch.Tensor, sigmas: list[float], brownian, *, r: float = 0.5,
                     eta: float = 1.0) -> torch.Tensor:
    """k-diffusion's single-step stochastic DPM-Solver++ (``sample_dpmpp_sde``), the sampler k-diffusion #59 was about.

    Each step to sigma' splits into an ancestral step to the intermediate level
    sigma_r = sigma (sigma' / sigma)^r and one to sigma': a first-order exponential step to
    sigma_down, then noise sigma_up; the second stage uses the denoised value mixed from both
    stages (DPM-Solver++(2S), Lu et al. 2022b, Alg. 1). ``brownian(sigma, sigma')`` is the
    normalised increment of one Brownian path, shared by the two stages. Euler into sigma = 0.
    """
    fac = 1.0 / (2.0 * r)
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = den(x, s)
        if s_next == 0:
            x = x + (s_next - s) * (x - d) / s
            continue
        s_r = s * (s_next / s) ** r
        down, up = _ancestral(s, s_r, eta)  # stage 1: to sigma_r
        x_2 = (down / s) * x - math.expm1(math.log(down / s)) * d + brownian(s, s_r) * up
        d_2 = den(x_2, s_r)
        down, up = _ancestral(s, s_next, eta)  # stage 2: to sigma'
        d_mix = (1.0 - fac) * d + fac * d_2
        x = (down / s) * x - math.expm1(math.log(down / s)) * d_mix + brownian(s, s_next) * up
    return x


def dpmpp_2m_sde(den: Den, x: torch.Tensor, sigmas: list[float], noise, *, eta: float = 1.0) -> torch.Tensor:
    """SDE-DPM-Solver++(2M), midpoint form (Lu et al. 2022b, App.; k-diffusion's ``sample_dpmpp_2m_sde``, added for #59).

    x' = (sigma'/sigma) e^{-eta h} x + (1 - e^{-h - eta h}) D + (1 - e^{-h - eta h}) / (2 r) (D - D_prev)
    + sigma' sqrt(1 - e^{-2 eta h}) z, with r = h_last / h; the step into sigma = 0 returns D.
    """
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = den(x, s)
        if s_next == 0:
            x = d
        else:
            h = math.log(s / s_next)
            e = -math.expm1(-h - eta * h)
            x = (s_next / s) * math.exp(-eta * h) * x + e * d
            if old is not None:
                x = x + 0.5 * e * (h / h_last) * (d - old)
            x = x + noise(x) * s_next * math.sqrt(-math.expm1(-2.0 * eta * h))
            h_last = h
        old = d
    return x
