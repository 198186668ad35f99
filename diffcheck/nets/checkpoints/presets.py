"""The published checkpoints of the seed papers: their configuration, training process and where to obtain them.

Facts from the authors' READMEs and configuration files (improved-diffusion and guided-diffusion README flags and
`script_util.py`; score_sde_pytorch `configs/`; ermongroup/ncsn `configs/anneal.yml`; ermongroup/ncsnv2
`configs/*.yml`; ddim `functions/ckpt_util.py`) and the diffusers model cards. Nothing here is downloaded: the
user passes the path of a file or folder obtained from the address given.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..adm import ADMClassifierConfig, ADMConfig
from ..base import replace
from ..ddpm import DDPMConfig
from ..ncsn import NCSNConfig
from ..ncsnpp import NCSNppConfig
from ..ncsnv2 import NCSNv2Config

__all__ = ["Preset", "PRESETS", "process_of", "NCSN_PROCESS"]

OPENAI = "https://openaipublic.blob.core.windows.net/diffusion"
HEIBOX = "https://heibox.uni-heidelberg.de/f"
DRIVE = "https://drive.google.com/drive/folders"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A published checkpoint family: its configuration, the process it was trained on, and its files."""

    config: Any
    process: dict[str, Any]
    files: tuple[tuple[str, str], ...]  # (file or folder, address)
    wrap: dict[str, Any] = dataclasses.field(default_factory=dict)  # wrap_net options (rescale_timesteps, sigmas)


def _hf(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{n} (diffusers folder)", f"https://huggingface.co/google/{n}") for n in names)


def _openai(month: str, *files: str) -> tuple[tuple[str, str], ...]:
    return tuple((f, f"{OPENAI}/{month}/{f}") for f in files)


def _drive(folder: str, path: str) -> tuple[tuple[str, str], ...]:
    return ((path, f"{DRIVE}/{folder}"),)


def _ve(sigma_max: float) -> dict[str, Any]:
    return {"kind": "ve", "sigma_min": 0.01, "sigma_max": sigma_max}


NCSN_PROCESS = {"kind": "ve", "sigma_min": 0.005, "sigma_max": 2.0}
"""A VE process whose noise levels cover NCSN's ladder 1 -> 0.01 with room on both sides (its times are the ladder's)."""

LINEAR = {"kind": "ddpm-linear", "T": 1000}
COSINE_4000 = {"kind": "ddpm-cosine", "T": 4000}
VP = {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0}
SUBVP = {"kind": "subvp", "beta_min": 0.1, "beta_max": 20.0}
NO_RESCALE = {"rescale_timesteps": False}
NCSN_RUN = "https://drive.google.com/file/d/1BF2mwFv5IRCGaQbEWTbLlAOWEkNzMe5O"
NCSNV2_DRIVE = "1217uhIvLg9ZrYNKOR3XTRFSurt4miQrd"

_DDPM256 = DDPMConfig(image_size=256, ch_mult=(1, 1, 2, 2, 4, 4), dropout=0.0)
_ADM = dict(num_res_blocks=2, attention_resolutions=(32, 16, 8), resblock_updown=True, learn_sigma=True)
_ADM256 = ADMConfig(image_size=256, model_channels=256, channel_mult=(1, 1, 2, 2, 4, 4), num_head_channels=64,
                    num_classes=1000, **_ADM)
_CLS = ADMClassifierConfig()
_NCSNPP256 = NCSNppConfig(image_size=256, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2, progressive="output_skip",
                          progressive_input="input_skip", dropout=0.0)
_DDPMPP = NCSNppConfig(fir=False, progressive_input="none", embedding_type="positional", scale_by_sigma=False,
                       centered=True, prediction="eps", noise_input="time_999")
_IDDPM64 = ADMConfig(image_size=64, model_channels=128, num_res_blocks=3, channel_mult=(1, 2, 3, 4),
                     attention_resolutions=(16, 8), num_heads=4, learn_sigma=True)
_LSUN_CKPT = (("ema_diffusion_lsun_church_model/model-4432000.ckpt", f"{HEIBOX}/44ccb50ef3c6436db52e/?dl=1"),
              ("ema_diffusion_lsun_bedroom_model/model-2388000.ckpt", f"{HEIBOX}/b95206528f384185889b/?dl=1"),
              ("ema_diffusion_lsun_cat_model/model-1761000.ckpt", f"{HEIBOX}/0701aac3aa69457bbe34/?dl=1"))

PRESETS: dict[str, Preset] = {
    # Ho et al. 2020: diffusers' ports and pesser/pytorch_diffusion's (used by ddim), linear betas 1e-4..0.02, T = 1000.
    "ddpm_cifar10": Preset(DDPMConfig(), LINEAR, _hf("ddpm-cifar10-32") + (
        ("ema_diffusion_cifar10_model/model-790000.ckpt", f"{HEIBOX}/2e4f01e2d9ee49bab1d5/?dl=1"),
        ("diffusion_cifar10_model/model-790000.ckpt", f"{HEIBOX}/869980b53bf5416c8a28/?dl=1"))),
    "ddpm_celebahq256": Preset(_DDPM256, LINEAR, _hf("ddpm-celebahq-256", "ddpm-ema-celebahq-256")),
    "ddpm_lsun256": Preset(_DDPM256, LINEAR, _hf("ddpm-church-256", "ddpm-ema-church-256", "ddpm-bedroom-256",
                                                  "ddpm-ema-bedroom-256", "ddpm-cat-256", "ddpm-ema-cat-256") + _LSUN_CKPT),
    # Nichol & Dhariwal 2021, improved-diffusion README (rescale_timesteps defaults to True there).
    "iddpm_cifar10": Preset(ADMConfig(image_size=32, model_channels=128, num_res_blocks=3, channel_mult=(1, 2, 2, 2),
                                      attention_resolutions=(16, 8), num_heads=4, dropout=0.3, learn_sigma=True),
                            COSINE_4000, _openai("march-2021", "cifar10_uncond_50M_500K.pt", "cifar10_uncond_vlb_50M_500K.pt")),
    "iddpm_imagenet64": Preset(_IDDPM64, COSINE_4000, _openai("march-2021", "imagenet64_uncond_100M_1500K.pt",
                                                              "imagenet64_uncond_vlb_100M_1500K.pt")),
    "iddpm_imagenet64_cond": Preset(replace(_IDDPM64, model_channels=192, num_classes=1000), COSINE_4000,
                                    _openai("march-2021", "imagenet64_cond_270M_250K.pt"), NO_RESCALE),
    "iddpm_lsun_bedroom": Preset(ADMConfig(image_size=256, model_channels=128, num_res_blocks=2,
                                           channel_mult=(1, 1, 2, 2, 4, 4), attention_resolutions=(16,), num_heads=1,
                                           use_scale_shift_norm=False, learn_sigma=True), LINEAR,
                                 _openai("march-2021", "lsun_uncond_100M_1200K_bs128.pt", "lsun_uncond_100M_2400K_bs64.pt"),
                                 NO_RESCALE),
    # Dhariwal & Nichol 2021, guided-diffusion README flags (no timestep rescaling, T = 1000).
    "adm_64": Preset(ADMConfig(image_size=64, model_channels=192, num_res_blocks=3, channel_mult=(1, 2, 3, 4),
                               attention_resolutions=(32, 16, 8), num_head_channels=64, dropout=0.1, resblock_updown=True,
                               use_new_attention_order=True, learn_sigma=True, num_classes=1000),
                     {"kind": "ddpm-cosine", "T": 1000}, _openai("jul-2021", "64x64_diffusion.pt"), NO_RESCALE),
    "adm_128": Preset(ADMConfig(image_size=128, model_channels=256, channel_mult=(1, 1, 2, 3, 4), num_heads=4,
                                num_classes=1000, **_ADM), LINEAR, _openai("jul-2021", "128x128_diffusion.pt"), NO_RESCALE),
    "adm_256": Preset(_ADM256, LINEAR, _openai("jul-2021", "256x256_diffusion.pt"), NO_RESCALE),
    "adm_256_uncond": Preset(replace(_ADM256, num_classes=None), LINEAR,
                             _openai("jul-2021", "256x256_diffusion_uncond.pt"), NO_RESCALE),
    "adm_512": Preset(replace(_ADM256, image_size=512, channel_mult=(0.5, 1, 1, 2, 2, 4, 4)), LINEAR,
                      _openai("jul-2021", "512x512_diffusion.pt"), NO_RESCALE),
    "adm_lsun256": Preset(replace(_ADM256, num_classes=None, dropout=0.1), LINEAR,
                          _openai("jul-2021", *(f"lsun_{c}.pt" for c in ("bedroom", "cat", "horse", "horse_nodropout"))),
                          NO_RESCALE),
    "adm_classifier_64": Preset(replace(_CLS, image_size=64, num_res_blocks=4, channel_mult=(1, 2, 3, 4)),
                                {"kind": "ddpm-cosine", "T": 1000}, _openai("jul-2021", "64x64_classifier.pt"), NO_RESCALE),
    "adm_classifier_128": Preset(_CLS, LINEAR, _openai("jul-2021", "128x128_classifier.pt"), NO_RESCALE),
    "adm_classifier_256": Preset(replace(_CLS, image_size=256, channel_mult=(1, 1, 2, 2, 4, 4)), LINEAR,
                                 _openai("jul-2021", "256x256_classifier.pt"), NO_RESCALE),
    "adm_classifier_512": Preset(replace(_CLS, image_size=512, channel_mult=(0.5, 1, 1, 2, 2, 4, 4)), LINEAR,
                                 _openai("jul-2021", "512x512_classifier.pt"), NO_RESCALE),
    # Song et al. 2021, score_sde_pytorch README (Google Drive folders) and configs; diffusers' ports of the VE models.
    "ncsnpp_cifar10_ve": Preset(NCSNppConfig(), _ve(50.0), _drive("1b0gy_LLgO_DaQBgoWXwlVnL_rcAUgREh",
                                                                  "ve/cifar10_ncsnpp_continuous/checkpoint_*.pth")),
    "ncsnpp_deep_cifar10_ve": Preset(NCSNppConfig(num_res_blocks=8), _ve(50.0), _drive(
        "11s6A_xM7qiztdj8AHQWqaIAUSC3I7uX2", "ve/cifar10_ncsnpp_deep_continuous/checkpoint_*.pth")),
    "ddpmpp_cifar10_vp": Preset(_DDPMPP, VP, _drive("1xYjVMx10N9ivQQBIsEoXEeu9nvSGTBrC",
                                                    "vp/cifar10_ddpmpp_continuous/checkpoint_*.pth")),
    "ddpmpp_deep_cifar10_vp": Preset(replace(_DDPMPP, num_res_blocks=8), VP, _drive(
        "1ZMLBiu9j7-rpdTQu8M2LlHAEQq4xRYrj", "vp/cifar10_ddpmpp_deep_continuous/checkpoint_*.pth")),
    "ddpmpp_cifar10_subvp": Preset(_DDPMPP, SUBVP, _drive("1bLgmnEAZnysRZfWt8qN3omGfijJ_B884",
                                                          "subvp/cifar10_ddpmpp_continuous/checkpoint_*.pth")),
    "ddpmpp_deep_cifar10_subvp": Preset(replace(_DDPMPP, num_res_blocks=8), SUBVP, _drive(
        "16QGkviGcizSbIPRk37-YksUhlNIna4Ys", "subvp/cifar10_ddpmpp_deep_continuous/checkpoint_*.pth")),
    "ddpmpp_cifar10_vp_discrete": Preset(replace(_DDPMPP, noise_input="timestep_1000"), LINEAR, _drive(
        "1zOVj03ZBcq339p5QEKJPh2bBrxR_HOCM", "vp/cifar10_ddpmpp/checkpoint_*.pth")),
    "ncsnpp_celebahq256_ve": Preset(_NCSNPP256, _ve(348.0), _hf("ncsnpp-celebahq-256") + _drive(
        "19VJ7UZTE-ytGX6z5rl-tumW9c0Ps3itk", "ve/celebahq_256_ncsnpp_continuous/checkpoint_*.pth")),
    "ncsnpp_ffhq256_ve": Preset(_NCSNPP256, _ve(348.0), _hf("ncsnpp-ffhq-256") + _drive(
        "1KG72ZKUCUa8dDcA03hOf1BsnK8kBcdPD", "ve/ffhq_256_ncsnpp_continuous/checkpoint_*.pth")),
    "ncsnpp_church256_ve": Preset(_NCSNPP256, _ve(380.0), _hf("ncsnpp-church-256") + _drive(
        "1zVChA0HrnJU66Jkt4P6KOnlREhBMc4Yh", "ve/church_ncsnpp_continuous/checkpoint_*.pth")),
    "ncsnpp_bedroom256_ve": Preset(_NCSNPP256, _ve(378.0), _hf("ncsnpp-bedroom-256") + _drive(
        "18GmxDvfGR8se9uFucc9uweeVrX_GzuUG", "ve/bedroom_ncsnpp_continuous/checkpoint_*.pth")),
    "ncsnpp_ffhq1024_ve": Preset(replace(_NCSNPP256, image_size=1024, nf=16, ch_mult=(1, 2, 4, 8, 16, 32, 32, 32),
                                         num_res_blocks=1), _ve(1348.0), _hf("ncsnpp-ffhq-1024") + _drive(
        "1ZqLNr_kH0o9DxvwSlrQPMmkrhEnXhBm2", "ve/ffhq_1024_ncsnpp_continuous/checkpoint_*.pth")),
    # Song & Ermon 2019: ermongroup/ncsn run.zip (logs/<dataset>/checkpoint.pth), ladder 1 -> 0.01 over 10 levels.
    "ncsn_cifar10": Preset(NCSNConfig(), NCSN_PROCESS, (("run/logs/cifar10/checkpoint.pth", NCSN_RUN),)),
    "ncsn_celeba": Preset(NCSNConfig(), NCSN_PROCESS, (("run/logs/celeba/checkpoint.pth", NCSN_RUN),)),
    "ncsn_mnist": Preset(NCSNConfig(image_size=28, channels=1, ngf=64), NCSN_PROCESS,
                         (("run/logs/mnist/checkpoint.pth", NCSN_RUN),)),
    # Song & Ermon 2020: ermongroup/ncsnv2 Google Drive (exp/logs/<doc>/checkpoint_<step>.pth); the ladder is in the file.
    "ncsnv2_cifar10": Preset(NCSNv2Config(), _ve(50.0), _drive(NCSNV2_DRIVE, "exp/logs/cifar10/checkpoint_*.pth")),
    "ncsnv2_celeba64": Preset(NCSNv2Config(image_size=64), _ve(90.0), _drive(NCSNV2_DRIVE, "exp/logs/celeba/checkpoint_*.pth")),
    "ncsnv2_church64": Preset(NCSNv2Config(image_size=64, depth="deeper"), _ve(140.0),
                              _drive(NCSNV2_DRIVE, "exp/logs/church/checkpoint_*.pth")),
    "ncsnv2_bedroom128": Preset(NCSNv2Config(image_size=128, depth="deeper"), _ve(190.0),
                                _drive(NCSNV2_DRIVE, "exp/logs/bedroom/checkpoint_*.pth")),
    "ncsnv2_tower128": Preset(NCSNv2Config(image_size=128, depth="deeper"), _ve(190.0),
                              _drive(NCSNV2_DRIVE, "exp/logs/tower/checkpoint_*.pth")),
}


def process_of(spec: dict[str, Any]):
    """The diffcheck process a preset's ``process`` entry names."""
    from ... import process as P

    kind = spec["kind"]
    if kind == "ddpm-linear":
        return P.DiscreteVP.linear(spec.get("T", 1000))
    if kind == "ddpm-cosine":
        return P.DiscreteVP.cosine(spec.get("T", 1000))
    if kind == "vp":
        return P.VP(spec["beta_min"], spec["beta_max"])
    if kind == "subvp":
        return P.SubVP(spec["beta_min"], spec["beta_max"])
    if kind == "ve":
        return P.VE(sigma_min=spec["sigma_min"], sigma_max=spec["sigma_max"])
    raise ValueError(f"unknown process kind {kind!r}; known: ddpm-linear, ddpm-cosine, vp, subvp, ve")
