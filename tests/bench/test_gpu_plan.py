"""The plan and its estimates: the priority order the issue asks for, estimates that are conservative in the
stated ways (linear scaling up, none down), the batch rule, repeats and the budget check."""

from __future__ import annotations

import math

import pytest

from diffcheck.bench import gpu_plan as P

S = P.FULL


def test_plan_runs_in_priority_order_with_the_headline_first():
    steps = P.plan()
    assert [s.priority for s in steps] == sorted(s.priority for s in steps)
    assert steps[0].kind == "ceiling" and steps[0].priority == 1
    two = [(s.kind, s.variant, s.batch) for s in steps if s.priority == 2]
    assert two[0] == ("sweep", P.FAST_EAGER, "sweep")
    assert ("measure", "fp32", "fit") in two and ("diffusers", "bf16", "best") in two
    assert [v for k, v, _ in two if k == "measure" and v.endswith(("compile", "graphs"))] == ["bf16+cl+compile", "bf16+cl+compile+graphs"]
    assert [s.kind for s in steps if s.priority == 3] == ["gate", "profile"]
    assert {s.case for s in steps if s.priority == 4} == {"ncsnpp/pc1000", "adm/guided_ddim50", "ncsnv2/annealed_langevin",
                                                           "ddpm/ancestral1000"}
    assert all(s.case == P.HEADLINE for s in steps if s.priority in (2, 3))
    assert len({s.name for s in steps}) == len(steps)
    assert not [s for s in P.plan(diffusers=False) if s.kind == "diffusers"]


def test_seconds_per_nfe_scale_linearly_up_and_never_improve_down():
    k = P.Knowledge()
    k.learn("c", "bf16+cl", 64, 0.010)
    assert P.nfe_seconds(k, S, "c", "bf16+cl", 64) == 0.010
    assert math.isclose(P.nfe_seconds(k, S, "c", "bf16+cl", 256), 0.040)
    assert P.nfe_seconds(k, S, "c", "bf16+cl", 16) == 0.010  # a smaller batch is not assumed faster
    k.learn("c", "bf16+cl", 256, 0.030)
    assert math.isclose(P.nfe_seconds(k, S, "c", "bf16+cl", 512), 0.060)  # from the nearest measured batch below
    assert P.nfe_seconds(k, S, "c", "bf16+cl", 128) == pytest.approx(0.020)
    with pytest.raises(ValueError, match="s_per_nfe"):
        k.learn("c", "fp32", 8, float("nan"))


def test_float32_is_estimated_from_bf16_by_the_measured_ceilings():
    k = P.Knowledge(ceiling_tflops={"bf16": 800.0, "fp32": 40.0})
    k.learn("c", "bf16+cl", 64, 0.010)
    assert math.isclose(P.nfe_seconds(k, S, "c", "fp32", 64), 0.010 * 20.0)
    k.ceiling_tflops = {"bf16": 0.5, "fp32": 1.0}  # a CPU without bf16 units: float32 is not assumed faster
    assert P.nfe_seconds(k, S, "c", "fp32", 64) == 0.010
    assert P.nfe_seconds(k, S, "c", "bf16+cl+compile", 64) == 0.010  # a compiled variant: at worst the eager one


def test_prior_from_flops_before_anything_is_measured():
    k = P.Knowledge(ceiling_tflops={"bf16": 800.0, "fp32": 50.0})
    got = P.nfe_seconds(k, S, "c", "bf16+cl", 100, flops_per_image=1e10, modules=200)
    assert math.isclose(got, 1e10 * 100 / (S.prior_tflops * 1e12) + 200 * S.prior_launch_s)
    with pytest.raises(ValueError, match="flops_per_image"):
        P.nfe_seconds(k, S, "c", "bf16+cl", 100)


def test_measure_estimate_charges_build_setup_compile_warmup_and_runs():
    k = P.Knowledge()
    est = P.measure_estimate(k, S, case="c", variant="v", batch=8, nfe=50, short_nfe=4, compiled=True, repeats=2,
                             per_nfe=0.01, build_parameters=10**6, warmup_calls=3)
    assert est["build_s"] == S.prior_build_s and est["setup_s"] == S.prior_setup_s and est["compile_s"] == S.prior_compile_s
    assert math.isclose(est["warmup_s"], 3 * 4 * 0.01) and math.isclose(est["timed_s"], 2 * 50 * 0.01)
    assert math.isclose(est["total_s"], sum(v for key, v in est.items() if key != "total_s"))
    k.builds.append((10**6, 2.0))
    k.setup_s.append(1.5)
    k.compile_s["v"] = 40.0
    est = P.measure_estimate(k, S, case="c", variant="v", batch=8, nfe=50, short_nfe=4, compiled=True, repeats=1,
                             per_nfe=0.01, build_parameters=3 * 10**6)
    assert est["build_s"] == pytest.approx(12.0) and est["setup_s"] == 3.0 and est["compile_s"] == 50.0
    k.learn("c", "v", 8, 0.01)  # this shape is warm: no set-up, no compilation
    est = P.measure_estimate(k, S, case="c", variant="v", batch=8, nfe=50, short_nfe=4, compiled=True, repeats=1, per_nfe=0.01)
    assert est["setup_s"] == 0.0 and est["compile_s"] == 0.0 and est["build_s"] == 0.0


def test_choose_batch_fits_floor_and_slope_through_two_probes():
    # t(b) = 0.002 + 0.0001 b per NFE: run(b) = 50 t(b); cap max(8, 1.5 * 50 * 0.002) = 8 s -> b <= 1580
    pts = {16: 0.002 + 0.0016, 64: 0.002 + 0.0064}
    b, m = P.choose_batch(pts, 50, S.fit_batches, S)
    assert m["floor_s_per_nfe"] == pytest.approx(0.002) and m["s_per_image_nfe"] == pytest.approx(1e-4)
    assert b == 1024 and m["predicted_run_s"] == pytest.approx(50 * (0.002 + 0.1024))
    # a launch-bound sampler: 2000 NFE at a 12 ms floor -> the cap rises to 1.5 x 24 s = 36 s
    pts = {16: 0.012 + 16 * 1.45e-4, 64: 0.012 + 64 * 1.45e-4}
    b, m = P.choose_batch(pts, 2000, S.fit_batches, S)
    assert m["cap_s"] == pytest.approx(36.0) and b == 32 and m["predicted_run_s"] <= 36.0
    # nothing under the cap: the smallest candidate if under max_run_s, else None
    b, m = P.choose_batch({8: 0.05}, 1000, S.fit_batches, S)
    assert b is None and m["predicted_run_s"] == pytest.approx(50.0)  # one probe: t(b) = b x 0.05 / 8, 50 s > 45 s
    b, m = P.choose_batch({8: 0.02}, 1000, S.fit_batches, S)
    assert b == 8 and m["predicted_run_s"] == pytest.approx(20.0)  # over the 8 s cap, under the 45 s limit
    with pytest.raises(ValueError, match="points"):
        P.choose_batch({}, 10, S.fit_batches, S)


def test_repeats_aim_at_the_target_and_fit_the_budget():
    assert P.repeats_for(1.0, 100.0, S) == 4  # target 4 s
    assert P.repeats_for(0.01, 100.0, S) == S.max_repeats
    assert P.repeats_for(6.0, 100.0, S) == S.min_repeats
    assert P.repeats_for(6.0, 10.0, S) == 1  # 2 x 6 x 1.3 > 10
    assert P.repeats_for(6.0, 7.0, S) == 0
    assert P.repeats_for(6.0, 100.0, S, min_repeats=1) == 1


def test_sweep_ends_at_the_first_batch_without_a_three_percent_gain():
    assert P.sweep_goes_on([100.0]) and P.sweep_goes_on([100.0, 200.0])
    assert P.sweep_goes_on([100.0, 200.0, 206.0])
    assert not P.sweep_goes_on([100.0, 200.0, 205.0])
    assert not P.sweep_goes_on([100.0, 200.0, 150.0])


def test_budget_fits_with_safety_and_reserve():
    now = [0.0]
    b = P.Budget(100.0, clock=lambda: now[0])
    now[0] = 40.0
    assert b.elapsed() == 40.0 and b.left() == 60.0
    assert b.fits(30.0, reserve_s=20.0, safety=1.3)  # 39 <= 40
    assert not b.fits(31.0, reserve_s=20.0, safety=1.3)  # 40.3 > 40
    assert P.Budget(None).left() == math.inf
    with pytest.raises(ValueError, match="total_s"):
        P.Budget(-1.0)
