"""RaMViD (Höppe et al. 2022, Tobi-r9/RaMViD `diffusion_openai/gaussian_diffusion.py`): random-mask training and sampling.

Training: with probability p_uncond a clip is unconditional; otherwise r ~ U{1..max_cond} frames, drawn without
replacement from the candidate frames, are conditioning frames. Those frames stay clean in x_t (their noise is
zeroed, so the eps target there is 0), and the loss is the squared error averaged over the other frames' values
only (``exclude_conditional``). Sampling resets the conditioning frames to their clean values before every model
evaluation. On a Gaussian video the Bayes-optimal denoiser of this objective is E[eps^b | z^b_t, x^a]
(``RaMViDExact``), and the sampler with it is the exact conditional sampler; resetting to *noised* values instead
would feed the denoiser inputs it was never trained on.

The official network is not told which frames are clean and reads it off the images; the models here take the
frame mask as the keyword ``mask`` ((B, F) bool, True at conditioning frames), which a network may ignore.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from toy.mixture import GaussianMixture
from toy.validate import as_index_tensor, check_float, check_int

from ..param import Model
from ..process.base import Process
from ..samplers.loop import walk
from ..tensor import per_sample
from .exact import ExactConditional
from .frames import as_frame_mask, frame_coords, put_frames
from .mcvd import training_times

__all__ = ["ramvid_masks", "ramvid_loss", "ramvid_objective", "RaMViDExact", "ramvid_sample"]


def ramvid_masks(n: int, frames: int, generator: torch.Generator, *, p_uncond: float = 0.25, max_cond: int = 4,
                 candidates: Any = None) -> torch.Tensor:
    """Conditioning masks (n, frames) bool: none with probability ``p_uncond``, else r ~ U{1..max_cond} random candidate frames."""
    n = check_int(n, "n", minimum=1)
    frames = check_int(frames, "frames", minimum=2)
    p_uncond = check_float(p_uncond, "p_uncond", low=0.0, high=1.0)
    cand = torch.arange(frames) if candidates is None else as_index_tensor(candidates, "candidates").reshape(-1)
    if cand.numel() == 0 or bool((cand < 0).any() or (cand >= frames).any()) or cand.unique().numel() != cand.numel():
        raise ValueError(f"candidates must be distinct frames in [0, {frames - 1}], got {cand.tolist()}")
    max_cond = check_int(max_cond, "max_cond", minimum=1, maximum=min(cand.numel(), frames - 1))
    uncond = torch.rand(n, generator=generator, dtype=torch.float64) < p_uncond
    r = torch.randint(1, max_cond + 1, (n,), generator=generator)
    order = torch.rand(n, cand.numel(), generator=generator).argsort(1)  # a uniform random ordering of the candidates
    chosen = torch.arange(cand.numel())[None, :] < r[:, None]  # the first r of each ordering
    mask = torch.zeros(n, frames, dtype=torch.bool)
    rows = torch.arange(n)[:, None].expand_as(order)
    mask[rows[chosen], cand[order[chosen]]] = True
    mask[uncond] = False
    return mask


def ramvid_loss(model: Model, process: Process, video: torch.Tensor, generator: torch.Generator, *, p_uncond: float = 0.25,
                max_cond: int = 4, candidates: Any = None, mask: torch.Tensor | None = None, t: torch.Tensor | None = None,
                eps: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample RaMViD loss: mean squared eps error over the values of the non-conditioning frames.

    ``video`` is (B, F, ...). ``mask``, ``t`` and ``eps`` default to fresh draws from ``generator``.
    """
    if video.ndim < 3:
        raise ValueError(f"video must have shape (B, F, ...), got {tuple(video.shape)}")
    if getattr(model, "prediction", "eps") != "eps":
        raise TypeError("RaMViD's loss is on eps: the model must predict eps")
    b, f = video.shape[:2]
    mask = ramvid_masks(b, f, generator, p_uncond=p_uncond, max_cond=max_cond, candidates=candidates) if mask is None \
        else as_frame_mask(mask, f, b).expand(b, f)
    t = training_times(process, b, generator) if t is None else t
    eps = torch.randn(video.shape, generator=generator, dtype=video.dtype, device=video.device) if eps is None else eps
    m = mask.to(video.device)
    eps = put_frames(eps, torch.zeros_like(eps), m)  # conditioning frames get no noise
    x_t = per_sample(process.alpha(t), video) * video + per_sample(process.sigma(t), video) * eps
    x_t = put_frames(x_t, video, m)  # and stay clean
    out = model(x_t, t.to(video.device), mask=m)
    keep = (~m).to(video.dtype).reshape(b, f, *([1] * (video.ndim - 2))).expand_as(video)
    sq = ((eps - out) ** 2 * keep).reshape(b, -1).sum(1)
    return sq / keep.reshape(b, -1).sum(1)


def ramvid_objective(process: Process, *, p_uncond: float = 0.25, max_cond: int = 4, candidates: Any = None) -> Callable:
    """``loss_fn(model, video, generator) -> scalar`` for ``diffcheck.training.train``: the batch mean of ``ramvid_loss``."""
    check_float(p_uncond, "p_uncond", low=0.0, high=1.0)

    def loss_fn(model: Model, video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return ramvid_loss(model, process, video, generator, p_uncond=p_uncond, max_cond=max_cond, candidates=candidates).mean()

    return loss_fn


class RaMViDExact:
    """The Bayes-optimal RaMViD denoiser of a video mixture: ``model(x, t, mask=...)`` with clean conditioning frames in x.

    For the free frames it is E[· | z^b_t, x^a = the clean frames]; on the conditioning frames eps is 0 (the training
    target there) and x_0 their clean value. ``x`` is (B, F, ...) or flat (B, F·P).
    """

    def __init__(self, mixture: GaussianMixture, process: Process, frames: int, prediction: str = "eps") -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        frames = check_int(frames, "frames", minimum=2)
        if mixture.dim % frames:
            raise ValueError(f"the mixture's dimension {mixture.dim} is not a whole number of {frames} frames")
        if prediction not in ("eps", "x0"):
            raise ValueError(f"prediction must be 'eps' or 'x0' (both are defined on the clean frames), got {prediction!r}")
        self.mixture, self.process, self.frames, self.prediction = mixture, process, frames, prediction
        self.frame_size = mixture.dim // frames
        self._models: dict[tuple[int, ...], ExactConditional] = {}

    def model(self, known_frames: tuple[int, ...]) -> ExactConditional:
        """The exact conditional model of the free frames given ``known_frames``."""
        if known_frames not in self._models:
            known = frame_coords(list(known_frames), self.frame_size) if known_frames else ()
            self._models[known_frames] = ExactConditional(self.mixture, self.process, known, self.prediction)
        return self._models[known_frames]

    def __call__(self, x: torch.Tensor, t: Any, mask: Any = None) -> torch.Tensor:
        b = x.shape[0]
        flat = x.reshape(b, -1)
        if flat.shape[1] != self.mixture.dim:
            raise ValueError(f"x has {flat.shape[1]} values per sample, the mixture {self.mixture.dim}")
        mask = torch.zeros(b, self.frames, dtype=torch.bool) if mask is None else as_frame_mask(mask, self.frames, b).expand(b, self.frames)
        tt = torch.as_tensor(t, dtype=torch.float64)
        out = torch.zeros_like(flat) if self.prediction == "eps" else flat.clone()
        for pattern in torch.unique(mask, dim=0):
            rows = (mask == pattern).all(1).nonzero().reshape(-1)
            known_frames = tuple(pattern.nonzero().reshape(-1).tolist())
            model = self.model(known_frames)
            x_a = flat[rows][:, model.known] if known_frames else None
            t_rows = tt if tt.ndim == 0 else tt[rows]
            out[rows[:, None], model.free[None, :]] = model(flat[rows][:, model.free], t_rows, cond=x_a)
        return out.reshape(x.shape)


def ramvid_sample(model: Model, process: Process, clean: torch.Tensor, mask: Any, x: torch.Tensor, grid: Any, *,
                  step: Callable, generator: Any = None, check_finite: bool = True, progress: bool = False,
                  full: bool = False, **step_options: Any):
    """RaMViD's sampler: any ``step`` (``ancestral_step``, ``ddim_step``, ...) with the conditioning frames reset to
    their clean values (from ``clean``, (B, F, ...)) before every model evaluation and at the end.

    ``mask`` (F,) or (B, F) marks the conditioning frames and is passed to the model as ``mask``; ``x`` is the start
    x_T (B, F, ...). A deterministic step (DDIM with eta = 0) needs no ``generator``.
    """
    if x.ndim < 3 or clean.shape != x.shape:
        raise ValueError(f"x and clean must both have shape (B, F, ...), got {tuple(x.shape)} and {tuple(clean.shape)}")
    m = as_frame_mask(mask, x.shape[1], x.shape[0])
    m_rows = m if m.ndim == 2 else m[None].expand(x.shape[0], -1)

    def reset(model_, process_, y, t, s, noise_, *, last=False, coef=None, **kw):
        return step(model_, process_, put_frames(y, clean, m), t, s, noise_, last=last, coef=coef, **kw)

    out = walk(reset, model, process, x, grid, generator=generator, stochastic=generator is not None, name="ramvid",
               check_finite=check_finite, progress=progress, full=full, mask=m_rows, **step_options)
    if full:
        return out.replace(samples=put_frames(out.samples, clean, m))
    return put_frames(out, clean, m)
