"""The zoo: every re-created bug fails a generic check, every fixed form passes them all, both forms of a request pass."""

import math

import pytest
import torch

from diffcheck.adapters.kdiffusion.denoiser import exact_denoiser, law
from diffcheck.adapters.kdiffusion.sigmas import exponential, karras
from diffcheck.exact import ExactModel
from diffcheck.process.discrete import DiscreteVP
from diffcheck.testing import affine_law
from diffcheck.zoo import ENTRIES, by_id, check_entry, format_table, zoo_table
from diffcheck.zoo import base, variants

# every catalogued bug is visible to a generic check; an entry that no check catches would be listed here
NOT_CAUGHT: set[str] = set()


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_generic_checks_catch_the_wrong_form_and_pass_the_right_one(entry):
    r = check_entry(entry)
    assert not r["false_alarms"], (r["wrong"], r["right"])
    if entry.kind == "request" or entry.id in NOT_CAUGHT:
        assert not r["caught"], r["wrong"]  # a NOT_CAUGHT entry that starts to be caught moves out of the set
    else:
        assert r["caught"], r["wrong"]
    # where diffcheck has the algorithm, the right form is that algorithm to round-off (an independent implementation)
    if "discrete" in r["right"]:
        assert r["right"]["discrete"]["kl"] < 1e-9, r["right"]["discrete"]


def test_table_text():
    table = zoo_table(["diffusers#590", "k-diffusion#43"])
    text = format_table(table)
    assert "catch rate: 2 of 2 bugs" in text and "diffusers#590" in text


def test_unknown_entry_is_named():
    with pytest.raises(ValueError, match="unknown zoo entry 'diffusers#0'"):
        by_id("diffusers#0")


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_the_table_model_is_the_exact_model_of_the_table(prediction):
    mix, proc = base.unit(), DiscreteVP.linear()
    fast, exact = base.table_model(mix, proc, prediction), ExactModel(mix, proc, prediction)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    for i in (0, 1, 20, 500, 999):
        assert torch.allclose(fast(x, i), exact(x, torch.tensor((i + 1) / proc.T, dtype=torch.float64)), rtol=1e-9, atol=1e-9)


def test_the_proposal_of_kdiffusion_56_is_invisible_on_uniform_lambda_ladders():
    # expm1(-h_last) = expm1(-h) where the log-sigma steps are equal: the change only acts where neighbouring steps differ,
    # as on Karras' ladder, where it scales the data by about one log-sigma step (see builders.swap)
    mix = base.unit()
    den, start = exact_denoiser(mix), law(mix, 14.6)
    out = {}
    for name, sig in (("uniform", exponential(16, 0.03, 14.6)), ("karras", karras(16, 0.03, 14.6))):
        s = sig.tolist()
        for step in ("h", "h_last"):
            out[name, step] = affine_law(lambda x, nz: variants.dpmpp_2m(den, x, s, weight_step=step), start.mean(),
                                         start.covariance())
    for a, b in zip(out["uniform", "h"], out["uniform", "h_last"]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    shrink = float(out["karras", "h_last"][0].norm() / out["karras", "h"][0].norm())
    assert shrink < 1 - 0.01 and math.isfinite(shrink)


def test_the_beta_interpolation_of_diffusers_2090_is_what_the_sampler_takes():
    """InterpolatedVariance("beta") makes the log-space map of Nichol & Dhariwal 2021, Eq. 15 give v beta + (1 - v) beta_tilde; "log" changes nothing."""
    from diffcheck.variance import ExactLearnedVariance, learned_log_variance
    from diffcheck.zoo.references import table_times

    mix, proc = base.diagonal(), DiscreteVP.linear()
    grid = table_times(proc, [999, 499, 99, -1])
    exact = ExactLearnedVariance(mix, proc, grid)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = grid[1]
    _, v_raw = exact.forward_full(x, t).split(2, dim=1)
    _, same = variants.InterpolatedVariance(exact, "log").forward_full(x, t).split(2, dim=1)
    _, bent = variants.InterpolatedVariance(exact, "beta").forward_full(x, t).split(2, dim=1)
    assert torch.equal(same, v_raw)
    lb, lbt = float(exact.log_beta[1]), float(exact.log_beta_tilde[1])
    v = (v_raw + 1) / 2
    taken = learned_log_variance(bent, lb, lbt).exp()
    assert torch.allclose(taken, v * math.exp(lb) + (1 - v) * math.exp(lbt), rtol=1e-12, atol=0)
    # the optimal v of the narrow axis lies strictly inside (0, 1), where the two interpolations differ (AM-GM)
    assert 0.01 < float(v[:, 1].min()) and float(v[:, 1].max()) < 0.99
    right = learned_log_variance(v_raw, lb, lbt).exp()
    assert float(((taken - right) / right)[:, 1].min()) > 1e-3
