"""The correctness gate of the GPU benchmark: a fast variant's samples from fixed noise against eager float32.

Metric: the relative L2 distance ||x_fast - x_ref|| / ||x_ref|| over the first ``rows`` samples taken
together, computed in float64 on the host; NaN or inf never passes.

Tolerance, derived rather than fitted (``tolerance(precision, nfe) = PER_EVALUATION[precision] * sqrt(nfe)``):

- One evaluation in bf16. A product rounds both operands to 8 significant bits (unit roundoff
  u = 2^-8 = 3.9e-3) and accumulates in float32, so it carries a relative error of about 2u = 7.8e-3;
  that is the per-evaluation allowance (one evaluation of the full DDPM U-Net measured 1.1e-2 on a CPU:
  layer errors add up with depth, and the sqrt(N) below leaves room for that).
- One evaluation in float32 differs between two correct runs by the order of reductions and by the
  convolution algorithm (cuDNN's benchmark mode may pick Winograd or FFT kernels, which give up about
  ten of float32's 24 bits): 2 x 2^-14 = 1.2e-4.
- N evaluations. DDIM's sample is x_T carried through N steps, each adding a multiple of one evaluation
  (in y = x / alpha, y_0 = y_T - sum_k Delta_k eps_k). Independent errors of N evaluations add like a
  random walk: sqrt(N) times one evaluation's error, measured against one evaluation's size. Measured
  against the sample, which sums the evaluations too, the error stays near one evaluation's; the
  tolerance takes the first, generous reading.

So for DDIM-50: 2^-7 sqrt(50) = 5.5e-2 in bf16 and 8.6e-4 in float32 (measured on a CPU for the full U-Net
in bf16: 1.3e-3). A wrong variant (a layout or timestep bug, an unwritten output) lands at order 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["UNIT_ROUNDOFF", "PER_EVALUATION", "tolerance", "agreement", "METRIC", "gate_step"]

UNIT_ROUNDOFF = {"bf16": 2.0**-8, "fp32": 2.0**-14}  # fp32: what Winograd and FFT convolutions keep of 24 bits
PER_EVALUATION = {p: 2 * u for p, u in UNIT_ROUNDOFF.items()}
METRIC = "relative L2 distance ||x - x_ref|| / ||x_ref|| over the compared samples together, float64"


def tolerance(precision: str, nfe: int) -> float:
    """The stated bound on the relative L2 distance from eager float32 after ``nfe`` evaluations in ``precision``."""
    if precision not in PER_EVALUATION:
        raise ValueError(f"precision must be one of {', '.join(PER_EVALUATION)}, got {precision!r}")
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ValueError(f"nfe must be a positive int, got {nfe!r}")
    return PER_EVALUATION[precision] * math.sqrt(nfe)


def agreement(out: torch.Tensor, ref: torch.Tensor, tol: float) -> dict:
    """``out`` against ``ref``: relative L2 distance, largest absolute difference, the tolerance and the verdict."""
    if out.shape != ref.shape:
        raise ValueError(f"out and ref must have the same shape, got {tuple(out.shape)} and {tuple(ref.shape)}")
    a, b = out.detach().double().cpu(), ref.detach().double().cpu()
    denom = float(b.norm())
    diff = a - b
    rel = float(diff.norm()) / denom if denom > 0 else math.inf
    max_abs = float(diff.abs().max()) if diff.numel() else 0.0
    ok = math.isfinite(rel) and rel <= tol
    return {"rel_l2": rel if math.isfinite(rel) else None, "max_abs": max_abs if math.isfinite(max_abs) else None,
            "tolerance": tol, "passed": ok}


def gate_step(runner: Any, step: Any) -> tuple[str, str | None]:
    """The plan's gate: the first samples of every headline run kept by ``runner`` (a ``gpu_run.Runner``)
    against one eager float32 run on the same x_T rows; the verdict is the fastest run's."""
    from . import gpu_plan as P
    from . import gpu_variants as V

    fast = runner.fastest()
    if fast is None:
        return "skipped", "no run of the headline to check"
    why = None if runner.gate_ref is not None else runner.allow(step, runner.reserved_estimate(step))
    if why:  # (with the reference already computed, a gate costs a few norms: it runs whatever is left)
        return "skipped", why
    info = runner.case_info(P.HEADLINE)
    rows_ref = runner.s.gate_rows
    if runner.gate_ref is None:  # one reference for every gate of the run
        with torch.no_grad(), V.precision(V.variant("fp32")):
            runner.gate_ref = runner.subject(P.HEADLINE, "fp32", rows_ref).full().float().cpu()
        runner.k.shapes.add((P.HEADLINE, "fp32", rows_ref))
    ref = runner.gate_ref
    checks = []
    for (variant, batch), rows in sorted(runner.samples.items()):
        prec = V.variant(variant).precision_class
        k = min(len(rows), len(ref))
        checks.append({"variant": variant, "batch": batch, "precision": prec, "rows": k,
                       **agreement(rows[:k], ref[:k], tolerance(prec, info["nfe"]))})
    verdict = next(c for c in checks if (c["variant"], c["batch"]) == (fast["variant"], fast["batch"]))
    runner.record.set("gate", {
        "case": P.HEADLINE, "variant": fast["variant"], "batch": fast["batch"], "rows": verdict["rows"], "nfe": info["nfe"],
        "reference": f"eager float32 at batch {rows_ref} from the same x_T rows (row i drawn from seed i)",
        "metric": METRIC, "per_evaluation": PER_EVALUATION[verdict["precision"]],
        "derivation": "tolerance = per-evaluation rounding error x sqrt(NFE); see diffcheck.bench.gpu_gate",
        "rel_l2": verdict["rel_l2"], "max_abs": verdict["max_abs"], "tolerance": verdict["tolerance"],
        "passed": verdict["passed"], "checks": checks})
    return "done", None if verdict["passed"] else f"the fastest variant is off by {verdict['rel_l2']} > {verdict['tolerance']:.3g}"
