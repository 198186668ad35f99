"""The GPU benchmark on a CUDA device (marked ``gpu``: skipped without one). The tiny plan exercises every step
there, compiled variants and CUDA graphs included; the full DDPM U-Net's variants meet the gate's tolerance."""

from __future__ import annotations

import json
import math

import pytest
import torch

from diffcheck import nets
from diffcheck.bench import gpu
from diffcheck.bench import gpu_cases as C
from diffcheck.bench import gpu_gate as G
from diffcheck.bench import gpu_timing as T
from diffcheck.bench import gpu_variants as V

pytestmark = pytest.mark.gpu


def test_tiny_plan_on_cuda_runs_every_step(tmp_path):
    out = tmp_path / "g.json"
    doc = gpu.run(gpu.Options(device="cuda", tiny=True, budget_s=300.0, progress=False), out)
    assert json.loads(out.read_text())["complete"] is True
    assert doc["timer"] == "cuda_events" and doc["environment"]["driver"] and doc["dry_run"] is False
    c = doc["ceiling"]
    assert c["matmul_bf16"]["tflops"] > c["matmul_fp32"]["tflops"] > 0 and c["copy"]["gbps"] > 0
    assert not [r for r in doc["runs"] if r["status"] in ("failed", "oom")], [r["reason"] for r in doc["runs"] if r["status"] != "ok"]
    ok = [r for r in doc["runs"] if r["status"] == "ok"]
    assert all(r["peak_memory_bytes"] > 0 and r["finite"] for r in ok)
    compiled = {r["variant"]: r for r in ok if r["compiled"] and r["impl"] == "diffcheck"}
    assert set(compiled) == {"bf16+cl+compile", "bf16+cl+compile+graphs"}
    assert all(r["compile_s"] >= 0 and r["graph_breaks"] == 0 for r in compiled.values())
    assert compiled["bf16+cl+compile+graphs"]["cudagraph_skips"] == 0  # the CUDA graphs are really replayed
    assert doc["gate"]["passed"] and all(ch["passed"] for ch in doc["gate"]["checks"])
    for r in ok:
        assert math.isclose(r["tflops"], r["flops_per_image_per_nfe"] * r["nfe"] * r["batch"] / r["median_s"] / 1e12, rel_tol=1e-12)


def test_full_ddpm_unet_variants_meet_the_gate_and_fp32_matches_float64():
    fam = C.build_family("ddpm", tiny=False, device="cuda")
    c = C.Case("ddpm/ddim10", "ddpm", "ddim", 10, 10, True, "DDIM-10")
    g = C.grid(c, fam)
    x = C.initial_noise(fam, 4)
    run, _ = C.sampler_fn(c, fam, fam.nets)
    with torch.no_grad(), V.precision(V.variant("fp32")):
        ref = run(x, g, 0)
    net64 = nets.build("ddpm_cifar10", seed=0)
    net64.load_state_dict({k: v.cpu() for k, v in fam.nets["net"].state_dict().items()})
    cpu = C.Family("ddpm", False, torch.device("cpu"), fam.process, {"net": net64.double().eval().requires_grad_(False)},
                   fam.data_shape, None)
    run64, _ = C.sampler_fn(c, cpu, cpu.nets)
    with torch.no_grad():
        exact = run64(x.cpu().double(), g, 0)
    assert G.agreement(ref, exact, G.tolerance("fp32", 10))["passed"]
    for v in V.VARIANTS:
        prepared = {k: V.prepare(n, v, "cuda") for k, n in fam.nets.items()}
        run_v, _ = C.sampler_fn(c, fam, prepared)
        with torch.no_grad(), V.precision(v):
            out = run_v(x, g, 0)
        a = G.agreement(out, ref, G.tolerance(v.precision_class, 10))
        assert a["passed"], (v.name, a)


def test_sync_counter_sees_a_synchronisation():
    dev = torch.device("cuda")
    x = torch.ones(1024, device=dev)
    assert T.count_syncs(lambda: (x * 2).sum(), dev) == 0
    assert T.count_syncs(lambda: float((x * 2).sum()), dev) >= 1
