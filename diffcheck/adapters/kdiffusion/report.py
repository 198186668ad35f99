"""``verify_kdiffusion``: every sampler of ``k_diffusion.sampling`` measured against the exact answer, as a JSON report.

Per sampler: its order (strong for deterministic samplers, weak for stochastic ones, on
ladders stopping at sigma_min; no Monte Carlo: exact laws on a Gaussian target), its
model evaluations, its exact output law on the ladder to 0 against the resolution of an
n-sample test, two-sample tests on toy presets (Monte Carlo, Bonferroni over all tests),
and its agreement with diffcheck's sampler of the same algorithm. Then k-diffusion's
``log_likelihood`` against the exact log-density. Findings are stated, not patched.
"""

from __future__ import annotations

import datetime
import platform
import sys
import time
from typing import Any, Sequence

import torch
from tqdm import tqdm

import toy

from ...io import write_json
from ...testing import stats as st
from . import measure as M
from .catalogue import SAMPLERS, KSampler, by_name
from .denoiser import exact_denoiser, law
from .load import sampling

__all__ = ["DEFAULT_STEPS", "QUICK_STEPS", "verify_kdiffusion", "format_report", "likelihood_check", "explain"]

DEFAULT_STEPS = (16, 32, 64, 128)
QUICK_STEPS = (8, 16, 32)
ORDER_BAND = 0.3

_REASONS = {
    "lms": "its Lagrange weights come from scipy's quad at epsrel = 1e-4, whose relative error on every coefficient is an "
           "O(1e-4 h) error per step that does not shrink with the order; and its first three steps are of order 1, 2, 3",
    "dpm_fast": "with an evaluation budget divisible by 3 it ends with a second- and a first-order step (orders [3, ..., 2, 1]), "
                "which caps its global order at 2; the report gives it 3k + 2 evaluations (last step of order 2)",
}


def explain(entry: KSampler, measured: float | None) -> str:
    """Why a measured order falls short of the declared one, where the reason is known."""
    if measured is None or entry.order is None:
        return ""
    if measured >= entry.order - ORDER_BAND:
        return ""
    return _REASONS.get(entry.name, "pre-asymptotic at these step counts")


def likelihood_check(n: int = 32, preset: str = "anisotropic", sigma_min: float = 0.002, sigma_max: float = 80.0,
                     alpha: float = 1e-3, seed: int = 0) -> dict:
    """k-diffusion's ``log_likelihood`` (Hutchinson divergence, dopri5 at 1e-4) against the exact log p at sigma_min.

    Its prior is N(0, sigma_max^2 I), not the exact law at sigma_max, so its value is the
    exact one minus gap(latent), gap = log p_exact(sigma_max) - log N(0, sigma_max^2 I). The
    mean gap over the exact law at sigma_max (where the latents lie) is added back, and what
    remains must average to 0 within its spread (Hutchinson's probe, the gap's variation;
    a z-test over the points at level alpha).
    """
    K = sampling()
    mix = toy.preset(preset)
    x = law(mix, sigma_min).sample(n, torch.Generator().manual_seed(seed))
    den = exact_denoiser(mix)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ll, info = K.log_likelihood(den, x, sigma_min, sigma_max, atol=1e-4, rtol=1e-4)
    exact = law(mix, sigma_min).log_prob(x)
    # the latent is not returned, so the prior term's error is averaged over points of the exact law at sigma_max
    z = law(mix, sigma_max).sample(4096, torch.Generator().manual_seed(seed + 1))
    gap = law(mix, sigma_max).log_prob(z) - torch.distributions.Normal(0.0, sigma_max).log_prob(z).sum(-1)
    diff = (ll.to(torch.float64) - exact)
    res = st.zero_mean_test(diff + gap.mean(), alpha=alpha, name="log-likelihood bias test")
    return {"preset": preset, "n": n, "sigma_min": sigma_min, "sigma_max": sigma_max, "nfe": int(info["fevals"]),
            "mean_difference": float(diff.mean()), "difference_std": float(diff.std()),
            "prior_gap_mean": float(gap.mean()), "prior_gap_std": float(gap.std()),
            "bias_after_prior_gap": float(diff.mean() + gap.mean()), "z": res.statistic, "threshold": res.threshold,
            "alpha": alpha, "passed": bool(res.passed),
            "note": "difference = k-diffusion's log-likelihood minus the exact log p at sigma_min; its spread is the Hutchinson "
                    "estimator's (one Rademacher probe per point); prior_gap = log p_exact(sigma_max) - log N(0, sigma_max^2) at "
                    "points of the exact law at sigma_max"}


def _sampler_report(entry: KSampler, steps: Sequence[int], law_steps: int, presets: Sequence[str], n_mc: int, each: float,
                    seed: int) -> dict:
    t0 = time.perf_counter()
    res: dict[str, Any] = {"name": entry.name, "function": entry.function, "kind": entry.kind, "noise": entry.noise,
                           "options": dict(entry.options), "nominal_order": entry.order, "source": entry.source,
                           "note": entry.note}
    if entry.affine:
        o = M.order(entry, steps)
        o["explanation"] = explain(entry, o["order"])
        o["passed"] = None if entry.order is None or o["order"] is None else o["order"] >= entry.order - ORDER_BAND
        res["order"] = o
        res["nfe"] = {str(r["steps"]): r["nfe"] for r in o["rows"]}
        res["exact_law"] = M.exact_law_verdict(entry, law_steps)
        res["agreement"] = M.agreement(entry, law_steps)
    else:
        res["adaptive"] = M.adaptive_errors(entry, ((0.05, 0.0078), (1e-2, 1e-3), (1e-3, 1e-4), (1e-4, 1e-5)))
        res["nfe"] = {f"rtol={r['rtol']:g}": r["nfe"] for r in res["adaptive"]}
    res["two_sample"] = [M.preset_test(entry, p, law_steps, n_mc, each, seed + 10 * k) for k, p in enumerate(presets)]
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res


def _versions() -> dict:
    from importlib import metadata

    try:
        kd = metadata.version("k-diffusion")
    except metadata.PackageNotFoundError:  # pragma: no cover - loaded from files without metadata
        kd = "unknown"
    return {"k-diffusion": kd, "torch": torch.__version__, "python": platform.python_version()}


def verify_kdiffusion(samplers: Sequence[str] | None = None, steps: Sequence[int] = DEFAULT_STEPS, out: str | None = None,
                      progress: bool = True, quick: bool = False, *, presets: Sequence[str] | None = None,
                      n_two_sample: int | None = None, alpha: float = 1e-3, law_steps: int | None = None,
                      likelihood: bool = True) -> dict:
    """Measure k-diffusion's samplers against the exact answer; JSON-safe, written atomically to ``out``."""
    sampling()  # a clear ImportError first, if k-diffusion is missing
    if quick and tuple(steps) == DEFAULT_STEPS:
        steps = QUICK_STEPS
    steps = tuple(int(s) for s in steps)
    if len(steps) < 2 or any(s < 2 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must be at least two increasing step counts >= 2, got {steps}")
    chosen = [by_name(s) for s in samplers] if samplers else list(SAMPLERS)
    presets = tuple(presets) if presets is not None else (("anisotropic",) if quick else ("anisotropic", "narrow"))
    for p in presets:
        if p not in toy.PRESETS:
            raise ValueError(f"presets: unknown toy preset {p!r}")
    n_mc = n_two_sample or (500 if quick else 2000)
    law_steps = law_steps or (32 if quick else 64)
    each = alpha / max(1, len(chosen) * len(presets))
    t0 = time.perf_counter()
    rows = [_sampler_report(e, steps, law_steps, presets, n_mc, each, 7000 + 100 * i)
            for i, e in enumerate(tqdm(chosen, desc="verify-kdiffusion", file=sys.stderr, disable=not progress))]
    ll = likelihood_check() if likelihood else None
    report = {
        "tool": "diffcheck verify-kdiffusion",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "quick": bool(quick), "steps": list(steps), "law_steps": law_steps,
        "target": {"mean": list(M.TARGET_MEAN), "cov": [list(r) for r in M.TARGET_COV]},
        "ladder": f"Karras rho = 7 from {M.SIGMA_MAX:g} to {M.SIGMA_MIN:g} (orders: no final 0; laws: then 0)",
        "order_metric": "strong: RMS over 64 fixed starts of |x_N - exact flow| / sqrt(tr C); weak: sqrt(2 KL) of the exact output "
                        "law from the exact law at sigma_min. Monte Carlo budget of orders and exact laws: none (exact laws).",
        "two_sample": {"presets": list(presets), "n": n_mc, "alpha_total": alpha, "alpha_each": each},
        "samplers": rows, "log_likelihood": ll,
        "summary": {
            "samplers": len(rows),
            "order_short": [r["name"] for r in rows if r.get("order", {}).get("passed") is False],
            "exact_law_beyond_resolution": [r["name"] for r in rows if r.get("exact_law") and not r["exact_law"]["passed"]],
            "two_sample_rejected": [f"{r['name']}@{t['preset']}" for r in rows for t in r["two_sample"] if not t["passed"]],
            "agreement_failed": [r["name"] for r in rows if r.get("agreement") and not r["agreement"]["passed"]],
            "likelihood_passed": None if ll is None else ll["passed"],
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if out is not None:
        write_json(out, report)
    return report


def _g(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def format_report(report: dict) -> str:
    """The report as a plain-text table: one line per sampler, then the likelihood check and the summary."""
    if not isinstance(report, dict) or "samplers" not in report:
        raise TypeError("report must be the dict returned by verify_kdiffusion")
    cols = ["sampler", "kind", "order", "nominal", "nfe", "exact KL", "resolution", "two-sample p", "agreement"]
    lines = []
    for r in report["samplers"]:
        o = r.get("order") or {}
        ex = r.get("exact_law") or {}
        ag = r.get("agreement")
        ps = ", ".join(f"{t['preset']} {_g(t['p_value'])}{'' if t['passed'] else '!'}" for t in r["two_sample"])
        nfe = "/".join(str(v) for v in r["nfe"].values())
        lines.append([r["name"], r["kind"], f"{o['order']:.2f}" if o.get("order") is not None else "adaptive",
                      _g(r["nominal_order"]), nfe, _g(ex.get("kl")), _g(ex.get("resolution")), ps,
                      f"{_g(ag['distance'])} vs {ag['comparator']}" if ag else "-"])
    widths = [max(len(c), *(len(l[k]) for l in lines)) for k, c in enumerate(cols)]
    fmt = lambda row: "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
    head = (f"diffcheck verify-kdiffusion  (k-diffusion {report['versions']['k-diffusion']}, torch {report['versions']['torch']}, "
            f"{report['date']})\nladder: {report['ladder']}; steps {report['steps']}; laws at {report['law_steps']} steps\n")
    text = [head, fmt(cols), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]
    notes = [(r["name"], r["order"]["explanation"]) for r in report["samplers"] if r.get("order", {}).get("explanation")]
    if notes:
        text += ["", "orders short of their nominal value:"] + [f"  {n}: {why}" for n, why in notes]
    for r in report["samplers"]:
        if "adaptive" in r:
            text += ["", f"{r['name']} (strong error at its tolerances): " +
                     "; ".join(f"rtol {a['rtol']:g} atol {a['atol']:g}: error {a['error']:.3g}, nfe {a['nfe']}" for a in r["adaptive"])]
    ll = report.get("log_likelihood")
    if ll:
        text += ["", f"log_likelihood on {ll['preset']} (n = {ll['n']}, nfe {ll['nfe']}): mean difference from the exact log p "
                     f"{ll['mean_difference']:.3g} (sd {ll['difference_std']:.3g}), prior gap {ll['prior_gap_mean']:.3g}, "
                     f"bias after it {ll['bias_after_prior_gap']:.3g}: {'pass' if ll['passed'] else 'FAIL'} (|z| {ll['z']:.2f} vs "
                     f"{ll['threshold']:.2f})"]
    s = report["summary"]
    text += ["", f"{s['samplers']} samplers; orders short: {', '.join(s['order_short']) or 'none'}; exact laws beyond resolution at "
                 f"{report['law_steps']} steps: {', '.join(s['exact_law_beyond_resolution']) or 'none'}; two-sample rejections: "
                 f"{', '.join(s['two_sample_rejected']) or 'none'}; agreement failures: {', '.join(s['agreement_failed']) or 'none'}"]
    return "\n".join(text) + "\n"


