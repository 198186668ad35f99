"""The Diffusion-GAN training loop: two optimisers, instance noise on both inputs of D, adaptive T (Wang et al. 2022).

One iteration: a discriminator step on the non-saturating logistic loss
softplus(-D(y_r, t)) + softplus(D(y_g, t)) with y_r ~ q(y | x, t), y_g ~ q(y | G(z), t) (optionally
R1 on the clean real input, as the official code differentiates through the diffusion), then a
generator step on softplus(-D(y_g, t)), back-propagating through y_g = sqrt(abar_t) G(z) + s_t eps.
Every ``ada_interval`` iterations r_d is the mean sign of the real logits since the last update,
T moves by the controller and the step sampler is refreshed (the official code re-draws its pool then).
With ``diffusion=False`` the same loop is a plain GAN: D sees clean data at t = 0.

All randomness comes from one ``torch.Generator`` seeded by ``seed``; checkpoints hold its state, so a
resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from toy.validate import check_float, check_int

from ..io import write_json
from .checkpoint import flatten_optimizer, load_checkpoint, restore_optimizer, save_checkpoint
from .controller import AdaptiveT, official_step
from .noise import InstanceNoise
from .timesteps import TimestepSampler

__all__ = ["GANConfig", "GANRun", "train_gan", "discriminator_loss", "generator_loss", "CHECKPOINT"]

CHECKPOINT = "checkpoint.safetensors"
_RESUMABLE = ("steps", "checkpoint_every")


@dataclass(frozen=True)
class GANConfig:
    """Training options; the diffusion defaults are the official code's (``diffusion-stylegan2/train.py``).

    ``fixed_T`` holds T constant instead of adapting it; ``diffusion=False`` turns instance noise off.
    """

    steps: int = 2000
    batch_size: int = 128
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    diffusion: bool = True
    noise_std: float = 0.05
    beta_start: float = 1e-4
    beta_end: float = 0.02
    timesteps: TimestepSampler = TimestepSampler()
    target: float = 0.6
    t_min: int = 10
    t_max: int = 1000
    ada_interval: int = 4
    ada_kimg: float = 100.0
    fixed_T: int | None = None
    r1_gamma: float = 0.0
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        check_int(self.steps, "steps", minimum=0)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_float(self.lr_g, "lr_g", low=0.0, low_open=True)
        check_float(self.lr_d, "lr_d", low=0.0, low_open=True)
        if len(self.adam_betas) != 2:
            raise ValueError(f"adam_betas must be a pair, got {self.adam_betas!r}")
        for b in self.adam_betas:
            check_float(b, "adam_betas", low=0.0, high=1.0, high_open=True)
        check_float(self.r1_gamma, "r1_gamma", low=0.0)
        check_int(self.checkpoint_every, "checkpoint_every", minimum=0)
        if not isinstance(self.timesteps, TimestepSampler):
            raise TypeError(f"timesteps must be a TimestepSampler, got {type(self.timesteps).__name__}")
        if self.fixed_T is not None:
            check_int(self.fixed_T, "fixed_T", minimum=1)
        self.controller  # validates target, t_min, t_max, interval
        InstanceNoise(self.t_min, self.beta_start, self.beta_end, self.noise_std)

    @property
    def controller(self) -> AdaptiveT:
        """The T controller with the official step C = (t_max - t_min) * batch * interval / (ada_kimg * 1000)."""
        step = official_step(self.batch_size, self.ada_interval, self.ada_kimg, self.t_min, self.t_max)
        return AdaptiveT(self.target, self.t_min, self.t_max, step, self.ada_interval)

    def start_T(self) -> int:
        """The chain length at step 0: ``fixed_T`` if given, else t_min (official: p = 0)."""
        return self.fixed_T if self.fixed_T is not None else self.t_min

    def noise(self, T: int) -> InstanceNoise:
        """The instance noise for chain length T."""
        return InstanceNoise(T, self.beta_start, self.beta_end, self.noise_std)

    def to_dict(self) -> dict:
        """A JSON-safe description (stored in checkpoints and compared on resume)."""
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d


@dataclass
class GANRun:
    """A finished (or resumed-and-finished) run: the networks, the last level and T, and the history."""

    G: nn.Module
    D: nn.Module
    step: int
    level: float
    T: int
    history: dict = field(default_factory=dict)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(y_r) - log(1 - D(y_g)) = softplus(-l_r) + softplus(l_g), averaged (Goodfellow et al. 2014)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(y_g) = softplus(-l_g), averaged."""
    return F.softplus(-fake_logits).mean()


def _save(path: Path, G, D, opt_g, opt_d, gen, ts_state, config: GANConfig, step, level, T, acc, history) -> None:
    tensors = {f"G/{k}": v for k, v in G.state_dict().items()}
    tensors.update({f"D/{k}": v for k, v in D.state_dict().items()})
    tg, mg = flatten_optimizer(opt_g, "opt_g")
    td, md = flatten_optimizer(opt_d, "opt_d")
    tensors.update(tg)
    tensors.update(td)
    tensors["rng"] = gen.get_state()
    tensors["ts_state"] = ts_state
    meta = {"config": config.to_dict(), "step": step, "level": level, "T": T, "acc": list(acc),
            "opt_g": mg, "opt_d": md, "history": history}
    save_checkpoint(path, tensors, meta)


def train_gan(
    G: nn.Module,
    D: nn.Module,
    sample_real: Callable[[int, torch.Generator], torch.Tensor],
    sample_z: Callable[[int, torch.Generator], torch.Tensor],
    config: GANConfig = GANConfig(),
    *,
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    desc: str = "Diffusion-GAN",
) -> GANRun:
    """Train G and D for ``config.steps`` iterations; with ``out_dir``, checkpoint there and resume from it."""
    from tqdm import tqdm

    if not isinstance(config, GANConfig):
        raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")
    seed = check_int(seed, "seed", minimum=0)
    eval_every = check_int(eval_every, "eval_every", minimum=0)
    gen = torch.Generator().manual_seed(seed)
    ctrl = config.controller
    ts = config.timesteps
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.adam_betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.adam_betas)
    step, T = 0, config.start_T()
    level = float(T)
    acc = [0.0, 0]
    history: dict[str, list] = {"T": [], "rd": [], "update_step": [], "loss_d": [], "loss_g": [], "eval": []}
    ckpt = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    ts_state = None
    if ckpt is not None and resume and ckpt.is_file():
        tensors, meta = load_checkpoint(ckpt)
        stored, now = dict(meta.get("config", {})), config.to_dict()
        for key in _RESUMABLE:  # a run may be extended or checkpointed at another rate
            stored.pop(key, None)
            now.pop(key, None)
        if stored != now:
            diff = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
            raise ValueError(f"config differs from the one stored in {ckpt} ({', '.join(diff)}); use another out_dir or resume=False")
        if meta["step"] > config.steps:
            raise ValueError(f"the checkpoint in {ckpt} is at step {meta['step']}, beyond config.steps = {config.steps}")
        G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G/")})
        D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D/")})
        restore_optimizer(opt_g, "opt_g", tensors, meta["opt_g"])
        restore_optimizer(opt_d, "opt_d", tensors, meta["opt_d"])
        gen.set_state(tensors["rng"])
        ts_state = tensors["ts_state"]
        step, level, T, acc, history = meta["step"], meta["level"], meta["T"], meta["acc"], meta["history"]
    noise = config.noise(T)
    if ts_state is None:
        ts_state = ts.refresh(T, gen) if config.diffusion else torch.zeros(1)
    G.train()
    D.train()
    bar = tqdm(total=config.steps, initial=step, desc=desc, unit="it", file=sys.stderr, disable=not progress, leave=False)
    B = config.batch_size
    while step < config.steps:
        # discriminator step: diffuse real and generated samples with their own steps t
        x = sample_real(B, gen)
        z = sample_z(B, gen)
        with torch.no_grad():
            fake = G(z)
        if config.diffusion:
            t_r, t_f = ts.sample(ts_state, B, gen), ts.sample(ts_state, B, gen)
        else:
            t_r = t_f = torch.zeros(B, dtype=torch.int64)
        x = x.detach().requires_grad_(config.r1_gamma > 0)
        y_r = noise.diffuse(x, t_r, gen) if config.diffusion else x
        y_f = noise.diffuse(fake, t_f, gen) if config.diffusion else fake
        real_logits = D(y_r, t_r)
        fake_logits = D(y_f, t_f)
        loss_d = discriminator_loss(real_logits, fake_logits)
        if config.r1_gamma > 0:
            (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
            loss_d = loss_d + 0.5 * config.r1_gamma * grad.pow(2).reshape(B, -1).sum(1).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        acc[0] += float(torch.sign(real_logits.detach()).sum())
        acc[1] += B
        # generator step: back-propagate through y_g = sqrt(abar_t) G(z) + s_t eps
        D.requires_grad_(False)
        z = sample_z(B, gen)
        t_g = ts.sample(ts_state, B, gen) if config.diffusion else torch.zeros(B, dtype=torch.int64)
        fake = G(z)
        y_g = noise.diffuse(fake, t_g, gen) if config.diffusion else fake
        loss_g = generator_loss(D(y_g, t_g))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        step += 1
        history["loss_d"].append(float(loss_d.detach()))
        history["loss_g"].append(float(loss_g.detach()))
        # adaptive T: every ada_interval iterations, then refresh the step sampler
        if config.diffusion and step % ctrl.interval == 0:
            rd = acc[0] / acc[1]
            if config.fixed_T is None:
                level = ctrl.update(level, rd)
                T = ctrl.T(level)
                noise = config.noise(T)
            ts_state = ts.refresh(T, gen)
            history["T"].append(T)
            history["rd"].append(rd)
            history["update_step"].append(step)
            acc = [0.0, 0]
        if evaluate is not None and eval_every and (step % eval_every == 0 or step == config.steps):
            G.eval()
            with torch.no_grad():
                history["eval"].append({"step": step, **{k: float(v) for k, v in evaluate(G).items()}})
            G.train()
        if ckpt is not None and config.checkpoint_every and (step % config.checkpoint_every == 0):
            _save(ckpt, G, D, opt_g, opt_d, gen, ts_state, config, step, level, T, acc, history)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(T=T, loss_d=f"{float(loss_d.detach()):.3f}", loss_g=f"{float(loss_g.detach()):.3f}")
    bar.close()
    if ckpt is not None:
        _save(ckpt, G, D, opt_g, opt_d, gen, ts_state, config, step, level, T, acc, history)
        write_json(Path(out_dir) / "history.json", history)
    G.eval()
    return GANRun(G, D, step, level, T, history)

