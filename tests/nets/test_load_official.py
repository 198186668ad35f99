"""Official checkpoint layouts that no installable package implements: key lists, round trips, clear errors.

ddim's DDPM port, improved/guided-diffusion, score_sde_pytorch, NCSN and NCSNv2 cannot be installed here, so
their layouts are checked against ``official_layouts``: key and shape lists enumerated from the authors'
constructors (their parameter totals equal the counts of the official builds, MODELS.md). The key maps must write
exactly those keys and shapes; a network saved in each official container (score_sde's {model, ema, ...} with
the EMA as a list, ncsn's [model, optimizer], ncsnv2's [model, optimizer, epoch, step, ema], DataParallel's
``module.`` prefix) loads back computing identical outputs, taking the EMA weights by default; the sizes of every
family are read back off the weights; truncated files, wrong architectures and pickles that would run code are
refused with one clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import official_layouts as O
from diffcheck import nets
from diffcheck.nets.base import replace
from diffcheck.nets.checkpoints import PRESETS, CheckpointError, keymap, load
from diffcheck.nets.checkpoints.infer import INFER, infer_openai
from test_nets_counts import REFERENCE

# name -> (layout, official enumeration with the authors' flags). Flags: ddim configs/cifar10.yml, celeba.yml;
# improved-diffusion and guided-diffusion README; score_sde configs/ve|vp/*.py; ncsn anneal.yml; ncsnv2 configs.
_ADM = dict(use_scale_shift_norm=True, resblock_updown=True, learn_sigma=True)
_SKIP = dict(fir=True, progressive="output_skip", progressive_input="input_skip", embedding_type="fourier")
OFFICIAL = {
    "ddpm_cifar10": ("ddim", lambda: O.ddim_ddpm(128, (1, 2, 2, 2), 2, (16,), 32)),
    "ddpm_celeba64": ("ddim", lambda: O.ddim_ddpm(128, (1, 2, 2, 2, 4), 2, (16,), 64)),
    "ddpm_celebahq256": ("ddim", lambda: O.ddim_ddpm(128, (1, 1, 2, 2, 4, 4), 2, (16,), 256)),
    "iddpm_cifar10": ("openai", lambda: O.openai_unet(32, 128, 3, (16, 8), (1, 2, 2, 2), learn_sigma=True)),
    "iddpm_imagenet64": ("openai", lambda: O.openai_unet(64, 128, 3, (16, 8), (1, 2, 3, 4), learn_sigma=True)),
    "iddpm_imagenet64_cond": ("openai", lambda: O.openai_unet(64, 192, 3, (16, 8), (1, 2, 3, 4), learn_sigma=True,
                                                              num_classes=1000)),
    "iddpm_lsun_bedroom": ("openai", lambda: O.openai_unet(256, 128, 2, (16,), (1, 1, 2, 2, 4, 4), learn_sigma=True,
                                                           use_scale_shift_norm=False)),
    "adm_64": ("openai", lambda: O.openai_unet(64, 192, 3, (32, 16, 8), (1, 2, 3, 4), num_classes=1000, **_ADM)),
    "adm_128": ("openai", lambda: O.openai_unet(128, 256, 2, (32, 16, 8), (1, 1, 2, 3, 4), num_classes=1000, **_ADM)),
    "adm_256": ("openai", lambda: O.openai_unet(256, 256, 2, (32, 16, 8), (1, 1, 2, 2, 4, 4), num_classes=1000, **_ADM)),
    "adm_256_uncond": ("openai", lambda: O.openai_unet(256, 256, 2, (32, 16, 8), (1, 1, 2, 2, 4, 4), **_ADM)),
    "adm_512": ("openai", lambda: O.openai_unet(512, 256, 2, (32, 16, 8), (0.5, 1, 1, 2, 2, 4, 4), num_classes=1000, **_ADM)),
    "adm_classifier_64": ("openai", lambda: O.openai_classifier(64, 128, 4, (32, 16, 8), (1, 2, 3, 4))),
    "adm_classifier_128": ("openai", lambda: O.openai_classifier(128, 128, 2, (32, 16, 8), (1, 1, 2, 3, 4))),
    "adm_classifier_256": ("openai", lambda: O.openai_classifier(256, 128, 2, (32, 16, 8), (1, 1, 2, 2, 4, 4))),
    "adm_classifier_512": ("openai", lambda: O.openai_classifier(512, 128, 2, (32, 16, 8), (0.5, 1, 1, 2, 2, 4, 4))),
    "ncsnpp_cifar10_ve": ("score_sde", lambda: O.score_sde_ncsnpp(
        image_size=32, nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,), fir=True,
        progressive="none", progressive_input="residual", embedding_type="fourier")),
    "ncsnpp_deep_cifar10_ve": ("score_sde", lambda: O.score_sde_ncsnpp(
        image_size=32, nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=8, attn_resolutions=(16,), fir=True,
        progressive="none", progressive_input="residual", embedding_type="fourier")),
    "ddpmpp_cifar10_vp": ("score_sde", lambda: O.score_sde_ncsnpp(
        image_size=32, nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4, attn_resolutions=(16,), fir=False,
        progressive="none", progressive_input="none", embedding_type="positional")),
    "ncsnpp_celebahq256_ve": ("score_sde", lambda: O.score_sde_ncsnpp(
        image_size=256, nf=128, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), **_SKIP)),
    "ncsnpp_ffhq1024_ve": ("score_sde", lambda: O.score_sde_ncsnpp(
        image_size=1024, nf=16, ch_mult=(1, 2, 4, 8, 16, 32, 32, 32), num_res_blocks=1, attn_resolutions=(16,), **_SKIP)),
    "ncsn_cifar10": ("ncsn", lambda: O.ncsn(128)),
    "ncsn_mnist": ("ncsn", lambda: O.ncsn(64, channels=1)),
    "ncsnv2_cifar10": ("ncsnv2", lambda: O.ncsnv2(128)),
    "ncsnv2_deeper": ("ncsnv2", lambda: O.ncsnv2(128, num_classes=788, deeper=True)),
    "ncsnv2_bedroom128": ("ncsnv2", lambda: O.ncsnv2(128, num_classes=1086, deeper=True)),
}

BUFFERS = ("sigmas",)


def _config(name: str):
    return PRESETS[name].config if name in PRESETS else nets.config(name)


def _shapes(layout: dict) -> dict:
    return {k: tuple(v) for k, v in layout.items() if k not in BUFFERS}


@pytest.mark.parametrize("name", sorted(set(OFFICIAL) & set(REFERENCE)))
def test_official_layouts_have_the_official_parameter_counts(name: str) -> None:
    """The enumerations are right: their totals are the counts of the official builds (MODELS.md)."""
    assert O.parameters(OFFICIAL[name][1]()) == REFERENCE[name]


@pytest.mark.parametrize("name", [n if n in REFERENCE else pytest.param(n, marks=pytest.mark.slow) for n in sorted(OFFICIAL)])
def test_key_maps_write_the_official_keys_and_shapes(name: str) -> None:
    """Full size on the meta device: the counted configurations by default, every other published one in the slow run."""
    layout, official = OFFICIAL[name]
    with torch.device("meta"):
        net = _config(name).build()
    theirs = keymap(layout, net).theirs(net.state_dict())
    expected = _shapes(official())
    assert sorted(set(expected) - set(theirs)) == [] and sorted(set(theirs) - set(expected)) == []
    assert {k: tuple(v.shape) for k, v in theirs.items()} == expected
    # and the sizes read off these weights are the configuration's
    cfg = _config(name)
    found = infer_openai(theirs, cfg.image_size) if layout == "openai" else INFER[layout](theirs)
    levels = found.pop("attention_levels", None)
    if levels is not None:
        resolutions = getattr(cfg, "attention_resolutions", None) or cfg.attn_resolutions
        assert sorted(cfg.image_size // 2**lv for lv in levels) == sorted(resolutions)
    assert {k: v for k, v in found.items() if hasattr(cfg, k)} == {k: getattr(cfg, k) for k in found if hasattr(cfg, k)}


# Tiny configurations of every family, with the official enumeration of the same sizes.
TINY = {
    "ddpm_cifar10": (dict(image_size=16, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0),
                     lambda: O.ddim_ddpm(32, (1, 2), 1, (8,), 16)),
    "iddpm_cifar10": (dict(image_size=16, model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
                           attention_resolutions=(8, 4), dropout=0.0),
                      lambda: O.openai_unet(16, 32, 1, (8, 4), (1, 1, 2), learn_sigma=True)),
    "adm_64": (dict(image_size=16, model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
                    attention_resolutions=(8, 4), num_head_channels=16, num_classes=5, dropout=0.0),
               lambda: O.openai_unet(16, 32, 1, (8, 4), (1, 1, 2), num_classes=5, **_ADM)),
    "adm_classifier_128": (dict(image_size=16, model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
                                attention_resolutions=(8, 4), num_classes=5, num_head_channels=16),
                           lambda: O.openai_classifier(16, 32, 1, (8, 4), (1, 1, 2), num_classes=5)),
    "ncsnpp_cifar10_ve": (dict(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
                               dropout=0.0),
                          lambda: O.score_sde_ncsnpp(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1,
                                                     attn_resolutions=(8,), fir=True, progressive="none",
                                                     progressive_input="residual", embedding_type="fourier")),
    "ddpmpp_cifar10_vp": (dict(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
                               dropout=0.0),
                          lambda: O.score_sde_ncsnpp(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1,
                                                     attn_resolutions=(8,), fir=False, progressive="none",
                                                     progressive_input="none", embedding_type="positional")),
    "ncsnpp_celebahq256_ve": (dict(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,)),
                              lambda: O.score_sde_ncsnpp(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1,
                                                         attn_resolutions=(8,), **_SKIP)),
    "ncsn_cifar10": (dict(image_size=16, ngf=8, num_classes=4), lambda: O.ncsn(8, num_classes=4)),
    "ncsnv2_cifar10": (dict(image_size=16, ngf=8), lambda: O.ncsnv2(8, num_classes=6)),
    "ncsnv2_deeper": (dict(image_size=16, ngf=8), lambda: O.ncsnv2(8, num_classes=6, deeper=True)),
}


def _official_file(name: str, net: torch.nn.Module, path: Path, ema: dict | None = None) -> Path:
    """Save ``net`` as the official code would: its keys in the official order, in the official container."""
    layout, official = OFFICIAL[name][0], TINY[name][1]
    theirs = keymap(layout, net).theirs(net.state_dict())
    order = list(official())
    state = {k: theirs[k] if k in theirs else torch.linspace(50.0, 0.01, official()[k][0]) for k in order}
    shadow = None if ema is None else keymap(layout, net).theirs(ema)
    dp = {f"module.{k}": v for k, v in state.items()}
    if layout == "score_sde":  # ExponentialMovingAverage: the trainable parameters in order, Fourier W excluded
        trainable = [shadow[k] for k in order if k not in BUFFERS and k != "all_modules.0.W"] if shadow else []
        obj = {"optimizer": {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999)}]}, "model": dp,
               "ema": {"decay": 0.999, "num_updates": 7, "shadow_params": trainable}, "step": 7}
    elif layout == "ncsn":
        obj = [dp, {"state": {}, "param_groups": [{"lr": 1e-3}]}]
    elif layout == "ncsnv2":  # EMAHelper names parameters inside DataParallel: no prefix
        obj = [dp, {"state": {}, "param_groups": [{"lr": 1e-4}]}, 3, 7,
               {k: shadow[k] for k in order if k not in BUFFERS} if shadow else {}]
    else:
        obj = state
    file = path / f"{name}.{'pth' if layout in ('score_sde', 'ncsn', 'ncsnv2') else 'pt'}"
    torch.save(obj, file)
    return file


def _random_net(name: str, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = replace(_config(name), **TINY[name][0]).build().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def _outputs(net: torch.nn.Module, cfg) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, *cfg.data_shape, generator=g)
    noise = {"sigma_index": torch.tensor([0, 3]), "sigma": torch.tensor([0.05, 7.0]),
             "time_999": torch.tensor([3.0, 900.0]), "timestep_1000": torch.tensor([0.0, 999.0])}[cfg.noise_input]
    y = torch.tensor([1, 4]) if cfg.label_classes else None
    with torch.no_grad():
        return net(x, noise, y)


SIZES = {"ch", "ch_mult", "num_res_blocks", "attn_resolutions", "model_channels", "channel_mult", "attention_resolutions",
         "num_classes", "learn_sigma", "nf", "ngf", "depth", "progressive", "progressive_input", "embedding_type", "fir",
         "use_scale_shift_norm", "resblock_updown", "channels", "in_channels", "centered", "scale_by_sigma", "pool"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "ncsnv2_deeper" else n for n in sorted(TINY)])
def test_round_trip_through_the_official_container(name: str, tmp_path: Path) -> None:
    """Saved as the official code saves it, loaded by name (EMA and raw weights) and by family: identical outputs."""
    net = _random_net(name, 0)
    layout = OFFICIAL[name][0]
    averaged = _random_net(name, 1) if layout in ("score_sde", "ncsnv2") else None
    if getattr(averaged, "fourier", None) is not None:  # never trained, so the same in both sets (and not in the EMA)
        averaged.fourier.frequencies.copy_(net.fourier.frequencies)
    file = _official_file(name, net, tmp_path, None if averaged is None else averaged.state_dict())
    loaded = load(name, file, **TINY[name][0])
    assert loaded.layout == layout and loaded.weights == ("single" if averaged is None else "ema")
    expected = _outputs(net if averaged is None else averaged, net.config)
    assert torch.equal(_outputs(loaded.net, loaded.config), expected)
    if averaged is not None:
        raw = load(name, file, ema=False, **TINY[name][0])
        assert raw.weights == "raw" and torch.equal(_outputs(raw.net, raw.config), _outputs(net, net.config))
        assert loaded.sigmas is not None and float(loaded.sigmas[0]) == 50.0
    # by family (detected): the sizes are read off the weights; heads and their order cannot be, so they are given
    extra = {k: v for k, v in TINY[name][0].items() if k in ("image_size", "num_head_channels")}
    if layout == "openai" and hasattr(net.config, "num_heads"):
        extra.update(num_heads=net.config.num_heads, use_new_attention_order=net.config.use_new_attention_order)
    found = load(None, file, **extra)
    assert {f: getattr(found.config, f) for f in SIZES if hasattr(net.config, f)} == \
        {f: getattr(net.config, f) for f in SIZES if hasattr(net.config, f)}
    assert torch.equal(_outputs(found.net, found.config), expected)


def test_heads_must_be_given_for_an_adm_family_load(tmp_path: Path) -> None:
    file = _official_file("adm_64", _random_net("adm_64", 0), tmp_path)
    with pytest.raises(CheckpointError, match="do not say how attention splits into heads.*adm_64"):
        load("adm", file, image_size=16)


def test_wrong_architecture_is_one_clear_error(tmp_path: Path) -> None:
    ncsn_file = _official_file("ncsn_cifar10", _random_net("ncsn_cifar10", 0), tmp_path)
    with pytest.raises(CheckpointError, match=r"holds a ncsn network \(ncsn layout\), not ddpm \('ddpm_cifar10'\)"):
        load("ddpm_cifar10", ncsn_file)
    ddpm_file = _official_file("ddpm_cifar10", _random_net("ddpm_cifar10", 0), tmp_path)
    with pytest.raises(CheckpointError) as err:
        load("ddpm_cifar10", ddpm_file)  # the file is a 32-channel, two-level DDPM; ddpm_cifar10 is 128, four levels
    message = str(err.value)
    assert message.count("\n") == 0
    for part in ("does not fit ddpm_cifar10 (DDPMConfig)", "184 missing key(s): down.0.block.1.norm1.weight",
                 "143 shape mismatch(es): temb.dense.0.weight (128, 32) (expected (512, 128))",
                 "its weights suggest ch=32, ch_mult=(1, 2), num_res_blocks=1"):
        assert part in message, (part, message)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_truncated_file_is_refused(suffix: str, tmp_path: Path) -> None:
    net = _random_net("ncsn_cifar10", 0)
    file = tmp_path / f"whole{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(net.state_dict(), str(file))
    else:
        torch.save(keymap("ncsn", net).theirs(net.state_dict()), file)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(file.read_bytes()[: file.stat().st_size * 2 // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load("ncsn_cifar10", cut)


class _Payload:
    """Unpickling this object calls os.makedirs(path): a stand-in for any code a pickle can carry."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """A checkpoint whose unpickling would create a folder: refused by name, and the folder is never created."""
    file, marker = tmp_path / "evil.pt", tmp_path / "created_by_pickle"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, file)
    with pytest.raises(CheckpointError, match=r"refused: it asks to run code.*os\.makedirs"):
        load("ncsn_cifar10", file)
    assert not marker.exists()
    # the payload is real: an unsafe load does run it (done here deliberately, on our own file)
    torch.load(file, weights_only=False)
    assert marker.is_dir()


def test_missing_and_unknown_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load("ncsn_cifar10", tmp_path / "nowhere.pth")
    (tmp_path / "weights.npz").write_bytes(b"\0")
    with pytest.raises(CheckpointError, match="unknown checkpoint type '.npz'"):
        load("ncsn_cifar10", tmp_path / "weights.npz")
    with pytest.raises(CheckpointError, match="has no config.json"):
        load("ddpm_cifar10", tmp_path)
    torch.save({"step": 3, "config": "x"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a network's state dict"):
        load(None, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="unknown checkpoint name 'ddpm_cifar11'"):
        load("ddpm_cifar11", tmp_path / "other.pt")


def test_presets_agree_with_the_named_configurations() -> None:
    for name, preset in PRESETS.items():
        if name in nets.names():
            assert preset.config == nets.config(name), name


def test_readme_lists_every_published_checkpoint() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Published checkpoints"):readme.index("## Benchmarks")]
    assert [name for name in PRESETS if f"`{name}`" not in section] == []


@pytest.mark.parametrize("name", ["ddpm_cifar10", "adm_64", "ddpmpp_cifar10_vp", "ncsnpp_cifar10_ve", "ncsn_cifar10"])
def test_loaded_networks_plug_into_every_sampler(name: str, tmp_path: Path) -> None:
    """``loaded.model()`` on ``loaded.process()`` (the process of the published flags) runs DDPM, DDIM and the ODE."""
    from diffcheck import process as P
    from diffcheck import samplers as S

    loaded = load(name, _official_file(name, _random_net(name, 0), tmp_path), **TINY[name][0])
    process, model = loaded.process(), loaded.model()
    if loaded.config.noise_input == "sigma_index":
        ladder = P.geometric_sigmas(1.0, 0.01, loaded.config.num_classes)
        grid = P.sigma_grid(process, ladder[[0, 2, 3]])
    elif isinstance(process, P.DiscreteVP):
        grid = P.iddpm_grid(process, [3])[:-1]
    else:
        grid = P.uniform_grid(3, 1.0, 1e-2)
    kw = {"y": torch.tensor([0, 1])} if loaded.config.label_classes else {}
    x = process.prior_sample((2, *loaded.config.data_shape), torch.Generator().manual_seed(0), dtype=torch.float32)
    with torch.no_grad():
        for out in (S.ddpm_ancestral(model, process, x, grid, generator=torch.Generator().manual_seed(1), **kw),
                    S.ddim(model, process, x, grid, **kw), S.heun_ode(model, process, x, grid, **kw)):
            assert out.shape == x.shape and torch.isfinite(out).all()


def test_heads_are_checked_only_where_attention_is() -> None:
    """guided-diffusion asserts ``channels % num_head_channels == 0`` in each AttentionBlock, nowhere else: iDDPM's
    LSUN bedroom U-Net (one 512-wide head at 16x16 and in the middle) is valid though its 128-wide levels are not
    multiples of 512. ADMConfig used to check every level and refused it."""
    cfg = replace(PRESETS["iddpm_lsun_bedroom"].config, num_heads=4, num_head_channels=512)
    with torch.device("meta"):
        net = cfg.build()
    assert [m.num_heads for m in net.modules() if hasattr(m, "qkv") and hasattr(m, "num_heads")] == [1] * 6
    with pytest.raises(ValueError, match=r"channels \[512, 512\] are not multiples of num_head_channels=384"):
        replace(cfg, num_head_channels=384)
