"""What the GPU benchmark runs: the reference image networks of the seed papers and their samplers at fixed NFE.

Families (one network, or a network and its classifier, on one process):

- ``ddpm``: DDPM U-Net, CIFAR-10 (Ho et al. 2020; 35,746,307 parameters) on the linear DDPM table:
  DDIM with 50 uniform skips, eta = 0 (Song et al. 2020), and DDPM ancestral over all 1000 steps.
- ``ncsnpp``: NCSN++ (VE), CIFAR-10 (Song et al. 2021; 62,758,915) on the VE SDE sigma in [0.01, 50]
  with the official perturbation kernel: predictor-corrector with the reverse-diffusion predictor and one
  Langevin corrector (snr 0.16) over 1000 steps (2000 NFE), as score_sde samples CIFAR-10.
- ``adm``: ADM 64x64, class-conditional (Dhariwal & Nichol 2021; 295,904,454) on the cosine table, with
  its noisy classifier at 64 px as guided-diffusion builds it for that size: ``adm_classifier_128`` with
  image_size 64, channel_mult (1, 2, 3, 4), depth 4 (``--classifier_depth 4``), width 128, attention
  at 32, 16, 8, attention pooling (65,438,568 parameters). DDIM-50 with classifier guidance, scale 1
  (Algorithm 2): each evaluation adds a classifier forward and a backward pass to x.
- ``ncsnv2``: NCSNv2, CIFAR-10 (Song & Ermon 2020; 29,694,083) with its 232-level geometric ladder from
  50 to 0.01, annealed Langevin with 5 steps per level, technique-4 step size and the final denoising
  step (1161 NFE).

Weights are random (a speed does not depend on them), seeded, with ADM's zero-initialised layers redrawn
so that no product runs on zeros; the DDPM family can take a user's network instead (``build_family(...,
net=...)``), whose weights are kept. With ``tiny`` each network takes its ``tiny_overrides`` and each sampler
a few steps, so the whole benchmark runs on a CPU in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .. import nets
from .. import process as P
from .. import samplers as S
from ..guidance import ClassifierGuided
from ..nets.wrap import as_classifier, wrap_net
from ..tensor import per_sample
from .gpu_variants import randomize_zero_weights

__all__ = ["FAMILIES", "Case", "CASES", "cases", "case", "Family", "build_family", "adm_classifier_overrides",
           "grid", "nfe", "sampler_fn", "initial_noise", "Labelled", "labels_for", "user_network", "family_parameters"]

FAMILIES = ("ddpm", "ncsnpp", "adm", "ncsnv2")


@dataclass(frozen=True)
class Case:
    """A sampler of a family at a fixed number of steps (of noise levels for NCSNv2's ladder);
    ``quick_steps`` in the tiny configuration."""

    id: str
    family: str
    sampler: str
    steps: int
    quick_steps: int
    deterministic: bool
    description: str


CASES: tuple[Case, ...] = (
    Case("ddpm/ddim50", "ddpm", "ddim", 50, 2, True, "DDIM, 50 uniform skips, eta 0 (Song et al. 2020, Eq. 12)"),
    Case("ddpm/ancestral1000", "ddpm", "ddpm_ancestral", 1000, 2, False, "DDPM ancestral, all 1000 steps (Ho et al. 2020, Algorithm 2)"),
    Case("ncsnpp/pc1000", "ncsnpp", "predictor_corrector", 1000, 2, False,
         "predictor-corrector: reverse diffusion + 1 Langevin corrector, snr 0.16 (Song et al. 2021, Algorithm 2)"),
    Case("adm/guided_ddim50", "adm", "guided_ddim", 50, 2, True,
         "DDIM-50 with classifier guidance, scale 1 (Dhariwal & Nichol 2021, Algorithm 2)"),
    Case("ncsnv2/annealed_langevin", "ncsnv2", "ncsnv2", 232, 2, False,
         "annealed Langevin, 5 steps per level, technique-4 step, final denoising (Song & Ermon 2020)"),
)

_STEPS_PER_LEVEL = {False: 5, True: 1}  # NCSNv2: full, tiny


def cases(family: str | None = None) -> list[Case]:
    """The cases, optionally of one family."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    return [c for c in CASES if family is None or c.family == family]


def case(case_id: str) -> Case:
    """The case called ``case_id``."""
    for c in CASES:
        if c.id == case_id:
            return c
    raise ValueError(f"unknown case {case_id!r}; known: {', '.join(c.id for c in CASES)}")


def adm_classifier_overrides(tiny: bool) -> dict[str, Any]:
    """``adm_classifier_128`` overrides for the 64-px classifier guided-diffusion pairs with ADM 64x64."""
    if tiny:
        return nets.tiny_overrides("adm_classifier_128")
    return dict(image_size=64, channel_mult=(1, 2, 3, 4), num_res_blocks=4)


@dataclass
class Family:
    """Eager float32 networks of a family on a device, their process and sample shape."""

    name: str
    tiny: bool
    device: torch.device
    process: P.Process
    nets: dict[str, nn.Module]
    data_shape: tuple[int, ...]
    label_classes: int | None
    parameters: dict[str, int] = field(default_factory=dict)


def _ready(net: nn.Module, device: torch.device, seed: int) -> nn.Module:
    randomize_zero_weights(net, torch.Generator().manual_seed(seed + 1))
    net = net.to(device).eval()
    net.requires_grad_(False)
    return net


def build_family(name: str, *, tiny: bool, device: torch.device | str, seed: int = 0, net: nn.Module | None = None) -> Family:
    """Build the networks of family ``name`` (full configurations, or tiny ones) on ``device``; for "ddpm",
    ``net`` replaces the reference U-Net (an eps-predicting diffcheck network of the DDPM table, weights kept)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")
    device = torch.device(device)
    if net is not None:
        if name != "ddpm":
            raise ValueError(f"net replaces the DDPM family's network only, not {name!r}'s")
        user_network(net)

    def make(net_name: str, **extra: Any) -> nn.Module:
        over = dict(nets.tiny_overrides(net_name)) if tiny else {}
        over.update(extra)
        return _ready(nets.build(net_name, seed=seed, **over), device, seed)

    if name == "ddpm" and net is not None:
        net = net.to(device).eval()
        net.requires_grad_(False)
        built, process = {"net": net}, P.DiscreteVP.linear()
    elif name == "ddpm":
        built, process = {"net": make("ddpm_cifar10")}, P.DiscreteVP.linear()
    elif name == "ncsnpp":
        built, process = {"net": make("ncsnpp_cifar10_ve")}, P.VE(0.01, 50.0, kernel="official")
    elif name == "adm":
        classifier = _ready(nets.build("adm_classifier_128", seed=seed + 2, **adm_classifier_overrides(tiny)), device, seed + 2)
        built, process = {"net": make("adm_64"), "classifier": classifier}, P.DiscreteVP.cosine()
    else:
        built, process = {"net": make("ncsnv2_cifar10")}, P.VE(0.01, 50.0, kernel="official")
    cfg = built["net"].config
    return Family(name, tiny, device, process, built, tuple(cfg.data_shape), cfg.label_classes,
                  {k: sum(p.numel() for p in v.parameters()) for k, v in built.items()})


def family_parameters(name: str, *, tiny: bool, net: nn.Module | None = None) -> int:
    """Parameters of family ``name``'s networks, counted on the meta device (nothing is allocated)."""
    if net is not None:
        return sum(p.numel() for p in net.parameters())
    names = {"ddpm": ["ddpm_cifar10"], "ncsnpp": ["ncsnpp_cifar10_ve"], "adm": ["adm_64", "adm_classifier_128"], "ncsnv2": ["ncsnv2_cifar10"]}
    if name not in names:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")
    total = 0
    with torch.device("meta"):
        for n in names[name]:
            over = adm_classifier_overrides(tiny) if n == "adm_classifier_128" else (nets.tiny_overrides(n) if tiny else {})
            total += sum(p.numel() for p in nets.build(n, **over).parameters())
    return total


def user_network(net: Any) -> None:
    """Check that ``net`` can stand in for the DDPM U-Net: a diffcheck network predicting eps, images (C, H, W)."""
    if not isinstance(net, nn.Module) or not hasattr(net, "config"):
        raise TypeError(f"net must be a diffcheck network (an nn.Module with a .config), got {type(net).__name__}")
    cfg = net.config
    if getattr(cfg, "prediction", None) != "eps":
        raise ValueError(f"net must predict eps for the DDPM family, its config says {getattr(cfg, 'prediction', None)!r}")
    if len(tuple(getattr(cfg, "data_shape", ()))) != 3 or getattr(cfg, "label_classes", None) is not None:
        raise ValueError("net must be an unconditional image network (config.data_shape (C, H, W), no label_classes)")


def grid(c: Case, fam: Family) -> torch.Tensor:
    """The decreasing time grid case ``c`` walks (its full step count, or ``quick_steps`` when tiny)."""
    n = c.quick_steps if fam.tiny else c.steps
    p = fam.process
    if c.sampler in ("ddim", "guided_ddim"):
        return P.ddim_grid(p, n)
    if c.sampler == "ddpm_ancestral":
        return P.iddpm_grid(p, [n])
    if c.sampler == "predictor_corrector":
        return P.uniform_grid(n, 1.0, 1e-5)
    return P.sigma_grid(p, P.geometric_sigmas(50.0, 0.01, n))


def nfe(c: Case, fam: Family, g: torch.Tensor) -> int:
    """Network evaluations of one run of case ``c`` over grid ``g`` (a guided evaluation counts once)."""
    steps = len(g) - 1
    if c.sampler in ("ddim", "guided_ddim", "ddpm_ancestral"):
        return steps
    if c.sampler == "predictor_corrector":
        return 2 * steps
    return len(g) * _STEPS_PER_LEVEL[fam.tiny] + 1


class Labelled:
    """A class-conditional model with its labels bound: ``model(x, t)`` calls ``model(x, t, y=labels)``.

    ``ClassifierGuided`` calls its model without labels (it is written for an unconditional model);
    guided-diffusion guides the class-conditional ADM, so the labels are bound here.
    """

    def __init__(self, model: Any, labels: torch.Tensor) -> None:
        self.model = model
        self.labels = labels
        self.prediction = model.prediction

    def __call__(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        kwargs.pop("y", None)
        return self.model(x, t, y=self.labels, **kwargs)


def labels_for(fam: Family, batch: int) -> torch.Tensor | None:
    """Fixed class labels 0, 1, 2, ... (mod the number of classes) for a class-conditional family."""
    if fam.label_classes is None:
        return None
    return torch.arange(batch, device=fam.device) % fam.label_classes


Runner = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def sampler_fn(c: Case, fam: Family, run_nets: dict[str, nn.Module]) -> tuple[Runner, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """(run, evaluate): ``run(x_T, grid, seed)`` samples with the networks ``run_nets`` (the family's, run as a
    variant); ``evaluate(x, t)`` is one model evaluation as the sampler makes it (for counting FLOPs).

    Stochastic samplers draw their noise from a generator on the device seeded with ``seed``, so runs with
    the same seed and batch see the same noise. Finiteness checks are off (``check_finite=False``): each one
    is a host-device synchronisation per step.
    """
    p = fam.process
    model = wrap_net(run_nets["net"], p)
    classifier = as_classifier(run_nets["classifier"], p) if "classifier" in run_nets else None

    def gen(seed: int) -> torch.Generator:
        return torch.Generator(device=fam.device).manual_seed(seed)

    def conditioned(x: torch.Tensor) -> tuple[Any, dict[str, Any]]:
        y = labels_for(fam, x.shape[0])
        if c.sampler == "guided_ddim":
            return ClassifierGuided(Labelled(model, y), classifier, p, scale=1.0), {"y": y}
        return model, ({} if y is None else {"y": y})

    def run(x: torch.Tensor, g: torch.Tensor, seed: int) -> torch.Tensor:
        m, kw = conditioned(x)
        if c.sampler in ("ddim", "guided_ddim"):
            return S.ddim(m, p, x, g, check_finite=False, **kw)
        if c.sampler == "ddpm_ancestral":
            return S.ddpm_ancestral(m, p, x, g, generator=gen(seed), check_finite=False, **kw)
        if c.sampler == "predictor_corrector":
            return S.predictor_corrector(m, p, x, g, generator=gen(seed), check_finite=False, **kw)
        return S.ncsnv2(m, p, x, g, generator=gen(seed), steps_per_level=_STEPS_PER_LEVEL[fam.tiny], check_finite=False, **kw)

    def evaluate(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m, kw = conditioned(x)
        if c.sampler != "guided_ddim":
            return m(x, t, **kw)
        # ClassifierGuided's computation with the gradient taken by backward(): FlopCounterMode's module
        # tracking cannot follow torch.autograd.grad on a leaf. Parameters need no gradient, so backward()
        # computes the gradient to x alone, as autograd.grad does.
        y = kw["y"]
        eps = m.model(x, t)
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logp = torch.log_softmax(classifier(xr, t), dim=-1)
            logp.gather(-1, y.reshape(-1, 1).long()).sum().backward()
        sigma = per_sample(p.sigma(torch.as_tensor(t, dtype=torch.float64)), x)
        return eps - sigma * m.scale * xr.grad

    return run, evaluate


def initial_noise(fam: Family, batch: int) -> torch.Tensor:
    """x_T = prior_std * z with row i drawn from seed i alone, so the first rows agree across batch sizes."""
    z = S.PerSampleNoise(range(batch))(torch.empty((batch,) + fam.data_shape))
    return (fam.process.prior_std * z).to(fam.device)
