"""The zoo's catalogue: real sampler bugs re-created beside their fixes, reported "bugs" that were not, and a feature request.

Each entry cites the report and the line that was wrong, and builds the sampler in both
forms on a Gaussian target (``builders``), ready for the generic checks
(``diffcheck.zoo.checks``).
"""

from __future__ import annotations

from . import builders as B
from .base import Entry, Variant, isotropic, medium, narrow, unit

__all__ = ["Variant", "Entry", "ENTRIES", "by_id"]


_D = "https://github.com/huggingface/diffusers"
_K = "https://github.com/crowsonkb/k-diffusion"
ENTRIES: tuple[Entry, ...] = (
    Entry("diffusers#590", "diffusers KarrasVeScheduler.set_timesteps (fixed by #627, v0.4.0)", "KarrasVe sigma schedule missing a square",
          f"{_D}/issues/590", "schedule = sigma_max * (sigma_min**2 / sigma_max**2) ** (i / (N - 1)): the levels fall to "
          "sigma_min^2 / sigma_max instead of sigma_min", "bug", unit, B.karras_ve),
    Entry("diffusers#1512", "diffusers HeunDiscreteScheduler.step (v0.10.0)", "Heun's second stage converted at sigma_hat (v-prediction)",
          f"{_D}/pull/1512", "pred_original_sample and the derivative of the second stage used sigma_hat where the model was "
          "evaluated at sigma_next", "bug", unit, B.heun_v),
    Entry("diffusers#6477", "diffusers DPMSolverMultistepScheduler.set_timesteps, use_karras_sigmas (#5689; v0.26.0)",
          "Karras sigmas repeat the last sigma", f"{_D}/pull/6477",
          "sigmas = np.concatenate([sigmas, sigmas[-1:]]): a final step of size 0 leaves the noise of sigma_min in the output",
          "bug", medium, B.dpm_karras_repeat),
    Entry("diffusers#2094", "diffusers DDIMScheduler.step, prediction_type='sample' (#1486; v0.15.0)",
          "DDIM keeps the model's x_0 output as eps", f"{_D}/pull/2094",
          "pred_epsilon = model_output also for x_0-prediction, instead of (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)",
          "bug", unit, B.ddim_x0),
    Entry("diffusers#2585", "diffusers DDIMScheduler.set_timesteps, leading spacing (Lin et al. 2024)",
          "leading spacing starts at index 980 while x_T ~ N(0, I)", f"{_D}/issues/2585",
          "timesteps = arange(0, N) * (T // N): the first state is taken as x_980 of a table whose terminal SNR is not 0",
          "bug", unit, B.leading),
    Entry("diffusers#9261", "diffusers DDPMScheduler.previous_timestep, trailing spacing (fixed by #9384, v0.32.0)",
          "DDPM's previous timestep for trailing spacing", f"{_D}/issues/9261",
          "prev_t = t - T // num_inference_steps, which trailing spacing does not follow: at 30 steps its indices are 33 or 34 "
          "apart, so a third of the steps start from another index than the last one landed on",
          "bug", medium, B.ddpm_prev),
    Entry("diffusers#2090", "diffusers DDPMScheduler._get_variance, learned_range (v0.13.0)",
          "learned-range variance interpolated in beta, not log beta", f"{_D}/pull/2090",
          "min_log = variance; max_log = self.betas[t]: the interpolation of Nichol & Dhariwal (2021, Eq. 15) taken between "
          "the variances, not their logarithms", "bug", isotropic, B.learned_range),
    Entry("diffusers#3005", "diffusers schedulers' add_noise cast alphas_cumprod to the samples' dtype (fixed by #3005)",
          "alpha_bar held in float16 rounds to 1 at small t", f"{_D}/pull/3005",
          "self.alphas_cumprod = self.alphas_cumprod.to(dtype=original_samples.dtype): with float16 samples DDIM then steps with "
          "a float16 table, in which abar_t rounds to 1 at the first indices (beta_prod_t = 0)", "bug", medium, B.float16),
    Entry("generative-models#114", "Stability-AI generative-models, EDM discretization default",
          "EDM sigma_min 0.02 instead of 0.002", "https://github.com/Stability-AI/generative-models/issues/114",
          "sigma_min=0.02 where Karras et al. (2022) use 0.002: the final step from sigma_min to 0 leaves an O(sigma_min^2) "
          "covariance deficit", "bug", narrow, B.edm_sigma_min),
    Entry("k-diffusion#43", "k-diffusion sample_dpmpp_2m, last step (adopted after #43)",
          "DPM-Solver++(2M) correction on the last step into sigma = 0", f"{_K}/issues/43",
          "the multistep correction with r = h_last / h on the step to sigma = 0, where h = inf: 1 / (2 r) is infinite",
          "bug", unit, B.dpmpp_final),
    Entry("diffusers#14213", "diffusers EulerAncestralDiscreteScheduler.step, squaredcos_cap_v2, float32",
          "negative radicand in sigma_down", f"{_D}/issues/14213",
          "sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5 with sigma_up rounded above sigma_to in float32 (sigma_from ~ 2e4)",
          "bug", unit, B.radicand),
    Entry("diffusers#6953", "diffusers DPMSolverSinglestepScheduler.get_order_list (v0.26.3, v0.27.0)",
          "lower_order_final ignored for even step counts", f"{_D}/pull/6953",
          "orders = [1, 2] * (steps // 2) for even steps: the last step is of order 2 into sigma = 0",
          "bug", unit, B.single_order),
    Entry("k-diffusion#56", "k-diffusion sample_dpmpp_2m (report not a bug)", "proposed -h_last in place of -h in DPM++ 2M's update",
          f"{_K}/issues/56", "the report proposed x' = (sigma'/sigma) x - expm1(-h_last) D_d in the multistep branch; the "
          "algorithm's expm1(-h) is right: the weights of x and D_d then sum to 1 only where h_last = h", "not a bug", unit, B.swap,
          forms=("proposed", "original")),
    Entry("diffusers#1481", "diffusers EulerDiscreteScheduler.step (report not a bug)", "claimed wrong sign of Euler's c_out",
          f"{_D}/issues/1481", "the report claimed x_0 = x + sigma eps; x_0 = x - sigma eps is right", "not a bug", unit, B.sign,
          forms=("proposed", "original")),
    Entry("k-diffusion#59", "k-diffusion sample_dpmpp_sde (feature request, answered by sample_dpmpp_2m_sde in 962d62b)",
          "the single-step DPM++ SDE is not a solver of the reverse SDE", f"{_K}/issues/59",
          "no earlier DPM++ 2M SDE existed: the request meant the single-step sample_dpmpp_sde, which takes ancestral steps "
          "(DPM-Solver++(2S) to sigma_down, then Brownian noise of sigma_up) rather than SDE-DPM-Solver++ steps of the reverse "
          "SDE; the multistep SDE-DPM-Solver++(2M) was added for it. Both sample the data law", "request", unit, B.sde_request,
          forms=("single-step", "multistep")),
)


def by_id(entry_id: str) -> Entry:
    """The entry with this id (e.g. "diffusers#590")."""
    for e in ENTRIES:
        if e.id == entry_id:
            return e
    raise ValueError(f"unknown zoo entry {entry_id!r}; choose one of {', '.join(e.id for e in ENTRIES)}")
