"""The GPU benchmark's plan run dry on the CPU (tiny configurations): every field of the document checked for
presence, type and consistency, every figure recomputed from the raw times; the budget rule, a kill mid-run
and the hard stop."""

from __future__ import annotations

import json
import math
import statistics
import time

import pytest
import torch

from diffcheck import nets
from diffcheck.bench import gpu
from diffcheck.bench import gpu_cases as C
from diffcheck.bench import gpu_plan as P
from diffcheck.bench.gpu_run import Runner

# written out here, not imported: the document's shape is what a reader of the JSON relies on
TOP = {"benchmark", "schema", "configuration", "dry_run", "complete", "stopped", "environment", "timer", "settings", "budget",
       "ceiling", "cases", "diffusers", "steps", "runs", "gate", "profile", "summary"}
ROW = {"step", "priority", "impl", "case", "variant", "precision", "channels_last", "compiled", "cuda_graphs", "batch", "nfe",
       "status", "reason", "estimate_s", "started_s", "elapsed_s", "batch_choice", "warmup_first_call_s", "warmup_s_per_nfe",
       "compile_s", "graph_breaks", "cudagraph_skips", "repeats", "seconds", "median_s", "spread", "images_per_s", "ms_per_nfe",
       "flops_per_image_per_nfe", "tflops", "fraction_of_ceiling", "peak_memory_bytes", "finite"}
FIGURES = {"repeats", "seconds", "median_s", "spread", "images_per_s", "ms_per_nfe", "flops_per_image_per_nfe", "tflops",
           "fraction_of_ceiling", "finite", "warmup_first_call_s", "warmup_s_per_nfe"}
STEP = {"step", "priority", "kind", "case", "variant", "status", "reason", "estimate_s", "started_s", "elapsed_s"}


def num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    out = tmp_path_factory.mktemp("dry") / "dry.json"
    start = time.perf_counter()
    doc = gpu.run(gpu.Options(device="cpu", tiny=True, budget_s=300.0, progress=False), out)
    return doc, out, time.perf_counter() - start


def test_document_on_disk_is_the_result_with_every_top_level_field(dry):
    doc, out, seconds = dry
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    assert set(doc) == TOP
    assert doc["schema"] == 2 and doc["configuration"] == "tiny" and doc["dry_run"] is True
    assert doc["complete"] is True and doc["stopped"] is None and doc["timer"] == "perf_counter"
    env = doc["environment"]
    assert {"device", "device_name", "driver", "torch", "python", "date", "cuda", "cudnn", "host_cpu", "cpu_threads"} <= set(env)
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and env["cuda"] is None
    st = doc["settings"]
    assert st["budget_s"] == 300.0 and st["hard_stop_s"] == 300.0 + gpu.HARD_STOP_GRACE_S and st["user_network"] is False
    for key in ("safety", "reserve_s", "run_cap_s", "max_run_s", "target_s"):
        assert num(st[key]) and st[key] > 0
    assert st["sweep_batches"] == list(P.TINY.sweep_batches)
    b = doc["budget"]
    assert b["total_s"] == 300.0 and 0 < b["spent_s"] < seconds and math.isclose(b["left_s"], 300.0 - b["spent_s"])


def test_ceiling_follows_from_its_times(dry):
    c = dry[0]["ceiling"]
    for key, dtype in (("matmul_bf16", "bfloat16"), ("matmul_fp32", "float32")):
        m = c[key]
        assert m["dtype"] == dtype and m["n"] == P.TINY.ceiling_n and m["repeats"] >= 1
        assert math.isclose(m["tflops"], 2 * m["n"] ** 3 / m["median_s"] / 1e12, rel_tol=1e-12)
    assert math.isclose(c["copy"]["gbps"], 2 * c["copy"]["bytes"] / c["copy"]["median_s"] / 1e9, rel_tol=1e-12)
    assert num(c["seconds"]) and c["seconds"] > 0


def test_cases_hold_their_counts(dry):
    doc = dry[0]
    planned = {s.case for s in P.plan() if s.case}
    assert set(doc["cases"]) == planned
    for cid, info in doc["cases"].items():
        c = C.case(cid)
        fam = C.build_family(c.family, tiny=True, device="cpu")
        assert info["nfe"] == C.nfe(c, fam, C.grid(c, fam)) and info["steps"] == c.quick_steps
        assert info["family"] == c.family and info["sampler"] == c.sampler and info["deterministic"] == c.deterministic
        assert info["parameters"] == fam.parameters and info["flops_counted_at_batch"] == 2
        assert info["flops_per_image_per_nfe"] > 0 and info["modules"] == sum(1 for n in fam.nets.values() for _ in n.modules())


def test_steps_log_every_step_of_the_plan_in_order(dry):
    doc = dry[0]
    steps = doc["steps"]
    assert [e["step"] for e in steps] == [s.name for s in P.plan()]
    starts = [e["started_s"] for e in steps]
    assert starts == sorted(starts)
    for e, s in zip(steps, P.plan()):
        assert set(e) == STEP and (e["priority"], e["kind"], e["case"], e["variant"]) == (s.priority, s.kind, s.case, s.variant)
        assert e["status"] in ("done", "skipped") and num(e["elapsed_s"]) and num(e["estimate_s"]) and e["estimate_s"] >= 0
        assert (e["reason"] is None) == (e["status"] == "done")
    assert sum(e["elapsed_s"] for e in steps) <= doc["budget"]["spent_s"]


def test_every_row_has_every_field_and_its_figures_follow_from_the_raw_times(dry):
    doc = dry[0]
    ceiling = doc["ceiling"]["matmul_bf16"]["tflops"]
    names = {s.name: s for s in P.plan()}
    ok = [r for r in doc["runs"] if r["status"] == "ok"]
    assert len(ok) >= 10
    for r in doc["runs"]:
        assert set(r) == ROW
        s = names[r["step"]]
        assert r["priority"] == s.priority and r["case"] == s.case and r["status"] in ("ok", "skipped", "failed", "oom")
        assert r["impl"] == ("diffusers" if s.kind == "diffusers" else "diffcheck")
        assert r["variant"] == (f"diffusers {s.variant}" if s.kind == "diffusers" else s.variant)
        assert r["precision"] == ("fp32" if s.variant == "fp32" else "bf16")
        assert r["compiled"] == ("compile" in s.variant) and r["cuda_graphs"] == s.variant.endswith("graphs")
        assert r["channels_last"] == ("+cl" in s.variant) and num(r["started_s"])
        if r["status"] != "ok":
            assert isinstance(r["reason"], str) and r["reason"]
            assert all(r[k] is None for k in FIGURES - {"warmup_first_call_s", "warmup_s_per_nfe"})
            continue
        flops = (doc["diffusers"] if r["impl"] == "diffusers" else doc["cases"][r["case"]])["flops_per_image_per_nfe"]
        med = statistics.median(r["seconds"])
        assert r["reason"] is None and r["nfe"] == doc["cases"][r["case"]]["nfe"] and r["finite"] is True
        assert r["repeats"] == len(r["seconds"]) >= 1 and all(num(t) and t > 0 for t in r["seconds"]) and r["median_s"] == med
        assert math.isclose(r["spread"], (max(r["seconds"]) - min(r["seconds"])) / med, rel_tol=1e-12)
        assert math.isclose(r["images_per_s"], r["batch"] / med, rel_tol=1e-12)
        assert math.isclose(r["ms_per_nfe"], 1e3 * med / r["nfe"], rel_tol=1e-12)
        assert r["flops_per_image_per_nfe"] == flops
        assert math.isclose(r["tflops"], flops * r["nfe"] * r["batch"] / med / 1e12, rel_tol=1e-12)
        assert math.isclose(r["fraction_of_ceiling"], r["tflops"] / ceiling, rel_tol=1e-12)
        assert r["peak_memory_bytes"] is None  # no allocator statistics off CUDA
        assert num(r["warmup_first_call_s"]) and num(r["warmup_s_per_nfe"]) and num(r["estimate_s"]) and num(r["elapsed_s"])
        assert r["compile_s"] is None and r["graph_breaks"] is None and r["cudagraph_skips"] is None  # nothing compiled


def test_no_row_started_beyond_its_estimate(dry):
    doc = dry[0]
    st = doc["settings"]
    for r in (r for r in doc["runs"] if r["status"] == "ok"):
        assert r["estimate_s"] * st["safety"] <= st["budget_s"] - r["started_s"] - st["reserve_s"]


def test_sweep_batches_best_batch_and_the_batches_that_follow_it(dry):
    doc = dry[0]
    head = [r for r in doc["runs"] if r["step"] == f"{P.HEADLINE} {P.FAST_EAGER} sweep"]
    assert [r["batch"] for r in head] == list(P.TINY.sweep_batches[: len(head)]) and all(r["batch_choice"] == "sweep" for r in head)
    ips = [r["images_per_s"] for r in head]
    for i in range(2, len(ips)):  # the sweep went on only past batches that gained 3%
        assert ips[i - 1] >= 1.03 * max(ips[: i - 1])
    if len(head) < len(P.TINY.sweep_batches):
        assert ips[-1] < 1.03 * max(ips[:-1])
    best = head[ips.index(max(ips))]["batch"]
    for r in doc["runs"]:
        if r["step"].endswith(("diffusers bf16", "diffusers bf16w")) or "compile" in r["step"] and r["batch"] is not None:
            assert r["batch"] == best
    fp32 = next(r for r in doc["runs"] if r["step"] == f"{P.HEADLINE} fp32")
    choice = fp32["batch_choice"]
    assert fp32["batch"] <= best and set(choice["probes"]) == {str(b) for b in P.TINY.probe_batches}
    assert choice["predicted_run_s"] <= max(choice["cap_s"], P.TINY.max_run_s)
    for r in (r for r in doc["runs"] if r["priority"] == 4):
        assert r["status"] == "ok" and r["batch"] in P.TINY.fit_batches and r["variant"] == P.FAST_EAGER


def test_compiled_variants_are_skipped_on_a_cpu_with_the_reason(dry):
    doc = dry[0]
    rows = {r["variant"]: r for r in doc["runs"] if r["compiled"]}
    assert "inductor" in rows["bf16+cl+compile"]["reason"] and "CUDA graphs" in rows["bf16+cl+compile+graphs"]["reason"]
    assert all(c["status"] == "skipped" and c["compile_s"] is None for c in doc["summary"]["compile"])


def test_gate_compares_the_fastest_variant_with_the_stated_tolerance(dry):
    doc = dry[0]
    g = doc["gate"]
    head = [r for r in doc["runs"] if r["case"] == P.HEADLINE and r["impl"] == "diffcheck" and r["status"] == "ok"]
    fastest = max(head, key=lambda r: r["images_per_s"])
    assert (g["variant"], g["batch"], g["case"], g["nfe"]) == (fastest["variant"], fastest["batch"], P.HEADLINE, fastest["nfe"])
    assert {(c["variant"], c["batch"]) for c in g["checks"]} == {(r["variant"], r["batch"]) for r in head}
    per = {"bf16": 2 * 2.0**-8, "fp32": 2 * 2.0**-14}  # two roundings at bf16's 8 bits; 10 bits kept of float32's 24
    for c in g["checks"]:
        assert math.isclose(c["tolerance"], per[c["precision"]] * math.sqrt(g["nfe"]), rel_tol=1e-12)
        assert c["passed"] is (c["rel_l2"] <= c["tolerance"]) and c["passed"] and 0 <= c["max_abs"]
        assert c["rows"] == min(c["batch"], P.TINY.gate_rows)
    assert g["passed"] and g["rel_l2"] == next(c["rel_l2"] for c in g["checks"] if (c["variant"], c["batch"]) == (g["variant"], g["batch"]))
    assert "relative L2" in g["metric"] and "sqrt(NFE)" in g["derivation"]


def test_profile_exactly_when_the_headline_is_under_35_percent(dry):
    doc = dry[0]
    g = doc["gate"]
    fastest = next(r for r in doc["runs"] if (r["variant"], r["batch"], r["case"]) == (g["variant"], g["batch"], P.HEADLINE))
    prof = doc["profile"]
    assert (prof is not None) == (fastest["fraction_of_ceiling"] < 0.35)
    if prof is not None:
        assert prof["unit"] == "operator" and prof["top"] and (prof["variant"], prof["batch"]) == (g["variant"], g["batch"])
        assert math.isclose(sum(prof["by_class_s"].values()), prof["busy_s"], rel_tol=1e-9)


def test_summary_ratios_targets_and_budget_follow_from_the_rows(dry):
    doc = dry[0]
    s = doc["summary"]
    ok = [r for r in doc["runs"] if r["status"] == "ok"]
    assert len(s["rows"]) == len(ok) and s["ceiling_tflops"] == doc["ceiling"]["matmul_bf16"]["tflops"]
    theirs = [r for r in ok if r["impl"] == "diffusers"]
    assert {r["variant"] for r in theirs} == {"diffusers bf16", "diffusers bf16w", "diffusers fp32"}
    for q, r in zip(s["rows"], ok):
        assert (q["case"], q["variant"], q["batch"], q["images_per_s"]) == (r["case"], r["variant"], r["batch"], r["images_per_s"])
        same = [d for d in theirs if (d["case"], d["batch"], d["nfe"], d["precision"]) == (r["case"], r["batch"], r["nfe"], r["precision"])]
        if r["impl"] == "diffcheck" and same:
            best = max(same, key=lambda d: d["images_per_s"])
            assert math.isclose(q["ratio_to_diffusers"], r["images_per_s"] / best["images_per_s"]) and q["diffusers_variant"] == best["variant"]
        else:
            assert q["ratio_to_diffusers"] is None
    for cid, b in s["best"].items():
        assert b["images_per_s"] == max(r["images_per_s"] for r in ok if r["case"] == cid and r["impl"] == "diffcheck")
    h = s["headline"]
    assert h["targets_apply"] is False and h["fastest"] == s["best"][P.HEADLINE]
    for t in h["targets"].values():
        if t.get("value") is not None and "target" in t:
            assert t["met"] is (t["value"] >= t["target"])
    assert h["targets"]["gate"]["met"] is doc["gate"]["passed"]
    by = s["budget"]["by_priority"]
    assert set(by) == {str(p) for p in range(1, 6)}
    assert math.isclose(sum(by.values()), sum(e["elapsed_s"] for e in doc["steps"]))


def test_report_and_plot_written_beside_the_json(dry):
    doc, out, _ = dry
    md = out.with_suffix(".md").read_text()
    assert "| case | variant | batch | NFE | images/s |" in md and "### Correctness gate" in md and "### Plan" in md
    assert md.count(f"| {P.HEADLINE} |") >= sum(1 for r in doc["runs"] if r["case"] == P.HEADLINE)
    assert out.with_suffix(".png").stat().st_size > 10_000


# -- the budget, a kill, the hard stop ---------------------------------------------------------------------


def test_a_step_whose_estimate_does_not_fit_never_starts(tmp_path, monkeypatch):
    # building any network but the tiny DDPM U-Net is estimated far over the budget: those steps are skipped,
    # unstarted, with the estimate and the reason; the headline runs
    build = P.build_seconds
    small = C.family_parameters("ddpm", tiny=True)
    monkeypatch.setattr(P, "build_seconds", lambda k, s, n: build(k, s, n) if n == small else 10_000.0)
    doc = gpu.run(gpu.Options(device="cpu", tiny=True, budget_s=200.0, progress=False, diffusers=False), tmp_path / "b.json")
    for e in (e for e in doc["steps"] if e["priority"] == 4 and not e["case"].startswith("ddpm/")):
        assert e["status"] == "skipped" and e["reason"].startswith("budget: estimated 10000.0 s") and e["estimate_s"] == 10_000.0
        assert e["case"] not in doc["cases"]
    assert next(e for e in doc["steps"] if e["case"] == "ddpm/ancestral1000")["status"] == "done"
    assert any(r["status"] == "ok" and r["variant"] == P.FAST_EAGER for r in doc["runs"])
    # and a budget that holds nothing: every step is skipped, none fails
    doc = gpu.run(gpu.Options(device="cpu", tiny=True, budget_s=0.4, progress=False, diffusers=False), tmp_path / "c.json")
    assert doc["complete"] and {e["status"] for e in doc["steps"]} == {"skipped"} and doc["ceiling"] is None
    assert not [r for r in doc["runs"] if r["status"] == "ok"]


def test_a_kill_keeps_what_was_done(tmp_path, monkeypatch):
    def killed(self, step):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "fit", killed)  # the first "fit" step (fp32) is interrupted
    out = tmp_path / "k.json"
    mine = nets.build("ddpm_cifar10", seed=7, **nets.tiny_overrides("ddpm_cifar10"))  # a user's network, say loaded
    with pytest.raises(KeyboardInterrupt):
        gpu.run(gpu.Options(device="cpu", tiny=True, budget_s=200.0, progress=False, diffusers=False), out, ddpm_net=mine)
    doc = json.loads(out.read_text())
    assert doc["settings"]["user_network"] is True and "(user-supplied)" in doc["cases"][P.HEADLINE]["network"]
    assert doc["complete"] is False and doc["summary"] is None
    status = {e["step"]: e["status"] for e in doc["steps"]}
    assert status["ceiling"] == "done" and status[f"{P.HEADLINE} {P.FAST_EAGER} sweep"] == "done"
    assert status[f"{P.HEADLINE} gate"] == "pending"
    assert [r for r in doc["runs"] if r["status"] == "ok"] and doc["ceiling"]["matmul_bf16"]["tflops"] > 0


def test_hard_stop_closes_the_document_while_a_step_overruns(tmp_path, monkeypatch):
    codes = []

    def stuck(self, step):
        time.sleep(2.0)
        return "done", None

    monkeypatch.setattr(Runner, "ceiling", stuck)
    out = tmp_path / "h.json"
    doc = gpu.run(gpu.Options(device="cpu", tiny=True, budget_s=0.5, hard_stop_s=0.8, progress=False, diffusers=False), out,
                  exit_fn=codes.append)
    assert codes == [3]
    saved = json.loads(out.read_text())
    assert saved["complete"] is False and saved["stopped"].startswith("hard stop at 0.8 s: step 'ceiling'")
    assert {e["status"] for e in saved["steps"]} == {"not reached"} and saved["summary"]["rows"] == []
    assert doc["stopped"] == saved["stopped"] and out.with_suffix(".md").exists()


def test_a_user_network_stands_in_for_the_ddpm_unet_with_its_weights():
    net = nets.build("ddpm_cifar10", seed=7, **nets.tiny_overrides("ddpm_cifar10"))
    w = next(p for p in net.parameters() if p.ndim == 4)
    with torch.no_grad():
        w.zero_()  # a reference network would have this redrawn; a user's weights are kept
    fam = C.build_family("ddpm", tiny=True, device="cpu", net=net)
    assert fam.nets["net"] is net and not net.training and not any(p.requires_grad for p in net.parameters())
    assert not w.any() and C.family_parameters("ddpm", tiny=True, net=net) == fam.parameters["net"]
    with pytest.raises(TypeError, match="net must be a diffcheck network"):
        gpu.run(gpu.Options(device="cpu", tiny=True), ddpm_net=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="predict eps"):
        C.build_family("ddpm", tiny=True, device="cpu", net=nets.build("ncsnv2_cifar10", **nets.tiny_overrides("ncsnv2_cifar10")))
    with pytest.raises(ValueError, match="DDPM family's network only"):
        C.build_family("adm", tiny=True, device="cpu", net=net)


@pytest.mark.slow
def test_compiled_variant_through_dynamo_on_a_cpu(tmp_path):
    doc = gpu.run(gpu.Options(device="cpu", tiny=True, budget_s=900.0, cpu_compile=True, progress=False), tmp_path / "c.json")
    row = next(r for r in doc["runs"] if r["variant"] == "bf16+cl+compile")
    assert row["status"] == "ok", row["reason"]
    assert num(row["compile_s"]) and row["compile_s"] >= 0 and row["graph_breaks"] == 0 and row["cudagraph_skips"] == 0
    check = next(c for c in doc["gate"]["checks"] if c["variant"] == "bf16+cl+compile")
    assert check["passed"]
    comp = next(c for c in doc["summary"]["compile"] if c["variant"] == "bf16+cl+compile")
    assert comp["status"] == "ok" and comp["compile_s"] == row["compile_s"]
    dif = next(r for r in doc["runs"] if r["variant"] == "diffusers bf16w+cl+compile")
    assert dif["status"] == "ok" or "not installed" in dif["reason"]
