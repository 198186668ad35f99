"""The GPU benchmark harness: a tiny CPU run with every figure recomputed from the raw times, the counts it
divides by checked independently (evaluations by hooks, FLOPs on the meta device, diffusers' U-Net against
ours), the agreement gate failing on wrong outputs, and the CUDA tests a GPU session runs."""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffcheck import nets
from diffcheck.bench import gpu
from diffcheck.bench import gpu_cases as C
from diffcheck.bench import gpu_diffusers as D
from diffcheck.bench import gpu_report as R
from diffcheck.bench import gpu_timing as T
from diffcheck.bench import gpu_variants as V
from diffcheck.guidance import ClassifierGuided
from diffcheck.nets.wrap import as_classifier, wrap_net

CPU = torch.device("cpu")
QUICK_CASES = ("ddpm/ddim50", "ddpm/ancestral250", "ncsnpp/heun")
QUICK_VARIANTS = ("fp32", "tf32", "bf16+cl", "bf16+cl+compile+graphs")
needs_diffusers = pytest.mark.skipif(not D.available(), reason="diffusers is not installed (optional dependency)")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    opts = gpu.Options(device="cpu", quick=True, cases=QUICK_CASES, variants=QUICK_VARIANTS, max_repeats=2, progress=False)
    return gpu.run(opts, out), out


# -- the tiny CPU run --------------------------------------------------------------------------------


def test_json_on_disk_is_the_result_and_names_the_machine(quick):
    res, out = quick
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert res["complete"] is True and res["configuration"] == "tiny" and res["timer"] == "perf_counter"
    env = res["environment"]
    assert {"device", "device_name", "driver", "torch", "python", "date", "cuda"} <= set(env)
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert abs(dt.datetime.fromisoformat(env["date"]) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(hours=1)
    ceil = res["ceilings"]
    assert ceil["matmul_bf16"]["tflops"] > 0 and ceil["matmul_fp32"]["tflops"] > 0 and ceil["copy"]["gbps"] > 0


def test_cuda_only_parts_are_skipped_with_a_reason(quick):
    res, _ = quick
    skipped = {s["what"]: s["reason"] for s in res["skipped"]}
    assert "perf_counter" in skipped["CUDA-event timing"]
    assert {"peak memory", "host-device synchronisations", "memory-limit probe"} <= set(skipped)
    rows = res["runs"]
    tf32 = [r for r in rows if r["variant"] == "tf32"]
    graphs = [r for r in rows if r["variant"] == "bf16+cl+compile+graphs"]
    assert tf32 and all(r["status"] == "skipped" and "TF32" in r["reason"] for r in tf32)
    assert graphs and all(r["status"] == "skipped" and "CUDA graphs" in r["reason"] for r in graphs)
    assert all(r["peak_memory_bytes"] is None for r in rows if r["status"] == "ok")
    assert all(c["syncs_per_nfe"] is None for c in res["cases"].values())


def test_every_figure_follows_from_the_raw_times(quick):
    res, _ = quick
    ok = [r for r in res["runs"] if r["status"] == "ok"]
    assert {r["case"] for r in ok} == set(QUICK_CASES)
    bf16 = res["ceilings"]["matmul_bf16"]["tflops"]
    for r in ok:
        case = res["cases"][r["case"]]
        med = statistics.median(r["seconds"])
        assert r["repeats"] == len(r["seconds"]) >= 1 and r["median_s"] == med and r["nfe"] == case["nfe"]
        assert math.isclose(r["images_per_s"], r["batch"] / med, rel_tol=1e-12)
        assert math.isclose(r["ms_per_nfe"], 1e3 * med / r["nfe"], rel_tol=1e-12)
        tflops = case["flops_per_image_per_nfe"] * r["batch"] * r["nfe"] / med / 1e12
        assert math.isclose(r["tflops"], tflops, rel_tol=1e-12)
        assert math.isclose(r["fraction_of_bf16_matmul"], tflops / bf16, rel_tol=1e-12)


def test_headline_sweeps_every_eager_variant_over_the_batches(quick):
    res, _ = quick
    for v in ("fp32", "bf16+cl"):
        batches = [r["batch"] for r in res["runs"] if r["case"] == gpu.HEADLINE and r["variant"] == v and r["status"] == "ok"]
        assert batches == list(gpu.QUICK_BATCHES)
    assert res["families"]["ddpm"]["batch"] in gpu.QUICK_BATCHES
    assert res["batch_probes"] and all(p["case"] == "ncsnpp/heun" for p in res["batch_probes"])


def test_every_variant_agrees_with_eager_fp32(quick):
    res, _ = quick
    for r in (r for r in res["runs"] if r["status"] == "ok"):
        deterministic = res["cases"][r["case"]]["deterministic"]
        assert len(r["agreement"]) == (2 if deterministic else 1)
        tol = V.TOLERANCES[r["precision"]]
        assert r["finite"] and r["agrees"], r
        assert all(a["passed"] and a["tolerance"] == tol and 0.0 <= a["rel_error"] <= tol for a in r["agreement"])
    assert res["summary"]["agreement"] == {"all_passed": True, "failed": []}


def test_summary_targets_and_report(quick):
    res, out = quick
    tg = res["summary"]["targets"]
    assert tg["applies"] is False and "H100 or H200" in tg["note"]
    head = [r for r in res["runs"] if r["case"] == gpu.HEADLINE and r["status"] == "ok"]
    assert tg["fastest"]["images_per_s"] == max(r["images_per_s"] for r in head)
    assert tg["matmul_fraction"]["met"] == (tg["matmul_fraction"]["value"] >= 0.35)
    md = out.with_suffix(".md").read_text()
    assert "| case | variant | batch | NFE | images/s |" in md and "### Targets" in md
    assert md.count(f"| {gpu.HEADLINE} |") >= len(head)
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert res["profile"]["unit"] == "operator" and res["profile"]["top"]
    assert math.isclose(sum(res["profile"]["by_class_s"].values()), res["profile"]["busy_s"], rel_tol=1e-9)


@needs_diffusers
def test_diffusers_rows_and_ratios(quick):
    res, _ = quick
    dif = res["diffusers"]
    assert dif["parameters"] == res["families"]["ddpm"]["parameters"]["net"]  # the same architecture, tiny
    assert dif["flops_per_image_per_nfe"] == res["cases"][gpu.HEADLINE]["flops_per_image_per_nfe"]
    ok = [d for d in dif["runs"] if d["status"] == "ok"]
    assert {d["scheduler"] for d in ok} == {"ddim", "ddpm"}
    for d in ok:
        ours = [r for r in res["runs"] if r["case"] == d["case"] and r["status"] == "ok"]
        assert d["nfe"] == ours[0]["nfe"] and d["batch"] in {r["batch"] for r in ours}
        assert math.isclose(d["images_per_s"], d["batch"] / statistics.median(d["seconds"]), rel_tol=1e-12)
    for q in res["summary"]["diffusers_ratios"]:
        best = max(d["images_per_s"] for d in ok if (d["case"], d["batch"], d["precision"]) == (q["case"], q["batch"], q["precision"]))
        assert math.isclose(q["ratio_vs_best"], q["ours_images_per_s"] / best, rel_tol=1e-12)
    compiled = [d for d in dif["runs"] if "compile" in d["mode"]]
    assert all(d["status"] == "skipped" for d in compiled)  # no compile variant of ours ran on this CPU


# -- the counts the figures divide by, checked independently -------------------------------------------


@pytest.mark.parametrize("case_id", [c.id for c in C.CASES])
def test_declared_nfe_is_the_number_of_network_calls(case_id):
    c = C.case(case_id)
    fam = C.build_family(c.family, tiny=True, device=CPU)
    calls = {name: 0 for name in fam.nets}
    hooks = [net.register_forward_pre_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1)) for name, net in fam.nets.items()]
    run, _ = C.sampler_fn(c, fam, fam.nets)
    g = C.grid(c, fam)
    with torch.no_grad():
        out = run(C.initial_noise(fam, 2), g, 0)
    for h in hooks:
        h.remove()
    assert out.shape == (2,) + fam.data_shape and bool(torch.isfinite(out).all())
    assert calls["net"] == C.nfe(c, fam, g)
    if "classifier" in calls:
        assert calls["classifier"] == (C.nfe(c, fam, g) if c.sampler == "guided_ddim" else 0)


@pytest.mark.parametrize("family", C.FAMILIES)
def test_flops_per_evaluation_equal_the_bare_networks_on_the_meta_device(family):
    fam = C.build_family(family, tiny=True, device=CPU)
    cfg = fam.nets["net"].config
    with torch.device("meta"):
        bare = nets.build({"ddpm": "ddpm_cifar10", "ncsnpp": "ncsnpp_cifar10_ve", "adm": "adm_64", "ncsnv2": "ncsnv2_cifar10"}[family],
                          **nets.tiny_overrides({"ddpm": "ddpm_cifar10", "ncsnpp": "ncsnpp_cifar10_ve", "adm": "adm_64",
                                                 "ncsnv2": "ncsnv2_cifar10"}[family]))
    x = torch.zeros((1,) + tuple(cfg.data_shape), device="meta")
    kw = {"y": torch.zeros(1, dtype=torch.long, device="meta")} if cfg.label_classes else {}
    with FlopCounterMode(display=False) as fc:
        bare(x, torch.ones(1, device="meta"), **kw)
    c = next(c for c in C.cases(family) if c.sampler != "guided_ddim")
    _, evaluate = C.sampler_fn(c, fam, fam.nets)
    g = C.grid(c, fam)
    with torch.no_grad():
        counted = {b: T.count_flops(lambda: evaluate(C.initial_noise(fam, b), g[1])) for b in (2, 4)}
    assert counted[2] == 2 * fc.get_total_flops() and counted[4] == 2 * counted[2]


def test_guided_evaluation_counts_unet_classifier_and_its_backward():
    fam = C.build_family("adm", tiny=True, device=CPU)
    c = C.case("adm/guided_ddim50")
    _, evaluate = C.sampler_fn(c, fam, fam.nets)
    _, plain = C.sampler_fn(C.case("adm/ddim50"), fam, fam.nets)
    t = C.grid(c, fam)[1]
    x = C.initial_noise(fam, 2)
    with torch.no_grad():
        guided = T.count_flops(lambda: evaluate(x, t))
        unet = T.count_flops(lambda: plain(x, t))
        clf = as_classifier(fam.nets["classifier"], fam.process)
        clf_fwd = T.count_flops(lambda: clf(x, t))
        assert T.count_flops(lambda: evaluate(C.initial_noise(fam, 4), t)) == 2 * guided
    # the backward to x costs at least the forward again (every convolution and product has an input gradient)
    assert guided >= unet + 2 * clf_fwd and guided < unet + 4 * clf_fwd


def test_counted_guided_evaluation_is_classifier_guided():
    # the same operations in the same order (ADM's time embedding is float32, so float32): equal to rounding
    fam = C.build_family("adm", tiny=True, device=CPU)
    c = C.case("adm/guided_ddim50")
    _, evaluate = C.sampler_fn(c, fam, fam.nets)
    x = C.initial_noise(fam, 3)
    t = C.grid(c, fam)[2]
    y = C.labels_for(fam, 3)
    guided = ClassifierGuided(C.Labelled(wrap_net(fam.nets["net"], fam.process), y),
                              as_classifier(fam.nets["classifier"], fam.process), fam.process, scale=1.0)
    with torch.no_grad():
        torch.testing.assert_close(evaluate(x, t), guided(x, t, y=y), rtol=1e-6, atol=1e-6)
        # and guidance changes the prediction: the classifier term is not zero
        assert float((guided(x, t, y=y) - guided.model(x, t)).abs().max()) > 1e-6


@needs_diffusers
def test_diffusers_unet_is_our_ddpm_unet_in_size_and_flops():
    from diffusers import UNet2DModel

    for tiny in (False, True):
        with torch.device("meta"):
            ours = nets.build("ddpm_cifar10", **(nets.tiny_overrides("ddpm_cifar10") if tiny else {}))
            theirs = UNet2DModel(**(D.TINY_UNET_CONFIG if tiny else D.UNET_CONFIG))
        n = sum(p.numel() for p in theirs.parameters())
        assert n == sum(p.numel() for p in ours.parameters()) == (702_499 if tiny else 35_746_307)
        size = ours.config.image_size
        x, t = torch.zeros(1, 3, size, size, device="meta"), torch.zeros(1, device="meta")
        with FlopCounterMode(display=False) as a:
            ours(x, t)
        with FlopCounterMode(display=False) as b:
            theirs(x, t)
        assert a.get_total_flops() == b.get_total_flops()


def test_adm_64_classifier_configuration():
    with torch.device("meta"):
        clf = nets.build("adm_classifier_128", **C.adm_classifier_overrides(tiny=False))
    assert clf.config.image_size == 64 and clf.config.channel_mult == (1, 2, 3, 4) and clf.config.num_res_blocks == 4
    assert clf.config.model_channels == 128 and clf.config.attention_resolutions == (32, 16, 8) and clf.config.pool == "attention"
    assert sum(p.numel() for p in clf.parameters()) == 65_438_568


def test_zero_initialised_weights_are_redrawn():
    net = nets.build("adm_64", seed=0, **nets.tiny_overrides("adm_64"))
    zeros = [n for n, p in net.named_parameters() if p.ndim >= 2 and not p.any()]
    assert zeros  # ADM zero-initialises its output layers
    assert V.randomize_zero_weights(net, torch.Generator().manual_seed(0)) == len(zeros)
    assert not [n for n, p in net.named_parameters() if p.ndim >= 2 and not p.any()]
    fam = C.build_family("adm", tiny=True, device=CPU)
    assert not [n for n, p in fam.nets["net"].named_parameters() if p.ndim >= 2 and not p.any()]


# -- the agreement gate and the variants ------------------------------------------------------------


def test_agreement_fails_on_a_wrong_network_and_on_nan():
    fam = C.build_family("ddpm", tiny=True, device=CPU)
    c = C.case("ddpm/ddim10")
    g = C.grid(c, fam)
    x = C.initial_noise(fam, 4)
    run, _ = C.sampler_fn(c, fam, fam.nets)

    class Biased(torch.nn.Module):  # a deliberately wrong "variant": eps off by 2%
        def __init__(self, net):
            super().__init__()
            self.net, self.config = net, net.config

        def forward(self, x, noise, **kw):
            return 1.02 * self.net(x, noise, **kw)

    bad, _ = C.sampler_fn(c, fam, {"net": Biased(fam.nets["net"])})
    with torch.no_grad():
        ref, wrong = run(x, g, 0), bad(x, g, 0)
        bf16 = run_variant(c, fam, "bf16", x, g)
    assert gpu.agreement(ref, ref, V.TOLERANCES["fp32"], "same")["passed"]
    assert gpu.agreement(bf16, ref, V.TOLERANCES["bf16"], "bf16")["passed"]
    for tol in V.TOLERANCES.values():
        if tol < 1e-2:
            assert not gpu.agreement(wrong, ref, tol, "biased")["passed"]
    assert not gpu.agreement(torch.full_like(ref, float("nan")), ref, 1.0, "nan")["passed"]
    assert not gpu.agreement(bf16, ref, V.TOLERANCES["fp32"], "bf16 at the fp32 tolerance")["passed"]


def run_variant(c, fam, name, x, g):
    v = V.variant(name)
    prepared = {k: V.prepare(n, v, CPU) for k, n in fam.nets.items()}
    run, _ = C.sampler_fn(c, fam, prepared)
    with V.precision(v):
        return run(x, g, 0)


def test_prepare_keeps_the_original_network_and_rejects_what_the_device_lacks():
    net = nets.build("ddpm_cifar10", seed=0, **nets.tiny_overrides("ddpm_cifar10")).eval()
    before = [p.clone() for p in net.parameters()]
    cl = V.prepare(net, V.variant("bf16+cl"), CPU)
    assert any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in cl.core.net.parameters())
    assert all(p.is_contiguous() for p in net.parameters()) and all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10.0, 500.0])
    with torch.no_grad():
        ref = net(x, t)
        out = cl(x, t)
    assert out.dtype == torch.float32 and 1e-5 < float((out - ref).norm() / ref.norm()) < V.TOLERANCES["bf16"]
    for name in ("tf32", "bf16+cl+compile+graphs"):
        assert V.unavailable(V.variant(name), CPU)
        with pytest.raises(ValueError, match=name.replace("+", r"\+")):
            V.prepare(net, V.variant(name), CPU)
    with pytest.raises(ValueError, match="unknown variant"):
        V.variant("fp16")
    with pytest.raises(TypeError, match="net"):
        V.prepare(torch.nn.Linear(2, 2), V.variant("fp32"), CPU)


def test_precision_sets_and_restores_tf32_flags():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with V.precision(V.variant("tf32")):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with V.precision(V.variant("fp32")):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == saved


# -- options, budget, optional diffusers, report ----------------------------------------------------


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(cases=("ddpm/ddim7",)), "unknown case"),
    (dict(variants=("fp16",)), "unknown variant"),
    (dict(batches=(4, 2)), "batches"),
    (dict(batches=(0,)), "batches"),
    (dict(budget_s=-1.0), "budget_s"),
    (dict(max_repeats=0), "max_repeats"),
    (dict(target_s=float("nan")), "target_s"),
    (dict(cases=()), "cases"),
])
def test_bad_options_name_the_argument(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        gpu.Options(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this would run the full benchmark")
def test_full_benchmark_without_cuda_is_a_clear_error(capsys):
    from diffcheck.cli import main

    with pytest.raises(ValueError, match="CUDA device"):
        gpu.run(gpu.Options(device="cpu"))
    assert main(["bench", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "--quick" in err and err.count("\n") == 1


def test_a_spent_budget_skips_with_the_reason_and_diffusers_absent_is_no_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "available", lambda: False)
    opts = gpu.Options(device="cpu", quick=True, cases=(gpu.HEADLINE,), variants=("fp32",), batches=(2,), budget_s=1e-9,
                       progress=False, profile=False)
    res = gpu.run(opts, tmp_path / "b.json")
    assert res["complete"] is True and "diffusers" not in res
    assert any(s["what"] == "family ddpm" and "no batch size ran" in s["reason"] for s in res["skipped"])
    assert res["runs"] and all(r["status"] == "skipped" and r["reason"].startswith("budget") for r in res["runs"])
    assert json.loads((tmp_path / "b.json").read_text())["complete"] is True
    assert "budget" in (tmp_path / "b.md").read_text()


def test_without_diffusers_the_column_is_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "available", lambda: False)
    opts = gpu.Options(device="cpu", quick=True, cases=("ddpm/ddim10",), variants=("fp32",), batches=(2,), max_repeats=1,
                       progress=False, profile=False)
    res = gpu.run(opts, tmp_path / "n.json")
    assert "diffusers" not in res and res["summary"]["diffusers_ratios"] == []
    assert any(s["what"] == "diffusers comparison" and "not installed" in s["reason"] for s in res["skipped"])
    assert [(r["case"], r["status"]) for r in res["runs"]] == [("ddpm/ddim10", "ok")]
    assert res["batch_probes"][0]["status"] == "ok"
    assert "### diffusers" not in (tmp_path / "n.md").read_text()


def test_report_command_reads_results_and_rejects_other_json(quick, tmp_path):
    _, out = quick
    md, png = tmp_path / "r.md", tmp_path / "r.png"
    assert R.main([str(out), str(out), "--md", str(md), "--plot", str(png)]) == 0
    text = md.read_text()
    assert text.count("## Run ") == 2 and png.stat().st_size > 10_000
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not a GPU benchmark result"):
        R.load([other])


def test_matmul_and_copy_ceilings_on_cpu():
    mm = T.matmul_rate(CPU, torch.float32, 128, repeats=3)
    assert mm["n"] == 128 and math.isclose(mm["tflops"], 2 * 128**3 / mm["median_s"] / 1e12)
    cp = T.copy_bandwidth(CPU, 1 << 20, repeats=3)
    assert math.isclose(cp["gbps"], 2 * cp["bytes"] / cp["median_s"] / 1e9)
    assert T.count_syncs(lambda: None, CPU) is None
    with pytest.raises(ValueError, match="repeats"):
        T.time_call(lambda: None, CPU, 0)


# -- torch.compile on the CPU (slow) ------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_variant_on_cpu_agrees_and_is_timed(tmp_path):
    opts = gpu.Options(device="cpu", quick=True, cases=("ddpm/ddim50", "ddpm/ddim10"), variants=("fp32", "bf16+cl+compile"),
                       max_repeats=2, progress=False)
    res = gpu.run(opts, tmp_path / "c.json")
    rows = [r for r in res["runs"] if r["variant"] == "bf16+cl+compile"]
    assert rows and all(r["status"] == "ok" and r["agrees"] for r in rows), rows
    assert all(r["warmup_first_call_s"] > 0 and r["compile"]["graph_breaks"] >= 0 for r in rows)
    if D.available():
        assert any(d["mode"] == "bf16w+cl+compile" and d["status"] == "ok" for d in res["diffusers"]["runs"])


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU path of the command line")
def test_cli_quick_run_on_cpu(tmp_path):
    from diffcheck.cli import main

    out = tmp_path / "cli.json"
    assert main(["bench", "gpu", "--quick", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["complete"] and {r["case"] for r in res["runs"] if r["status"] == "ok"} == {c.id for c in C.CASES}


# -- on a CUDA device (skipped without one) ------------------------------------------------------------


@pytest.mark.gpu
def test_quick_run_on_cuda_measures_every_variant(tmp_path):
    cases = ("ddpm/ddim50", "ddpm/ancestral250", "adm/guided_ddim50")
    res = gpu.run(gpu.Options(device="cuda", quick=True, cases=cases, batches=(4, 16), max_repeats=3, progress=False),
                  tmp_path / "g.json")
    assert res["timer"] == "cuda_events" and res["environment"]["driver"]
    assert res["ceilings"]["matmul_bf16"]["tflops"] > res["ceilings"]["matmul_fp32"]["tflops"] > 0
    ok = [r for r in res["runs"] if r["status"] == "ok"]
    assert {r["variant"] for r in ok} == set(V.names())
    assert not [r for r in res["runs"] if r["status"] in ("failed", "oom")]
    assert all(r["peak_memory_bytes"] > 0 and r["agrees"] for r in ok)
    graphs = [r for r in ok if r["variant"] == "bf16+cl+compile+graphs" and r["case"].startswith("ddpm/")]
    assert graphs and all(r["compile"]["cudagraph_skips"] == 0 for r in graphs)  # the CUDA graphs are really replayed
    assert all(c["syncs_per_nfe"] is not None and c["syncs_per_nfe"] >= 0 for c in res["cases"].values())
    assert res["profile"]["unit"] == "kernel" and res["profile"]["top"] and res["memory_limits"]


@pytest.mark.gpu
def test_full_ddpm_unet_variants_agree_and_fp32_matches_float64_on_cpu():
    fam = C.build_family("ddpm", tiny=False, device="cuda")
    c = C.case("ddpm/ddim10")
    g = C.grid(c, fam)
    x = C.initial_noise(fam, 4)
    run, _ = C.sampler_fn(c, fam, fam.nets)
    with torch.no_grad(), V.precision(V.variant("fp32")):
        ref = run(x, g, 0)
    cpu = C.Family("ddpm", False, CPU, fam.process, {"net": nets.build("ddpm_cifar10", seed=0)}, fam.data_shape, None)
    cpu.nets["net"].load_state_dict({k: v.cpu() for k, v in fam.nets["net"].state_dict().items()})
    cpu.nets["net"].double().eval().requires_grad_(False)
    run64, _ = C.sampler_fn(c, cpu, cpu.nets)
    with torch.no_grad():
        exact = run64(x.cpu().double(), g, 0)
    assert gpu.agreement(ref, exact, V.TOLERANCES["fp32"], "fp32 CUDA vs float64 CPU")["passed"]
    for v in V.VARIANTS:
        prepared = {k: V.prepare(n, v, "cuda") for k, n in fam.nets.items()}
        run_v, _ = C.sampler_fn(c, fam, prepared)
        with torch.no_grad(), V.precision(v):
            out = run_v(x, g, 0)
        a = gpu.agreement(out, ref, V.tolerance(v), v.name)
        assert a["passed"], a


@pytest.mark.gpu
def test_sync_counter_sees_a_synchronisation():
    dev = torch.device("cuda")
    x = torch.ones(1024, device=dev)
    assert T.count_syncs(lambda: (x * 2).sum(), dev) == 0
    assert T.count_syncs(lambda: float((x * 2).sum()), dev) >= 1


def test_targets_from_rows():
    from diffcheck.bench.gpu_summary import summarize

    def ours(variant, batch, ips, frac, precision="bf16"):
        return {"case": gpu.HEADLINE, "variant": variant, "batch": batch, "precision": precision, "status": "ok",
                "images_per_s": ips, "tflops": 1.0, "fraction_of_bf16_matmul": frac, "agrees": True}

    res = {"environment": {"device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3"}, "configuration": "full",
           "runs": [ours("bf16+cl", 512, 1000.0, 0.20), ours("bf16+cl+compile+graphs", 512, 1600.0, 0.36),
                    ours("fp32", 512, 300.0, 0.05, "fp32")],
           "diffusers": {"runs": [{"case": gpu.HEADLINE, "batch": 512, "precision": "bf16", "mode": m, "status": "ok", "images_per_s": v}
                                  for m, v in (("bf16", 900.0), ("bf16w", 1000.0), ("bf16w+cl+compile", 1100.0))]}}
    tg = summarize(res, gpu.HEADLINE)["targets"]
    assert tg["applies"] and tg["fastest"]["variant"] == "bf16+cl+compile+graphs"
    assert tg["matmul_fraction"]["met"] is True
    assert tg["diffusers_ratio"]["against"] == "bf16w+cl+compile" and math.isclose(tg["diffusers_ratio"]["value"], 1600 / 1100)
    assert tg["diffusers_ratio"]["met"] is False  # 1.45x the compiled diffusers, though 1.6x its fastest eager mode
    assert math.isclose(tg["diffusers_ratio"]["value_vs_eager_diffusers"], 1.6)
    res["runs"][1]["fraction_of_bf16_matmul"] = 0.34
    res["diffusers"]["runs"].pop()
    tg = summarize(res, gpu.HEADLINE)["targets"]
    assert tg["matmul_fraction"]["met"] is False and tg["diffusers_ratio"]["met"] is True
    res["environment"]["device_name"] = "NVIDIA A100"
    assert summarize(res, gpu.HEADLINE)["targets"]["applies"] is False
