"""Which files make up each mutated module, and which tests of the default suite judge its mutants.

The tests are the fast, relevant part of the default suite: the module's own test files and
the registered checks (``tests/test_checks.py``) that exercise it, cheap and discriminating
ones first so that ``pytest -x`` stops early on a killed mutant.
"""

from __future__ import annotations

__all__ = ["MODULES"]


def _checks(*ids: str) -> list[str]:
    return [f"tests/test_checks.py::test_registered_check_passes[{i}]" for i in ids]


MODULES: dict[str, dict] = {
    "samplers": {
        "files": ["diffcheck/samplers/base.py", "diffcheck/samplers/loop.py", "diffcheck/samplers/ancestral.py",
                  "diffcheck/samplers/ddim.py", "diffcheck/samplers/sde.py", "diffcheck/samplers/ode.py",
                  "diffcheck/samplers/langevin.py", "diffcheck/reverse.py"],
        "tests": ["tests/samplers/test_sampler_contracts.py", "tests/samplers/test_pc_corrector.py", "tests/samplers/test_samplers.py",
                  "tests/samplers/test_learned_variance.py",
                  *_checks("ddim.lemma1", "ddim.eta1_is_ddpm", "ddim.prop1", "ddim.inversion", "likelihood.exact",
                           "likelihood.hutchinson", "pc.corrector_helps", "ncsnv2.sampler_technique4",
                           "samplers.ode_strong_order", "samplers.orders", "samplers.exact_law")],
    },
    "process": {
        "files": ["diffcheck/process/base.py", "diffcheck/process/continuous.py", "diffcheck/process/discrete.py",
                  "diffcheck/process/grids.py", "diffcheck/process/ladders.py", "diffcheck/process/maps.py"],
        "tests": ["tests/test_process.py", "tests/test_math_edges.py", "tests/samplers/test_sampler_contracts.py",
                  *_checks("process.coefficients_autograd", "process.log_snr_inverse", "process.kernel_quadrature",
                           "process.continuity", "process.subvp_below_vp", "process.fokker_planck", "param.conversions",
                           "ddpm.kernel_composition", "ddpm.posterior_bayes", "iddpm.cosine_table", "iddpm.beta_tilde_ratio",
                           "ddpm.alpha_bar_T", "sde.vp_ddpm_gap", "ddpm.respacing", "ncsnv2.technique2", "ncsnv2.technique4"),
                  "tests/samplers/test_samplers.py"],
    },
    "param": {
        "files": ["diffcheck/param.py"],
        "tests": [*_checks("param.conversions"), "tests/test_process.py", "tests/samplers/test_sampler_contracts.py",
                  "tests/samplers/test_samplers.py"],
    },
    "vlb": {
        "files": ["diffcheck/vlb.py"],
        "tests": ["tests/objectives/test_vlb.py", "tests/objectives/test_elbo.py", "tests/objectives/test_objectives_fails.py",
                  *_checks("ddpm.vlb_monte_carlo", "ddpm.discretized_decoder", "iddpm.learned_range", "iddpm.importance_sampling",
                           "ddpm.reverse_variance", "ddpm.vlb_entropy")],
    },
    "elbo": {
        "files": ["diffcheck/elbo.py"],
        "tests": ["tests/objectives/test_elbo.py", "tests/test_math_edges.py", "tests/objectives/test_vlb.py",
                  "tests/objectives/test_objectives_fails.py",
                  *_checks("ddpm.vlb_monte_carlo", "ddpm.vlb_entropy", "sde.bound_tight")],
    },
    "guidance": {
        "files": ["diffcheck/guidance.py"],
        "tests": ["tests/guidance/test_guidance.py", "tests/test_math_edges.py", "tests/samplers/test_sampler_contracts.py",
                  *_checks("guidance.conditional_score", "guidance.scale_one_is_conditional", "cfg.implicit_classifier",
                           "cfg.tilt_identity", "cfg.figure2", "guidance.unguided_limit", "cfg.guided_is_not_tilted")],
    },
    "losses": {
        "files": ["diffcheck/losses.py"],
        "tests": ["tests/objectives/test_losses.py", "tests/test_math_edges.py", "tests/objectives/test_objectives_fails.py",
                  *_checks("dsm.minimizer", "ddpm.simple_minimizer", "ncsn.ladder_minimizer", "sde.loss_minimizer",
                           "score_matching.sliced_implicit"),
                  "tests/test_checks.py::test_dsm_check_fails_on_wrong_score"],
    },
    "variance": {
        "files": ["diffcheck/variance.py"],
        "tests": ["tests/objectives/test_vlb.py", "tests/objectives/test_losses.py", "tests/objectives/test_objectives_fails.py",
                  "tests/samplers/test_learned_variance.py",
                  *_checks("iddpm.learned_range", "ddpm.reverse_variance", "ddpm.vlb_monte_carlo", "ddpm.vlb_entropy")],
    },
    "mixture": {
        "files": ["toy/mixture.py", "toy/law.py", "toy/evaluate.py", "toy/conditional.py"],
        "tests": ["tests/test_toy.py", "tests/test_math_edges.py", "tests/test_toy_dense.py",
                  *_checks("mixture.score_autograd", "mixture.noised_density", "mixture.tweedie", "mixture.tweedie_second_order",
                           "mixture.class_posterior", "mixture.conditioning", "mixture.noised_sampling",
                           "mixture.posterior_monte_carlo"),
                  "tests/test_assertions.py"],
    },
}
