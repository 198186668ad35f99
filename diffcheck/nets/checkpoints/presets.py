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

OPENAI_2021 = "https://openaipublic.blob.core.windows.net/diffusion"
HEIBOX = "https://heibox.uni-heidelberg.de/f"
SCORE_SDE = "https://drive.google.com/drive/folders"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A published checkpoint family: its configuration, the process it was trained on, and its files."""

    config: Any
    process: dict[str, Any]
    files: tuple[tuple[str, str], ...]  # (file or folder, address)
    wrap: dict[str, Any] = dataclasses.field(default_factory=dict)  # as_model options (rescale_timesteps, sigmas)


def _hf(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{n} (diffusers folder)", f"https://huggingface.co/google/{n}") for n in names)


LINEAR = {"kind": "ddpm-linear", "T": 1000}
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


def _ve(sigma_max: float) -> dict[str, Any]:
    return {"kind": "ve", "sigma_min": 0.01, "sigma_max": sigma_max}


NCSN_PROCESS = {"kind": "ve", "sigma_min": 0.005, "sigma_max": 2.0}
"""A VE process whose noise levels cover NCSN's ladder 1 -> 0.01 with room on both sides (its times are the ladder's)."""


PRESETS: dict[str, Preset] = {
    # Ho et al. 2020: diffusers' ports and pesser/pytorch_diffusion's (used by ddim), linear betas 1e-4..0.02, T = 1000.
    "ddpm_cifar10": Preset(DDPMConfig(), LINEAR, _hf("ddpm-cifar10-32") + (
        ("ema_diffusion_cifar10_model/model-790000.ckpt", f"{HEIBOX}/2e4f01e2d9ee49bab1d5/?dl=1"),
        ("diffusion_cifar10_model/model-790000.ckpt", f"{HEIBOX}/869980b53bf5416c8a28/?dl=1"))),
    "ddpm_celebahq256": Preset(_DDPM256, LINEAR, _hf("ddpm-celebahq-256", "ddpm-ema-celebahq-256")),
    "ddpm_lsun256": Preset(_DDPM256, LINEAR, _hf("ddpm-church-256", "ddpm-ema-church-256", "ddpm-bedroom-256",
                                                  "ddpm-ema-bedroom-256", "ddpm-cat-256", "ddpm-ema-cat-256") + (
        ("ema_diffusion_lsun_church_model/model-4432000.ckpt", f"{HEIBOX}/44ccb50ef3c6436db52e/?dl=1"),
        ("ema_diffusion_lsun_bedroom_model/model-2388000.ckpt", f"{HEIBOX}/b95206528f384185889b/?dl=1"),
        ("ema_diffusion_lsun_cat_model/model-1761000.ckpt", f"{HEIBOX}/0701aac3aa69457bbe34/?dl=1"))),
    # Nichol & Dhariwal 2021, improved-diffusion README (rescale_timesteps defaults to True there).
    "iddpm_cifar10": Preset(ADMConfig(image_size=32, model_channels=128, num_res_blocks=3, channel_mult=(1, 2, 2, 2),
                                      attention_resolutions=(16, 8), num_heads=4, dropout=0.3, learn_sigma=True),
                            {"kind": "ddpm-cosine", "T": 4000},
                            (("cifar10_uncond_50M_500K.pt", f"{OPENAI_2021}/march-2021/cifar10_uncond_50M_500K.pt"),
                             ("cifar10_uncond_vlb_50M_500K.pt", f"{OPENAI_2021}/march-2021/cifar10_uncond_vlb_50M_500K.pt"))),
    "iddpm_imagenet64": Preset(_IDDPM64, {"kind": "ddpm-cosine", "T": 4000},
                               (("imagenet64_uncond_100M_1500K.pt", f"{OPENAI_2021}/march-2021/imagenet64_uncond_100M_1500K.pt"),
                                ("imagenet64_uncond_vlb_100M_1500K.pt",
                                 f"{OPENAI_2021}/march-2021/imagenet64_uncond_vlb_100M_1500K.pt"))),
    "iddpm_imagenet64_cond": Preset(replace(_IDDPM64, model_channels=192, num_classes=1000),
                                    {"kind": "ddpm-cosine", "T": 4000},
                                    (("imagenet64_cond_270M_250K.pt", f"{OPENAI_2021}/march-2021/imagenet64_cond_270M_250K.pt"),),
                                    {"rescale_timesteps": False}),
    "iddpm_lsun_bedroom": Preset(ADMConfig(image_size=256, model_channels=128, num_res_blocks=2,
                                           channel_mult=(1, 1, 2, 2, 4, 4), attention_resolutions=(16,), num_heads=1,
                                           use_scale_shift_norm=False, learn_sigma=True), LINEAR,
                                 (("lsun_uncond_100M_1200K_bs128.pt", f"{OPENAI_2021}/march-2021/lsun_uncond_100M_1200K_bs128.pt"),
                                  ("lsun_uncond_100M_2400K_bs64.pt", f"{OPENAI_2021}/march-2021/lsun_uncond_100M_2400K_bs64.pt")),
                                 {"rescale_timesteps": False}),
    # Dhariwal & Nichol 2021, guided-diffusion README flags (no timestep rescaling, T = 1000).
    "adm_64": Preset(ADMConfig(image_size=64, model_channels=192, num_res_blocks=3, channel_mult=(1, 2, 3, 4),
                               attention_resolutions=(32, 16, 8), num_head_channels=64, dropout=0.1, resblock_updown=True,
                               use_new_attention_order=True, learn_sigma=True, num_classes=1000),
                     {"kind": "ddpm-cosine", "T": 1000}, (("64x64_diffusion.pt", f"{OPENAI_2021}/jul-2021/64x64_diffusion.pt"),),
                     {"rescale_timesteps": False}),
    "adm_128": Preset(ADMConfig(image_size=128, model_channels=256, channel_mult=(1, 1, 2, 3, 4), num_heads=4,
                                num_classes=1000, **_ADM), LINEAR,
                      (("128x128_diffusion.pt", f"{OPENAI_2021}/jul-2021/128x128_diffusion.pt"),), {"rescale_timesteps": False}),
    "adm_256": Preset(_ADM256, LINEAR, (("256x256_diffusion.pt", f"{OPENAI_2021}/jul-2021/256x256_diffusion.pt"),),
                      {"rescale_timesteps": False}),
    "adm_256_uncond": Preset(replace(_ADM256, num_classes=None), LINEAR,
                             (("256x256_diffusion_uncond.pt", f"{OPENAI_2021}/jul-2021/256x256_diffusion_uncond.pt"),),
                             {"rescale_timesteps": False}),
    "adm_512": Preset(replace(_ADM256, image_size=512, channel_mult=(0.5, 1, 1, 2, 2, 4, 4)), LINEAR,
                      (("512x512_diffusion.pt", f"{OPENAI_2021}/jul-2021/512x512_diffusion.pt"),), {"rescale_timesteps": False}),
    "adm_lsun256": Preset(replace(_ADM256, num_classes=None, dropout=0.1), LINEAR,
                          tuple((f"lsun_{c}.pt", f"{OPENAI_2021}/jul-2021/lsun_{c}.pt")
                                for c in ("bedroom", "cat", "horse", "horse_nodropout")), {"rescale_timesteps": False}),
    "adm_classifier_64": Preset(replace(_CLS, image_size=64, num_res_blocks=4, channel_mult=(1, 2, 3, 4)),
                                {"kind": "ddpm-cosine", "T": 1000},
                                (("64x64_classifier.pt", f"{OPENAI_2021}/jul-2021/64x64_classifier.pt"),), {"rescale_timesteps": False}),
    "adm_classifier_128": Preset(_CLS, LINEAR, (("128x128_classifier.pt", f"{OPENAI_2021}/jul-2021/128x128_classifier.pt"),),
                                 {"rescale_timesteps": False}),
    "adm_classifier_256": Preset(replace(_CLS, image_size=256, channel_mult=(1, 1, 2, 2, 4, 4)), LINEAR,
                                 (("256x256_classifier.pt", f"{OPENAI_2021}/jul-2021/256x256_classifier.pt"),),
                                 {"rescale_timesteps": False}),
    "adm_classifier_512": Preset(replace(_CLS, image_size=512, channel_mult=(0.5, 1, 1, 2, 2, 4, 4)), LINEAR,
                                 (("512x512_classifier.pt", f"{OPENAI_2021}/jul-2021/512x512_classifier.pt"),),
                                 {"rescale_timesteps": False}),
    # Song et al. 2021, score_sde_pytorch README (Google Drive folders) and configs; diffusers' ports of the VE models.
    "ncsnpp_cifar10_ve": Preset(NCSNppConfig(), _ve(50.0),
                                (("ve/cifar10_ncsnpp_continuous/checkpoint_*.pth", f"{SCORE_SDE}/1b0gy_LLgO_DaQBgoWXwlVnL_rcAUgREh"),)),
    "ncsnpp_deep_cifar10_ve": Preset(NCSNppConfig(num_res_blocks=8), _ve(50.0),
                                     (("ve/cifar10_ncsnpp_deep_continuous/checkpoint_*.pth",
                                       f"{SCORE_SDE}/11s6A_xM7qiztdj8AHQWqaIAUSC3I7uX2"),)),
    "ddpmpp_cifar10_vp": Preset(_DDPMPP, {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0},
                                (("vp/cifar10_ddpmpp_continuous/checkpoint_*.pth", f"{SCORE_SDE}/1xYjVMx10N9ivQQBIsEoXEeu9nvSGTBrC"),)),
    "ddpmpp_deep_cifar10_vp": Preset(replace(_DDPMPP, num_res_blocks=8), {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0},
                                     (("vp/cifar10_ddpmpp_deep_continuous/checkpoint_*.pth",
                                       f"{SCORE_SDE}/1ZMLBiu9j7-rpdTQu8M2LlHAEQq4xRYrj"),)),
    "ddpmpp_cifar10_subvp": Preset(_DDPMPP, {"kind": "subvp", "beta_min": 0.1, "beta_max": 20.0},
                                   (("subvp/cifar10_ddpmpp_continuous/checkpoint_*.pth",
                                     f"{SCORE_SDE}/1bLgmnEAZnysRZfWt8qN3omGfijJ_B884"),)),
    "ddpmpp_deep_cifar10_subvp": Preset(replace(_DDPMPP, num_res_blocks=8), {"kind": "subvp", "beta_min": 0.1, "beta_max": 20.0},
                                        (("subvp/cifar10_ddpmpp_deep_continuous/checkpoint_*.pth",
                                          f"{SCORE_SDE}/16QGkviGcizSbIPRk37-YksUhlNIna4Ys"),)),
    "ddpmpp_cifar10_vp_discrete": Preset(replace(_DDPMPP, noise_input="timestep_1000"), LINEAR,
                                         (("vp/cifar10_ddpmpp/checkpoint_*.pth", f"{SCORE_SDE}/1zOVj03ZBcq339p5QEKJPh2bBrxR_HOCM"),)),
    "ncsnpp_celebahq256_ve": Preset(_NCSNPP256, _ve(348.0), _hf("ncsnpp-celebahq-256") + (
        ("ve/celebahq_256_ncsnpp_continuous/checkpoint_*.pth", f"{SCORE_SDE}/19VJ7UZTE-ytGX6z5rl-tumW9c0Ps3itk"),)),
    "ncsnpp_ffhq256_ve": Preset(_NCSNPP256, _ve(348.0), _hf("ncsnpp-ffhq-256") + (
        ("ve/ffhq_256_ncsnpp_continuous/checkpoint_*.pth", f"{SCORE_SDE}/1KG72ZKUCUa8dDcA03hOf1BsnK8kBcdPD"),)),
    "ncsnpp_church256_ve": Preset(_NCSNPP256, _ve(380.0), _hf("ncsnpp-church-256") + (
        ("ve/church_ncsnpp_continuous/checkpoint_*.pth", f"{SCORE_SDE}/1zVChA0HrnJU66Jkt4P6KOnlREhBMc4Yh"),)),
    "ncsnpp_bedroom256_ve": Preset(_NCSNPP256, _ve(378.0), _hf("ncsnpp-bedroom-256") + (
        ("ve/bedroom_ncsnpp_continuous/checkpoint_*.pth", f"{SCORE_SDE}/18GmxDvfGR8se9uFucc9uweeVrX_GzuUG"),)),
    "ncsnpp_ffhq1024_ve": Preset(replace(_NCSNPP256, image_size=1024, nf=16, ch_mult=(1, 2, 4, 8, 16, 32, 32, 32),
                                         num_res_blocks=1), _ve(1348.0), _hf("ncsnpp-ffhq-1024") + (
        ("ve/ffhq_1024_ncsnpp_continuous/checkpoint_*.pth", f"{SCORE_SDE}/1ZqLNr_kH0o9DxvwSlrQPMmkrhEnXhBm2"),)),
    # Song & Ermon 2019: ermongroup/ncsn run.zip (logs/<dataset>/checkpoint.pth), ladder 1 -> 0.01 over 10 levels.
    "ncsn_cifar10": Preset(NCSNConfig(), NCSN_PROCESS, (("run/logs/cifar10/checkpoint.pth", "https://drive.google.com/file/d/1BF2mwFv5IRCGaQbEWTbLlAOWEkNzMe5O"),)),
    "ncsn_celeba": Preset(NCSNConfig(), NCSN_PROCESS, (("run/logs/celeba/checkpoint.pth", "https://drive.google.com/file/d/1BF2mwFv5IRCGaQbEWTbLlAOWEkNzMe5O"),)),
    "ncsn_mnist": Preset(NCSNConfig(image_size=28, channels=1, ngf=64), NCSN_PROCESS,
                         (("run/logs/mnist/checkpoint.pth", "https://drive.google.com/file/d/1BF2mwFv5IRCGaQbEWTbLlAOWEkNzMe5O"),)),
    # Song & Ermon 2020: ermongroup/ncsnv2 Google Drive (exp/logs/<doc>/checkpoint_<step>.pth); the ladder is in the file.
    "ncsnv2_cifar10": Preset(NCSNv2Config(), _ve(50.0), (("exp/logs/cifar10/checkpoint_*.pth", f"{SCORE_SDE}/1217uhIvLg9ZrYNKOR3XTRFSurt4miQrd"),)),
    "ncsnv2_celeba64": Preset(NCSNv2Config(image_size=64), _ve(90.0),
                              (("exp/logs/celeba/checkpoint_*.pth", f"{SCORE_SDE}/1217uhIvLg9ZrYNKOR3XTRFSurt4miQrd"),)),
    "ncsnv2_church64": Preset(NCSNv2Config(image_size=64, depth="deeper"), _ve(140.0),
                              (("exp/logs/church/checkpoint_*.pth", f"{SCORE_SDE}/1217uhIvLg9ZrYNKOR3XTRFSurt4miQrd"),)),
    "ncsnv2_bedroom128": Preset(NCSNv2Config(image_size=128, depth="deeper"), _ve(190.0),
                                (("exp/logs/bedroom/checkpoint_*.pth", f"{SCORE_SDE}/1217uhIvLg9ZrYNKOR3XTRFSurt4miQrd"),)),
    "ncsnv2_tower128": Preset(NCSNv2Config(image_size=128, depth="deeper"), _ve(190.0),
                              (("exp/logs/tower/checkpoint_*.pth", f"{SCORE_SDE}/1217uhIvLg9ZrYNKOR3XTRFSurt4miQrd"),)),
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
