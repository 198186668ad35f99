"""Diffusion-GAN (Wang et al. 2022): instance noise by a forward diffusion chain whose length T adapts to the discriminator.

Modules, one concept each:

- ``noise``: q(y | x, t) with the linear betas recomputed for the current T (``InstanceNoise``);
- ``timesteps``: the step law p_pi, the paper's and the official code's (``t_probs``, ``TimestepSampler``);
- ``controller``: T <- T + sign(r_d - d_target) C (``AdaptiveT``, ``official_step``);
- ``optimal``: the exact optimal discriminator and r_d on Gaussian mixtures;
- ``divergence``: Jensen-Shannon divergences by quadrature and Monte Carlo (Wang et al. 2022, Theorems 1 and 2);
- ``fit``: fitting D to fixed laws and measuring |D - D*|;
- ``train``: the two-optimiser loop with checkpoints; ``points`` and ``digits``: the toy and image trainers;
- ``metrics``: mode coverage and two-sample statistics on mixture toys.

``python -m diffcheck.gan points|digits`` trains from the command line.
"""

from .controller import AdaptiveT, discriminator_rd, official_step
from .divergence import jsd_gaussian_shift, jsd_monte_carlo, jsd_quadrature, jsd_term, point_mass_jsd
from .noise import InstanceNoise
from .optimal import optimal_discriminator, optimal_logit, rd_gaussians, rd_gaussians_mixed
from .timesteps import TimestepSampler, t_probs
from .train import GANConfig, GANRun, train_gan

__all__ = [
    "InstanceNoise",
    "TimestepSampler",
    "t_probs",
    "AdaptiveT",
    "official_step",
    "discriminator_rd",
    "optimal_logit",
    "optimal_discriminator",
    "rd_gaussians",
    "rd_gaussians_mixed",
    "jsd_term",
    "jsd_quadrature",
    "jsd_monte_carlo",
    "jsd_gaussian_shift",
    "point_mass_jsd",
    "GANConfig",
    "GANRun",
    "train_gan",
]
