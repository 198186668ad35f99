"""The parts the GPU benchmark's figures rest on, checked independently: evaluations counted by hooks, FLOPs
against the bare networks on the meta device, diffusers' U-Net against ours, the correctness gate failing on
wrong samples, the variants, the ceilings, the summary's targets and the report."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffcheck import nets
from diffcheck.bench import gpu_cases as C
from diffcheck.bench import gpu_diffusers as D
from diffcheck.bench import gpu_gate as G
from diffcheck.bench import gpu_report as R
from diffcheck.bench import gpu_timing as T
from diffcheck.bench import gpu_variants as V
from diffcheck.bench.gpu_summary import summarize
from diffcheck.guidance import ClassifierGuided
from diffcheck.nets.wrap import as_classifier, wrap_net

CPU = torch.device("cpu")
NETS = {"ddpm": "ddpm_cifar10", "ncsnpp": "ncsnpp_cifar10_ve", "adm": "adm_64", "ncsnv2": "ncsnv2_cifar10"}
needs_diffusers = pytest.mark.skipif(not D.available(), reason="diffusers is not installed (optional dependency)")


def plain(family: str) -> C.Case:
    """An unguided case of ``family`` (for counting one bare evaluation): its own, or DDIM for ADM."""
    own = [c for c in C.cases(family) if c.sampler != "guided_ddim"]
    return own[0] if own else C.Case(f"{family}/ddim", family, "ddim", 50, 2, True, "DDIM")


# -- the counts the figures divide by --------------------------------------------------------------------


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
        assert calls["classifier"] == C.nfe(c, fam, g)


@pytest.mark.parametrize("family", C.FAMILIES)
def test_flops_per_evaluation_equal_the_bare_networks_on_the_meta_device(family):
    fam = C.build_family(family, tiny=True, device=CPU)
    cfg = fam.nets["net"].config
    with torch.device("meta"):
        bare = nets.build(NETS[family], **nets.tiny_overrides(NETS[family]))
    x = torch.zeros((1,) + tuple(cfg.data_shape), device="meta")
    kw = {"y": torch.zeros(1, dtype=torch.long, device="meta")} if cfg.label_classes else {}
    with FlopCounterMode(display=False) as fc:
        bare(x, torch.ones(1, device="meta"), **kw)
    _, evaluate = C.sampler_fn(plain(family), fam, fam.nets)
    g = C.grid(plain(family), fam)
    with torch.no_grad():
        counted = {b: T.count_flops(lambda: evaluate(C.initial_noise(fam, b), g[1])) for b in (2, 4)}
    assert counted[2] == 2 * fc.get_total_flops() and counted[4] == 2 * counted[2]


def test_guided_evaluation_counts_unet_classifier_and_its_backward():
    fam = C.build_family("adm", tiny=True, device=CPU)
    c = C.case("adm/guided_ddim50")
    _, evaluate = C.sampler_fn(c, fam, fam.nets)
    _, bare = C.sampler_fn(plain("adm"), fam, fam.nets)
    t = C.grid(c, fam)[1]
    x = C.initial_noise(fam, 2)
    with torch.no_grad():
        guided = T.count_flops(lambda: evaluate(x, t))
        unet = T.count_flops(lambda: bare(x, t))
        clf_fwd = T.count_flops(lambda: as_classifier(fam.nets["classifier"], fam.process)(x, t))
        assert T.count_flops(lambda: evaluate(C.initial_noise(fam, 4), t)) == 2 * guided
    # the backward to x costs at least the forward again (every convolution and product has an input gradient)
    assert guided >= unet + 2 * clf_fwd and guided < unet + 4 * clf_fwd


def test_counted_guided_evaluation_is_classifier_guided():
    fam = C.build_family("adm", tiny=True, device=CPU)
    c = C.case("adm/guided_ddim50")
    _, evaluate = C.sampler_fn(c, fam, fam.nets)
    x, t, y = C.initial_noise(fam, 3), C.grid(c, fam)[1], C.labels_for(fam, 3)
    guided = ClassifierGuided(C.Labelled(wrap_net(fam.nets["net"], fam.process), y),
                              as_classifier(fam.nets["classifier"], fam.process), fam.process, scale=1.0)
    with torch.no_grad():
        torch.testing.assert_close(evaluate(x, t), guided(x, t, y=y), rtol=1e-6, atol=1e-6)
        assert float((guided(x, t, y=y) - guided.model(x, t)).abs().max()) > 1e-6  # the classifier term is not zero


def test_family_parameters_on_the_meta_device_equal_the_built_networks():
    for name in C.FAMILIES:
        assert C.family_parameters(name, tiny=True) == sum(C.build_family(name, tiny=True, device=CPU).parameters.values())
    assert C.family_parameters("ddpm", tiny=False) == 35_746_307
    assert C.family_parameters("adm", tiny=False) == 295_904_454 + 65_438_568


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


# -- the correctness gate ------------------------------------------------------------------------------


def test_tolerance_is_the_stated_closed_form():
    assert G.tolerance("bf16", 50) == pytest.approx(2.0**-7 * math.sqrt(50)) and G.tolerance("bf16", 50) == pytest.approx(0.0552, abs=1e-4)
    assert G.tolerance("fp32", 50) == pytest.approx(2.0**-13 * math.sqrt(50))
    assert G.tolerance("bf16", 200) == pytest.approx(2 * G.tolerance("bf16", 50))
    for bad, arg in ((("tf32", 50), "precision"), (("bf16", 0), "nfe"), (("bf16", True), "nfe")):
        with pytest.raises(ValueError, match=arg):
            G.tolerance(*bad)


def run_variant(c, fam, name, x, g):
    v = V.variant(name)
    run, _ = C.sampler_fn(c, fam, {k: V.prepare(n, v, CPU) for k, n in fam.nets.items()})
    with torch.no_grad(), V.precision(v):
        return run(x, g, 0)


class Wrong(torch.nn.Module):
    """A deliberately wrong "variant": eps scaled, or the image transposed (a layout bug)."""

    def __init__(self, net, scale=1.0, transpose=False):
        super().__init__()
        self.net, self.config, self.scale, self.transpose = net, net.config, scale, transpose

    def forward(self, x, noise, **kw):
        return self.scale * self.net(x.transpose(-1, -2) if self.transpose else x, noise, **kw)


def test_gate_passes_bf16_and_fails_wrong_samples():
    fam = C.build_family("ddpm", tiny=True, device=CPU)
    c = C.Case("ddpm/ddim10", "ddpm", "ddim", 10, 10, True, "DDIM-10")
    g = C.grid(c, fam)
    x = C.initial_noise(fam, 4)
    run, _ = C.sampler_fn(c, fam, fam.nets)
    with torch.no_grad():
        ref = run(x, g, 0)
        wrong = {name: C.sampler_fn(c, fam, {"net": Wrong(fam.nets["net"], **kw)})[0](x, g, 0)
                 for name, kw in (("eps x 1.5", {"scale": 1.5}), ("transposed", {"transpose": True}))}
    bf16 = run_variant(c, fam, "bf16+cl", x, g)
    tol = G.tolerance("bf16", 10)
    a = G.agreement(bf16, ref, tol)
    assert a["passed"] and 1e-5 < a["rel_l2"] < tol
    for name, out in wrong.items():
        assert not G.agreement(out, ref, tol)["passed"], name
    assert not G.agreement(torch.full_like(ref, float("nan")), ref, 1.0)["passed"]
    assert not G.agreement(bf16, ref, G.tolerance("fp32", 10))["passed"]  # bf16 is not float32
    with pytest.raises(ValueError, match="same shape"):
        G.agreement(ref[:2], ref, tol)


# -- variants, ceilings, summary, report -----------------------------------------------------------------


def test_prepare_keeps_the_original_network_and_rejects_what_the_device_lacks():
    net = nets.build("ddpm_cifar10", seed=0, **nets.tiny_overrides("ddpm_cifar10")).eval()
    before = [p.clone() for p in net.parameters()]
    cl = V.prepare(net, V.variant("bf16+cl"), CPU)
    assert any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in cl.core.net.parameters())
    assert all(p.is_contiguous() for p in net.parameters()) and all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10.0, 500.0])
    with torch.no_grad():
        ref, out = net(x, t), cl(x, t)
    assert out.dtype == torch.float32 and 1e-5 < float((out - ref).norm() / ref.norm()) < 2 * 2.0**-8 * 4
    assert V.unavailable(V.variant("bf16+cl+compile+graphs"), CPU) == "CUDA graphs need a CUDA device"
    with pytest.raises(ValueError, match=r"bf16\+cl\+compile\+graphs"):
        V.prepare(net, V.variant("bf16+cl+compile+graphs"), CPU)
    with pytest.raises(ValueError, match="unknown variant"):
        V.variant("fp16")
    with pytest.raises(TypeError, match="net"):
        V.prepare(torch.nn.Linear(2, 2), V.variant("fp32"), CPU)


def test_precision_turns_tf32_off_and_restores_the_flags():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True
    try:
        with V.precision(V.variant("fp32")):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    with pytest.raises(TypeError, match="Variant"):
        with V.precision("fp32"):
            pass


def test_matmul_and_copy_ceilings_on_cpu():
    mm = T.matmul_rate(CPU, torch.float32, 128, repeats=3)
    assert mm["n"] == 128 and math.isclose(mm["tflops"], 2 * 128**3 / mm["median_s"] / 1e12)
    cp = T.copy_bandwidth(CPU, 1 << 20, repeats=3)
    assert math.isclose(cp["gbps"], 2 * cp["bytes"] / cp["median_s"] / 1e9)
    assert T.count_syncs(lambda: None, CPU) is None
    with pytest.raises(ValueError, match="repeats"):
        T.time_call(lambda: None, CPU, 0)


def _doc(rows, device_name="NVIDIA H200", gate_passed=True):
    keys = ("case", "impl", "variant", "batch", "nfe", "precision", "images_per_s", "fraction_of_ceiling", "compiled")
    runs = []
    for r in rows:
        row = dict(zip(keys, r), status="ok", reason=None, ms_per_nfe=1.0, peak_memory_bytes=1, flops_per_image_per_nfe=1.0,
                   tflops=1.0, compile_s=30.0 if r[-1] else None)
        runs.append(row)
    return {"environment": {"device": "cuda:0", "device_name": device_name}, "configuration": "full", "dry_run": False,
            "runs": runs, "steps": [{"priority": 2, "elapsed_s": 3.0}, {"priority": 4, "elapsed_s": 1.5}],
            "budget": {"total_s": 420.0, "spent_s": 4.5, "left_s": 415.5}, "ceiling": {"matmul_bf16": {"tflops": 800.0}},
            "gate": {"passed": gate_passed, "rel_l2": 1e-3, "tolerance": 5.5e-2}}


def test_targets_from_rows():
    h = "ddpm/ddim50"
    doc = _doc([(h, "diffcheck", "bf16+cl", 512, 50, "bf16", 1000.0, 0.20, False),
                (h, "diffcheck", "bf16+cl+compile+graphs", 512, 50, "bf16", 1600.0, 0.36, True),
                (h, "diffcheck", "fp32", 256, 50, "fp32", 300.0, 0.05, False),
                (h, "diffusers", "diffusers bf16", 512, 50, "bf16", 900.0, 0.18, False),
                (h, "diffusers", "diffusers bf16w", 512, 50, "bf16", 1000.0, 0.2, False),
                (h, "diffusers", "diffusers fp32", 128, 50, "fp32", 200.0, 0.03, False)])
    s = summarize(doc)
    tg = s["headline"]["targets"]
    assert s["headline"]["targets_apply"] and s["headline"]["fastest"]["variant"] == "bf16+cl+compile+graphs"
    assert tg["ratio_to_diffusers"]["value"] == pytest.approx(1.6) and tg["ratio_to_diffusers"]["against"] == "diffusers bf16w"
    assert tg["ratio_to_diffusers"]["met"] is True and tg["fraction_of_ceiling"]["met"] is True and tg["gate"]["met"] is True
    ratios = {q["variant"]: q["ratio_to_diffusers"] for q in s["rows"]}
    assert ratios["bf16+cl"] == pytest.approx(1.0) and ratios["fp32"] is None  # diffusers fp32 ran at another batch
    assert s["compile"][0]["speedup_vs_eager"] == pytest.approx(1.6) and s["budget"]["by_priority"] == {"2": 3.0, "4": 1.5}
    doc["runs"][1]["fraction_of_ceiling"] = 0.34
    doc["runs"][4]["images_per_s"] = 1100.0
    tg = summarize(doc)["headline"]["targets"]
    assert tg["fraction_of_ceiling"]["met"] is False and tg["ratio_to_diffusers"]["met"] is False  # 1.45x
    assert summarize(_doc(doc_rows := [(h, "diffcheck", "bf16+cl", 8, 50, "bf16", 1.0, 0.1, False)], "NVIDIA A100"))["headline"]["targets_apply"] is False
    assert doc_rows and summarize(_doc(doc_rows, gate_passed=False))["headline"]["targets"]["gate"]["met"] is False


def test_report_rejects_other_json(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not a GPU benchmark result"):
        R.load([other])
