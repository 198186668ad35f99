"""Probes of traps in diffusers' tables and grids: where a walk starts and ends, which timesteps it visits, in which precision.

Each probe measures what the exact answer is, what diffusers does and the size of the
difference, and returns a Record (``findings.probe``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...checks import Outcome
from .. import diffusers as A
from .cases import FLOAT64_AGREEMENT, NARROW_STD, config, ddim, ddpm, narrow, probe_case
from .findings import outcome, probe
from .measure import law_distance, measure

__all__ = ["probe_leading", "probe_terminal_snr", "probe_final_alpha", "probe_zero_snr_patch", "probe_ddim_previous", "probe_ddpm_final_noise", "probe_float32_tables"]

_SCHEDULES = {"linear": {}, "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}}


@probe("leading-spacing", "'leading' spacing starts below the last training index, from a marginal that is not the prior",
       ["DDIMScheduler(timestep_spacing=leading)"])
def probe_leading(steps: Sequence[int], schedules: Sequence[str] = ("linear", "scaled_linear")) -> Outcome:
    """'leading' spacing never evaluates the last training index, so it starts where x_T is not the prior's."""
    out, worst = [], 0.0
    for label in schedules:
        kw = dict(_SCHEDULES[label], **({"steps_offset": 1} if label == "scaled_linear" else {}))
        for n in steps:
            lead = measure(probe_case("lead", config("DDIMScheduler", timestep_spacing="leading", **kw)), n)
            trail = measure(probe_case("trail", config("DDIMScheduler", timestep_spacing="trailing", **{k: v for k, v in kw.items() if k != "steps_offset"})), n)
            sched = A.build(config("DDIMScheduler", timestep_spacing="leading", **kw))
            A.set_timesteps(sched, n)
            first = int(sched.timesteps[0])
            ab = sched.alphas_cumprod
            out.append({"schedule": label, "steps": n, "first_timestep": first, "last_training_index": len(ab) - 1,
                        "alpha_bar_first": float(ab[first]), "alpha_bar_T": float(ab[-1]),
                        "leading_error": lead["error"], "leading_error_prior": lead["error_prior"],
                        "trailing_error": trail["error"], "trailing_error_prior": trail["error_prior"]})
            worst = max(worst, lead["error_prior"] - lead["error"])
    return outcome(
        any(r["first_timestep"] < r["last_training_index"] for r in out),
        "x_T ~ N(0, I) is (close to) the marginal at the first timestep",
        out,
        {"largest_extra_error_from_prior": worst},
        "error: output law from the exact marginal at the first timestep; error_prior: from N(0, I) as a pipeline starts. "
        "The difference is the cost of starting from a law that is not the marginal there.")


@probe("terminal-snr", "Non-zero terminal SNR: N(0, I) is not the law at the last index; with zero SNR, epsilon-prediction breaks",
       ["DDIMScheduler(timestep_spacing=trailing)", "DDIMScheduler(rescale_betas_zero_snr=True)"])
def probe_terminal_snr(steps: int) -> Outcome:
    """Non-zero terminal SNR: the prior is not the marginal at the last index; zero-SNR rescaling fixes that for v and x0 only."""
    out = []
    for label, kw in (("linear", {}), ("scaled_linear", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}),
                      ("squaredcos_cap_v2", {"beta_schedule": "squaredcos_cap_v2"})):
        r = measure(probe_case("t", config("DDIMScheduler", timestep_spacing="trailing", **kw)), steps)
        z = measure(probe_case("z", config("DDIMScheduler", timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                  prediction_type="v_prediction", **kw)), steps)
        sched = A.build(config("DDIMScheduler", **kw))
        out.append({"schedule": label, "alpha_bar_T": float(sched.alphas_cumprod[-1]), "error": r["error"], "error_prior": r["error_prior"],
                    "zero_snr_v_error": z["error"], "zero_snr_v_error_prior": z["error_prior"]})
    eps = measure(probe_case("ze", config("DDIMScheduler", timestep_spacing="trailing", rescale_betas_zero_snr=True)), steps)
    return outcome(
        any(r["alpha_bar_T"] > 0.0 for r in out) or "failed" in eps,
        "error_prior = error (the prior is the exact marginal at t = 1)",
        {"schedules": out, "zero_snr_epsilon": eps.get("failed", "finite")},
        {"scaled_linear_extra_error": out[1]["error_prior"] - out[1]["error"]},
        f"DDIM, trailing spacing, {steps} steps. With rescale_betas_zero_snr, alpha_bar_T = 0 and x_T ~ N(0, I) is exact, "
        "but an epsilon model cannot give x_0 = (x - sigma eps) / alpha at alpha = 0.")


@probe("final-alpha-bar-0", "set_alpha_to_one=False (and PNDM's default) ends at alpha_bar_0: noise of std sqrt(1 - alpha_bar_0) stays",
       ["DDIMScheduler(set_alpha_to_one=False)", "PNDMScheduler()"])
def probe_final_alpha(steps: Sequence[int]) -> Outcome:
    """set_alpha_to_one=False (DDIM, PNDM's default) ends at alpha_bar_0, not at the data: visible on a narrow target."""
    out = []
    m = narrow()
    for name, cfg in (("DDIM set_alpha_to_one=True", config("DDIMScheduler", timestep_spacing="trailing", set_alpha_to_one=True)),
                      ("DDIM set_alpha_to_one=False", config("DDIMScheduler", timestep_spacing="trailing", set_alpha_to_one=False)),
                      ("PNDM defaults", config("PNDMScheduler"))):
        for n in steps:
            r = measure(probe_case(name, cfg), n, target=m)
            out.append({"configuration": name, "steps": n, "last_time": r["last_time"], "error": r["error"], "error_end": r["error_end"]})
    # the best any sampler ending at alpha_bar_0 can do: the exact marginal there, against the data law
    sched = A.build(config("DDIMScheduler"))
    proc = A.process_for(sched)
    at = proc.marginal(m, 1.0 / len(sched.alphas_cumprod))
    floor = law_distance(at.mean(), at.covariance(), m.mean(), m.covariance())
    return outcome(
        floor > 1e-3,
        "the output law tends to the data law as steps grow",
        out,
        {"best_possible_error_at_alpha_bar_0": floor, "alpha_bar_0": float(sched.alphas_cumprod[0])},
        f"Narrow Gaussian target (std {NARROW_STD}). A sampler that ends at alpha_bar_0 can at best output the exact marginal "
        "there, whose distance from the data law is the floor above; 'error_end' measures against that marginal. On this "
        "target the discretisation error of DDIM at these step counts is of the same size, so the leftover noise can "
        "even lower 'error'.",
        tolerance=1e-3, rule="a discrepancy when the best possible error ending at alpha_bar_0 exceeds 1e-3, far above the discretisation floor of these step counts")


@probe("zero-snr-2^-24", "With rescale_betas_zero_snr, Euler-type schedulers set alpha_bar_T = 2^-24, above alpha_bar_{T-1}")
def probe_zero_snr_patch() -> Outcome:
    """Euler-type schedulers replace alpha_bar_T = 0 by 2^-24 after rescaling, above alpha_bar_{T-1}."""
    out = []
    for name in ("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"):
        sched = A.build(config(name, rescale_betas_zero_snr=True, float64=False))
        ab = sched.alphas_cumprod.double()
        sig = ((1 - ab) / ab).sqrt()
        row = {"scheduler": name, "alpha_bar_T_minus_1": float(ab[-2]), "alpha_bar_T": float(ab[-1]),
               "sigma_T_minus_1": float(sig[-2]), "sigma_T": float(sig[-1])}
        if name != "DPMSolverMultistepScheduler":
            full = A.build(config(name, rescale_betas_zero_snr=True, timestep_spacing="trailing", float64=False))
            A.set_timesteps(full, len(ab))
            s = full.sigmas.double()
            row["sigma_increases_in_a_full_walk"] = int((s[1:] > s[:-1]).sum())
        out.append(row)
    return outcome(
        any(r["alpha_bar_T"] > r["alpha_bar_T_minus_1"] for r in out),
        "alpha_bar decreasing in t (sigma increasing)",
        out,
        {"sigma_T": out[0]["sigma_T"], "sigma_T_minus_1": out[0]["sigma_T_minus_1"]},
        "The patch keeps sigma_T finite, but the table is no longer that of a forward process: the last noise level is "
        "lower than the one before it, so a walk over every index first raises sigma. diffcheck refuses to build a "
        "process from such a table; these configurations are not measured.")


@probe("ddim-previous-timestep", "DDIM's previous timestep t - T // N is not the next kept index for 'linspace', or when N does not divide T",
       ["DDIMScheduler(timestep_spacing=linspace)", "DDIMScheduler(timestep_spacing=trailing, N not dividing T)"])
def probe_ddim_previous(steps: Sequence[int], extra: Sequence[int] = (30, 64)) -> Outcome:
    """DDIM steps to t - T // N, which is not the next kept index for 'linspace' or when N does not divide T (``extra``, trailing)."""
    out = []
    for spacing, n in [("linspace", s) for s in steps] + [("trailing", e) for e in extra]:
        cfg = config("DDIMScheduler", timestep_spacing=spacing)
        sched = A.build(cfg)
        A.set_timesteps(sched, n)
        ts = [int(v) for v in sched.timesteps]
        stride = len(sched.alphas_cumprod) // n
        gaps = [abs((a - stride) - b) for a, b in zip(ts[:-1], ts[1:])]
        r = measure(probe_case("d", cfg, ddim(0.0), True), n)
        out.append({"spacing": spacing, "steps": n, "largest_index_gap": max(gaps), "steps_off_grid": sum(g > 0 for g in gaps),
                    "error": r["error"], "diffcheck_error": r["diffcheck"]["error"], "agreement": r["agreement"]})
    return outcome(
        any(r["largest_index_gap"] > 0 for r in out),
        "each step lands on the next kept timestep (agreement with diffcheck's ddim at round-off)",
        out,
        {"largest_law_difference": max(r["agreement"] for r in out)},
        "The state is moved to index t - T//N, but the next model call is told the next kept index: the model is evaluated at "
        "a noise level the state does not have.")


@probe("ddpm-noise-into-data", "DDPMScheduler adds noise on the step into the data when the last timestep is > 0 (trailing, linspace)",
       ["DDPMScheduler(timestep_spacing=trailing)"])
def probe_ddpm_final_noise(steps: Sequence[int], variances: Sequence[str] = ("fixed_large", "fixed_small")) -> Outcome:
    """DDPM adds noise whenever the timestep is > 0, also on the step into the data (trailing, linspace)."""
    out = []
    for var in variances:
        for n in steps:
            cfg = config("DDPMScheduler", timestep_spacing="trailing", variance_type=var)
            r = measure(probe_case("p", cfg, ddpm("beta" if var == "fixed_large" else "beta_tilde"), True), n, target=narrow())
            sched = A.build(cfg)
            A.set_timesteps(sched, n)
            last = int(sched.timesteps[-1])
            added = float(1.0 - sched.alphas_cumprod[last]) if var == "fixed_large" else 1e-20
            out.append({"variance_type": var, "steps": n, "last_timestep": last, "noise_variance_added_at_last_step": added,
                        "error": r["error"], "diffcheck_error": r["diffcheck"]["error"], "agreement": r["agreement"]})
    big = [r for r in out if r["variance_type"] == "fixed_large"]
    return outcome(
        any(r["agreement"] > FLOAT64_AGREEMENT for r in out),
        "no noise on the step into sigma = 0 (Ho et al. 2020, Algorithm 2)",
        out,
        {"error_fixed_large": big[-1]["error"], "diffcheck_error_same_grid": big[-1]["diffcheck_error"], "steps": big[-1]["steps"]},
        f"Narrow Gaussian target (std {NARROW_STD}). The test is 'timestep > 0', not 'previous timestep >= 0': fixed_large adds "
        "noise of variance 1 - alpha_bar_t; fixed_small adds std 1e-10 (its variance floor).",
        tolerance=FLOAT64_AGREEMENT, rule="a discrepancy when the law differs from diffcheck's DDPM step on the same grid (no noise into "
                                          "the data) by more than float64 round-off")


@probe("float32-tables", "diffusers' alpha_bar tables are float32")
def probe_float32_tables() -> Outcome:
    """diffusers computes its tables in float32; how far they are from the same betas in float64."""
    out = []
    for label, kw in (("linear", {}), ("scaled_linear", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}),
                      ("squaredcos_cap_v2", {"beta_schedule": "squaredcos_cap_v2"})):
        sched = A.build(config("DDIMScheduler", float64=False, **kw))
        own = sched.alphas_cumprod.to(torch.float64)
        exact = A.table(sched)
        rel = ((own - exact).abs() / exact).max()
        out.append({"schedule": label, "largest_relative_error_alpha_bar": float(rel)})
    return outcome(
        max(r["largest_relative_error_alpha_bar"] for r in out) > 1e-6,
        "alpha_bar accurate to float64",
        out,
        {"largest_relative_error": max(r["largest_relative_error_alpha_bar"] for r in out)},
        "The report promotes tables to float64 where the scheduler keeps them as tensors; Euler, Euler ancestral and "
                    "DPM-Solver also cast their sigmas and states to float32, which sets their agreement floor.",
        tolerance=1e-6, rule="a float64 table is exact to 1e-15; float32 rounding over T = 1000 products gives about 1e-6")
