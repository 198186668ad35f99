"""Probes of a scheduler's state and range: tables left as they were by add_noise, finite samples at every small step
count, and sigma ladders that span the range they are configured with.

Each probe measures what the exact answer is, what diffusers does and the size of the
difference, and returns a Record (``findings.probe``). Configurations the installed diffusers
cannot express are left out of a probe and listed in its measurements.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch

import toy

from ...checks import Outcome
from ...samplers.base import SamplingError
from ...testing.gaussian_law import affine_law
from .. import diffusers as A
from .cases import FLOAT64_AGREEMENT, TARGET_COV, TARGET_MEAN, config, probe_case
from .findings import outcome, probe
from .measure import law_distance, setup

__all__ = ["probe_add_noise_dtype", "probe_few_steps", "probe_sigma_range", "SCHEDULES", "RANGE_RTOL"]

SCHEDULES = {"linear": {}, "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
             "squaredcos_cap_v2": {"beta_schedule": "squaredcos_cap_v2"}}
RANGE_RTOL = 1e-5  # float32 ladders: a few roundings of 2^-24 each


def _config_or_reason(scheduler: str, **options):
    try:
        return config(scheduler, **options), None
    except A.NotApplicable as err:
        return None, str(err)


@probe("add-noise-keeps-tables", "Noising float16 samples with add_noise leaves the scheduler's tables, and so its sampling, as they were",
       ["DDIMScheduler", "DDPMScheduler"])
def probe_add_noise_dtype(steps: int = 50) -> Outcome:
    """add_noise with float16 samples (as a training step or an image-to-image pipeline calls it) must not change the tables."""
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    out, skipped = [], []
    for name in ("DDIMScheduler", "DDPMScheduler"):
        cfg, why = _config_or_reason(name)
        if cfg is None:
            skipped.append({"scheduler": name, "not_applicable": why})
            continue
        sched = A.build(cfg)
        before = sched.alphas_cumprod.clone()
        half = torch.zeros(4, 2, dtype=torch.float16)
        sched.add_noise(half, half, torch.tensor([0, 1, 10, 500]))
        after = sched.alphas_cumprod
        change = float(((after.to(torch.float64) - before.to(torch.float64)).abs() / before.to(torch.float64)).max())
        su = setup(probe_case("n", cfg), m, steps)
        fresh = affine_law(lambda x, nz: A.sample(cfg, m, x, steps, noise=nz).samples, su.start.mean(), su.start.covariance())
        row = {"scheduler": name, "steps": steps, "dtype_before": str(before.dtype), "dtype_after": str(after.dtype),
               "largest_relative_change_alpha_bar": change}
        try:
            used = affine_law(lambda x, nz: A.sample(cfg, m, x, steps, noise=nz, scheduler=copy.deepcopy(sched)).samples,
                              su.start.mean(), su.start.covariance(), verify=False)
            row["law_difference_after_add_noise"] = law_distance(*used, *fresh)
        except SamplingError as err:
            row["law_difference_after_add_noise"] = math.inf
            row["failed"] = str(err)
        out.append(row)
    if not out:
        raise A.NotApplicable("; ".join(s["not_applicable"] for s in skipped))
    worst = max(r["law_difference_after_add_noise"] for r in out)
    return outcome(
        any(r["dtype_after"] != r["dtype_before"] or r["largest_relative_change_alpha_bar"] > 0 for r in out)
        or worst > FLOAT64_AGREEMENT,
        "alpha_bar unchanged by add_noise; the output law of a later run equal to a fresh scheduler's",
        {"runs": out, "not_applicable": skipped},
        {"largest_relative_change_alpha_bar": max(r["largest_relative_change_alpha_bar"] for r in out),
         "largest_law_difference": worst},
        f"add_noise on float16 zeros at timesteps 0, 1, 10, 500; then {steps} steps from the exact marginal, against the same "
        "run with a fresh scheduler. A table cast to float16 rounds alpha_bar to 1 at the first indices (beta_prod_t = 0).",
        tolerance=FLOAT64_AGREEMENT, rule="float64 round-off: the tables are promoted to float64 before add_noise")


FEW_STEP_SCHEDULERS = ("DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
                       "HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler")


@probe("few-steps-finite", "Every scheduler gives finite samples at every step count from 1 to 10, on every beta schedule",
       list(FEW_STEP_SCHEDULERS))
def probe_few_steps(max_steps: int = 10, spacings: Sequence[str | None] = (None, "trailing"), quick: bool = False) -> Outcome:
    """A scheduler run from the exact marginal must stay finite at few steps (the regime of fast ancestral sampling)."""
    names = ("DDIMScheduler", "EulerAncestralDiscreteScheduler") if quick else FEW_STEP_SCHEDULERS
    schedules = ("linear", "squaredcos_cap_v2") if quick else tuple(SCHEDULES)
    counts = range(1, (6 if quick else max_steps) + 1)
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    nonfinite, refused, skipped, runs = [], [], [], 0
    for name in names:
        for label in schedules:
            for spacing in spacings:
                options = dict(SCHEDULES[label], **({"timestep_spacing": spacing} if spacing else {}))
                cfg, why = _config_or_reason(name, **options)
                if cfg is None:
                    skipped.append({"scheduler": name, "schedule": label, "spacing": spacing or "default", "not_applicable": why})
                    continue
                for n in counts:
                    where = {"scheduler": name, "schedule": label, "spacing": spacing or "default", "steps": n}
                    try:
                        su = setup(probe_case("f", cfg), m, n)
                        x = su.start.sample(8, torch.Generator().manual_seed(n))
                        A.sample(cfg, m, x, n, noise=torch.Generator().manual_seed(100 + n))
                        runs += 1
                    except SamplingError as err:
                        nonfinite.append(dict(where, error=str(err)))
                    except Exception as err:  # diffusers refusing a step count, or a state diffcheck cannot map (e.g. NaN timesteps)
                        refused.append(dict(where, error=f"{type(err).__name__}: {err}"))
    return outcome(
        bool(nonfinite),
        "finite samples at every step count",
        {"non_finite": nonfinite, "refused": refused, "not_applicable": skipped, "finite_runs": runs},
        {"non_finite_runs": len(nonfinite), "first": (f"{nonfinite[0]['scheduler']} {nonfinite[0]['schedule']} "
                                                      f"{nonfinite[0]['spacing']} at {nonfinite[0]['steps']} steps")
                                                     if nonfinite else "none"},
        f"Schedulers {', '.join(names)}; beta schedules {', '.join(schedules)}; default and trailing spacing; {counts[0]} to "
        f"{counts[-1]} steps; 8 samples from the exact marginal at the first time. 'refused' lists runs that raised another "
        "error (diffusers declining a step count, or timesteps diffcheck cannot map); only non-finite samples count here.",
        rule="any non-finite sample")


def _karras_ve_levels(cfg) -> list[float]:
    sched = A.build(cfg)
    A.set_timesteps(sched, 20)
    return [s for s in A.karras_ve_levels(sched) if s > 0]


def _score_sde_levels(cfg) -> list[float]:
    sched = A.build(cfg)
    A.set_timesteps(sched, 20)
    return sorted({float(s) for s in sched.discrete_sigmas}, reverse=True)


def _table_sigma_range(sched) -> tuple[float, float]:
    ab = A.table(sched)
    sig = ((1 - ab) / ab).sqrt()
    return float(sig[-1]), float(sig[0])


def _karras_levels(cfg) -> list[float]:
    sched = A.build(cfg)
    A.set_timesteps(sched, 20)
    return [float(s) for s in sched.sigmas if float(s) > 0]


@probe("sigma-range", "Sigma ladders span the range they are configured with (sigma_max down to sigma_min)",
       ["KarrasVeScheduler", "ScoreSdeVeScheduler", "EulerDiscreteScheduler(use_karras_sigmas=True)"])
def probe_sigma_range() -> Outcome:
    """The positive levels a scheduler walks run from its configured sigma_max to its configured sigma_min."""
    out, skipped = [], []
    for name, options, levels in (("KarrasVeScheduler", {}, _karras_ve_levels), ("ScoreSdeVeScheduler", {}, _score_sde_levels),
                                  ("EulerDiscreteScheduler", {"use_karras_sigmas": True}, _karras_levels),
                                  ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, _karras_levels)):
        cfg, why = _config_or_reason(name, **options)
        if cfg is None:
            skipped.append({"scheduler": name, "options": options, "not_applicable": why})
            continue
        sched = A.build(cfg)
        if hasattr(sched, "betas"):
            hi, lo = _table_sigma_range(sched)
        else:
            hi, lo = float(sched.config.sigma_max), float(sched.config.sigma_min)
        walked = levels(cfg)
        gaps = {"largest": abs(walked[0] - hi) / hi, "smallest": abs(walked[-1] - lo) / lo}
        out.append({"scheduler": name, "options": options, "configured": [hi, lo], "walked": [walked[0], walked[-1]],
                    "relative_gap_largest": gaps["largest"], "relative_gap_smallest": gaps["smallest"]})
    if not out:
        raise A.NotApplicable("; ".join(s["not_applicable"] for s in skipped))
    bad = [r for r in out if max(r["relative_gap_largest"], r["relative_gap_smallest"]) > RANGE_RTOL]
    return outcome(
        bool(bad),
        "the largest positive level walked is sigma_max and the smallest is sigma_min",
        {"ladders": out, "not_applicable": skipped},
        {r["scheduler"]: f"walks {r['walked'][0]:.4g} -> {r['walked'][1]:.4g}, configured {r['configured'][0]:.4g} -> "
                         f"{r['configured'][1]:.4g}" for r in (bad or out)},
        "20 steps. Configured range: sigma_max and sigma_min of the configuration (Karras-VE, score-SDE-VE), or the "
        "sigmas sqrt((1 - alpha_bar) / alpha_bar) of the table's last and first index (Karras sigmas on a DDPM table).",
        tolerance=RANGE_RTOL, rule="float32 ladders agree with their range to a few roundings")
