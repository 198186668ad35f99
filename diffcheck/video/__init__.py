"""Conditional video diffusion: Video Diffusion Models' replacement and reconstruction guidance, MCVD, RaMViD.

One trained model becomes a predictor, an interpolator or a generator by conditioning on some frames. On a
Gaussian video (``toy.ar1_video``, or a mixture of such sequences) every conditional is closed form, so each
scheme is measured against the exact conditional:

- ``exact``: the Bayes-optimal conditional denoiser E[· | z^b_t, x^a] (``ExactConditional``), the exact conditional
  sampler for any mask, exact conditional draws and log q(x^a | z_t) — the references every scheme is compared with.
- ``vdm``: replacement (``diffcheck.impute.replacement``) and reconstruction guidance (``ReconstructionGuided``),
  with any sampler step (DDPM, DDIM).
- ``mcvd``: masked conditional training, the exact predictor in every mask state, MCVD's grid, block-wise rollout.
- ``ramvid``: random-mask training with clean conditioning frames, the exact denoiser, the resetting sampler.
- ``laws``: the exact output law of a conditional sampler on a single-Gaussian video and its KL to the exact conditional.
- ``toynet``, ``train``: a small conditional MLP, its MCVD and RaMViD wrappers, trainers and the gap to Bayes-optimal.
- ``netmodels``: the reference video networks (``diffcheck.nets``) as MCVD and RaMViD models of a DDPM process.
- ``frames``: frame coordinates and frame masks.
"""

from .exact import ExactConditional, conditional_draws, exact_conditional_sample, known_index, log_known_given_noisy
from .frames import as_frame_mask, coord_mask, frame_coords, put_frames
from .laws import affine_moments, conditional_kl, conditional_law
from .netmodels import MCVDNetModel, RaMViDNetModel, step_index
from .mcvd import STATES, Blocks, MCVDExact, conditioning, mcvd_grid, mcvd_loss, mcvd_masks, mcvd_objective, rollout, training_times
from .ramvid import RaMViDExact, ramvid_loss, ramvid_masks, ramvid_objective, ramvid_sample
from .toynet import MCVDToyModel, RaMViDToyModel, ToyVideoNet
from .train import NetSize, bayes_gap, train_mcvd, train_ramvid
from .vdm import ReconstructionGuided, conditional_sample

__all__ = [
    "ExactConditional", "conditional_draws", "exact_conditional_sample", "known_index", "log_known_given_noisy",
    "as_frame_mask", "coord_mask", "frame_coords", "put_frames",
    "affine_moments", "conditional_kl", "conditional_law",
    "STATES", "Blocks", "MCVDExact", "conditioning", "mcvd_grid", "mcvd_loss", "mcvd_masks", "mcvd_objective", "rollout",
    "training_times",
    "MCVDNetModel", "RaMViDNetModel", "step_index",
    "RaMViDExact", "ramvid_loss", "ramvid_masks", "ramvid_objective", "ramvid_sample",
    "MCVDToyModel", "RaMViDToyModel", "ToyVideoNet",
    "NetSize", "bayes_gap", "train_mcvd", "train_ramvid",
    "ReconstructionGuided", "conditional_sample",
]
