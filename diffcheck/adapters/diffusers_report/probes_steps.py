"""Probes of traps in diffusers' steps: multistep warm-up, prediction types in higher-order updates, the model's time, learned variance, the score-SDE corrector and the last step of high-order solvers.

Each probe measures what the exact answer is, what diffusers does and the size of the
difference, and returns a Record (``findings.probe``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

import toy

from ...checks import Outcome
from ...testing.gaussian_law import affine_law
from .. import diffusers as A
from .cases import FLOAT32_AFFINE_RTOL, FLOAT32_AGREEMENT, TARGET_COV, TARGET_MEAN, config, ddpm, probe_case
from .findings import outcome, probe
from .measure import fit_order, law_distance, measure, run_scheduler, setup

__all__ = ["higher_order", "probe_pndm", "probe_second_order_v", "probe_karras_rounding", "probe_learned_range", "probe_score_sde_ve", "probe_final_step_cap"]


@probe("pndm-warm-up", "PNDM: PRK warm-up versus PLMS-only start; leading spacing with alpha_bar_0 ends with a step that changes nothing",
       ["PNDMScheduler()"])
def probe_pndm(steps: Sequence[int]) -> Outcome:
    """PNDM's Runge-Kutta warm-up (PRK) against the PLMS-only start; the null last step of leading spacing with alpha_bar_0."""
    out = []
    for skip in (False, True):
        cfg = config("PNDMScheduler", skip_prk_steps=skip, set_alpha_to_one=True, timestep_spacing="trailing")
        for n in steps:
            r = measure(probe_case("pndm", cfg), n)
            out.append({"skip_prk_steps": skip, "steps": n, "nfe": r["nfe"], "error": r["error"], "error_solver": r["error_solver"]})
    prk = fit_order([r["steps"] for r in out if not r["skip_prk_steps"]], [r["error"] for r in out if not r["skip_prk_steps"]], 1e-10)
    plms = fit_order([r["steps"] for r in out if r["skip_prk_steps"]], [r["error"] for r in out if r["skip_prk_steps"]], 1e-10)
    sched = A.build(config("PNDMScheduler"))
    A.set_timesteps(sched, 50)
    null = int(sched.timesteps[-1]) == 0 and float(sched.final_alpha_cumprod) == float(sched.alphas_cumprod[0])
    return outcome(
        null,
        "every model evaluation moves the state",
        {"runs": out, "order_prk": prk, "order_plms": plms},
        {"null_last_step_with_defaults": null},
        "Orders fitted to the error against the data law (trailing spacing, set_alpha_to_one=True). With diffusers' defaults "
        "(leading, set_alpha_to_one=False) the last step goes from index 0 to alpha_bar_0 = alpha_bar at index 0: one model "
        "evaluation spent on a step of length zero.")


@probe("prediction-types-in-higher-order-steps", "Heun's corrector, DPM-Solver++ 2M and PNDM's PLMS with v- and x0-prediction",
       ["HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "PNDMScheduler(prediction_type=v_prediction)"])
def probe_second_order_v(steps: Sequence[int]) -> Outcome:
    """Second-order and multistep updates with v-, x0- and eps-prediction give the same law (a conversion at the wrong sigma would not)."""
    out, worst = [], {}
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    pndm = {"timestep_spacing": "trailing", "skip_prk_steps": True, "set_alpha_to_one": True}
    for sched_name, preds, options in (("HeunDiscreteScheduler", ("epsilon", "v_prediction", "sample"), {}),
                                       ("DPMSolverMultistepScheduler", ("epsilon", "v_prediction", "sample"), {}),
                                       ("PNDMScheduler", ("epsilon", "v_prediction"), pndm)):
        for n in steps:
            laws, errors = {}, {}
            for pred in preds:
                case = probe_case("v", config(sched_name, prediction_type=pred, **options), arithmetic="float32")
                su = setup(case, m, n)
                laws[pred] = affine_law(lambda x, nz, c=case: run_scheduler(c, m, x, n, nz).samples, su.start.mean(), su.start.covariance(),
                                        rtol=FLOAT32_AFFINE_RTOL)
                errors[pred] = law_distance(*laws[pred], m.mean(), m.covariance())
            diffs = {p: law_distance(*laws[p], *laws["epsilon"]) for p in preds if p != "epsilon"}
            worst[sched_name] = max(worst.get(sched_name, 0.0), *diffs.values())
            out.append({"scheduler": sched_name, "options": options, "steps": n, "error": errors, "law_difference_from_epsilon": diffs})
    return outcome(
        max(worst.values()) > FLOAT32_AGREEMENT,
        f"the same output law for every prediction type (to float32 round-off, {FLOAT32_AGREEMENT:g})",
        out,
        {f"largest_law_difference_{k}": v for k, v in worst.items()},
        "With exact predictions every parameterization describes the same denoiser, so every prediction type must give the "
        "same law. PNDM combines past v outputs in its linear multistep formula and converts the combination to eps with the "
        "current step's alpha and sample; the combination of eps = alpha_k v_k + sigma_k x_k it should extrapolate is different.",
        tolerance=FLOAT32_AGREEMENT, rule="float32 round-off of the schedulers that hold sigmas and states in float32")


@probe("karras-timestep-rounding", "DPM-Solver++ with Karras sigmas: the model is told a rounded timestep, the step uses the exact sigma",
       ["DPMSolverMultistepScheduler(use_karras_sigmas=True)"])
def probe_karras_rounding(steps: Sequence[int]) -> Outcome:
    """DPM-Solver with Karras sigmas rounds the timesteps given to the model, while its steps use the unrounded sigmas."""
    out = []
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    cfg = config("DPMSolverMultistepScheduler", use_karras_sigmas=True)
    case = probe_case("k", cfg, arithmetic="float32")
    for n in steps:
        su = setup(case, m, n)
        mean_t, cov_t = affine_law(lambda x, nz: run_scheduler(case, m, x, n, nz).samples, su.start.mean(), su.start.covariance(),
                                   rtol=FLOAT32_AFFINE_RTOL)
        mean_s, cov_s = affine_law(lambda x, nz: run_scheduler(case, m, x, n, nz, time_from="sigma").samples, su.start.mean(),
                                   su.start.covariance(), rtol=FLOAT32_AFFINE_RTOL)
        run = run_scheduler(case, m, su.start.mean()[None], n, None)
        gaps = [abs(math.log(float(su.process.edm_sigma(torch.tensor(c.t, dtype=torch.float64)))) - math.log(c.sigma)) for c in run.calls]
        out.append({"steps": n, "error_model_at_timestep": law_distance(mean_t, cov_t, m.mean(), m.covariance()),
                    "error_model_at_sigma": law_distance(mean_s, cov_s, m.mean(), m.covariance()),
                    "law_difference": law_distance(mean_t, cov_t, mean_s, cov_s), "largest_log_sigma_gap": max(gaps)})
    return outcome(
        max(r["law_difference"] for r in out) > FLOAT32_AGREEMENT,
        "the model is evaluated at the noise level the step assumes",
        out,
        {"largest_law_difference": max(r["law_difference"] for r in out), "largest_log_sigma_gap": max(r["largest_log_sigma_gap"] for r in out)},
        "law_difference: output law with the model at the rounded timestep (what a network sees) against the model at the "
        "solver's sigma.",
        tolerance=FLOAT32_AGREEMENT, rule="float32 round-off of the schedulers that hold sigmas and states in float32")


@probe("learned-range-variance", "DDPM learned_range with the exact reverse variance (log-space interpolation, respaced betas)",
       ["DDPMScheduler(variance_type=learned_range)"])
def probe_learned_range(steps: Sequence[int]) -> Outcome:
    """Improved DDPM's learned range with the exact variance: exact in law on an isotropic Gaussian (trailing spacing)."""
    out = []
    m = toy.single_gaussian((1.0, -0.5), 0.25)
    for spacing in ("trailing", "leading"):
        for n in steps:
            r = measure(probe_case("lr", config("DDPMScheduler", variance_type="learned_range", timestep_spacing=spacing), ddpm("beta_tilde")), n, target=m)
            out.append({"spacing": spacing, "steps": n, "error": r["error"], "fixed_small_diffcheck_error": r["diffcheck"]["error"]})
    trailing = max(r["error"] for r in out if r["spacing"] == "trailing")
    return outcome(
        trailing > 1e-9,
        "the exact target law at every step count (each reverse step is then the exact Gaussian q(x_s | x_t))",
        out,
        {"largest_error_trailing": trailing, "largest_error_leading": max(r["error"] for r in out if r["spacing"] == "leading")},
        "Isotropic Gaussian target N((1, -0.5), 0.25 I), the model's variance output computed from the exact Var(x_s | x_t). "
        "With 'leading' the last step starts at index 0, where diffusers adds no noise (timestep 0), so Var(x_0 | x_1) is lost.",
        tolerance=1e-9, rule="float64 round-off over at most 200 steps")


SIGMA_GAP_TOL = 1e-6
SAMPLE_CHANGE_TOL = 1e-12


@probe("score-sde-ve-sigmas-and-batch", "score-SDE-VE: model sigma differs from the predictor's ladder; the corrector couples samples",
       ["ScoreSdeVeScheduler"])
def probe_score_sde_ve(n: int = 64, steps: int = 200) -> Outcome:
    """score-SDE-VE: the model is given the continuous sigma, the predictor steps on its discrete ladder; the corrector couples samples."""
    cfg = config("ScoreSdeVeScheduler", correct_steps=1)
    sched = A.build(cfg)
    A.set_timesteps(sched, steps)
    idx = (sched.timesteps * (steps - 1)).long()
    rel = (sched.sigmas.double() / sched.discrete_sigmas.double()[idx] - 1.0).abs().max()
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    x = m.noised(1.0, float(sched.sigmas[0])).sample(n, torch.Generator().manual_seed(3))
    noise = lambda: torch.Generator().manual_seed(4)  # the same draws in both runs: sample 0 gets the same rows
    a = A.sample(cfg, m, x, steps, noise=noise()).samples
    y = x.clone()
    y[1:] = m.noised(1.0, float(sched.sigmas[0])).sample(n - 1, torch.Generator().manual_seed(5))
    b = A.sample(cfg, m, y, steps, noise=noise()).samples
    change = float((a[0] - b[0]).abs().max())
    return outcome(
        rel > SIGMA_GAP_TOL or change > SAMPLE_CHANGE_TOL,
        "the model is evaluated at the predictor's noise level; sample 0 depends on its own start and noise only",
        {"largest_relative_sigma_gap": float(rel), "sample_0_change_when_others_change": change},
        {"largest_relative_sigma_gap": float(rel), "sample_0_change": change},
        f"{steps} steps, one corrector step each, {n} samples; the second run keeps sample 0's start and noise and redraws the "
        "others. The corrector's step size uses norms averaged over the batch (as the official code does).",
        tolerance={"largest_relative_sigma_gap": SIGMA_GAP_TOL, "sample_0_change": SAMPLE_CHANGE_TOL},
        rule="float32 sigmas of one ladder agree to a few ulps (2^-24 ~ 6e-8 relative each); with the same start and noise, "
             "sample 0 of a per-sample sampler is the same up to round-off of O(1) states")


def higher_order(results: list[dict]) -> list[dict]:
    """The measured configurations of nominal order >= 2 with a solver error at their largest step count."""
    return [res for res in results if res["nominal_order"] >= 2 and res["verdict"] != "failed" and res["rows"]
            and "error_solver" in res["rows"][-1]]


@probe("final-step-order", "Second- and third-order schedulers end with a first-order step into sigma = 0")
def probe_final_step_cap(results: list[dict]) -> Outcome:
    """Higher-order solvers end with a first-order step into sigma = 0: their error against the data law stalls."""
    out = []
    for res in higher_order(results):
        last = res["rows"][-1]
        # the log-SNR increments of the last two steps, from the grid the scheduler walks, at each step count
        cfg = A.SchedulerConfig(res["scheduler"]["scheduler"], tuple(sorted(res["scheduler"]["options"].items())),
                                tuple(sorted(res["scheduler"]["step_options"].items())))
        increments = {}
        for row in res["rows"]:
            sched = A.build(cfg)
            proc = A.process_for(sched)
            A.set_timesteps(sched, row["steps"])
            lam = proc.log_snr(A.walk_grid(sched, proc)[:-1])
            increments[row["steps"]] = [float(lam[-2] - lam[-3]), float(lam[-1] - lam[-2])]
        out.append({"configuration": res["name"], "steps": last["steps"], "error": last["error"], "error_solver": last["error_solver"],
                    "solver_order": (res["orders"].get("diffusers") or {}).get("order"), "nominal_order": res["nominal_order"],
                    "last_log_snr_increments": increments})
    if not out:
        raise ValueError("results: no measured configuration of order >= 2 (see higher_order)")
    return outcome(
        any(r["error"] > 2 * r["error_solver"] for r in out),
        "the error against the data law falls at the solver's order",
        out,
        {"largest_error_over_solver_error": max(r["error"] / max(r["error_solver"], 1e-300) for r in out)},
        "error: against the data law; error_solver: the state the last step starts from against the exact law at its noise "
        "level. The last step outputs E[x_0 | x_sigma_last], whose covariance lacks E Cov(x_0 | x_sigma_last) ~ sigma_last^2. "
        "With linspace spacing of linear betas the log-SNR increments of the last steps do not shrink as N grows "
        "(last_log_snr_increments), so those steps keep an O(sigma_last^2) ~ 1/N error and the measured orders fall "
        "towards 1.",
        tolerance=2.0, rule="a discrepancy when the error against the data law exceeds twice the solver error")
