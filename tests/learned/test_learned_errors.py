"""The error measures: exact answers give zero, known perturbations give their closed-form error, and the Monte
Carlo standard error is calibrated (and a wrong standard error is caught by the same calibration test)."""

import math

import pytest
import torch
from scipy import stats

import toy
from diffcheck.exact import ExactModel
from diffcheck.learned import (
    classifier_gradient_error,
    guided_eps_error,
    implicit_classifier_error,
    optimal_log_variance,
    relative_error,
    rms_error,
    score_error,
    variance_error,
)
from diffcheck.param import function_model
from diffcheck.process import VP, DiscreteVP, discretize
from diffcheck.variance import WithVariance, optimal_v


def test_relative_error_of_a_scaled_answer_is_the_scale_exactly():
    exact = torch.randn(1000, 3, dtype=torch.float64)
    err = relative_error(1.1 * exact, exact)
    assert abs(err.value - 0.1) < 1e-12
    assert err.se < 1e-10  # |pred - exact|^2 = 0.01 |exact|^2 draw by draw: the ratio has no Monte Carlo error


def test_relative_error_argument_checks():
    with pytest.raises(ValueError, match="same shape"):
        relative_error(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="zero at every draw"):
        relative_error(torch.ones(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="non-finite"):
        relative_error(torch.full((3, 2), float("nan")), torch.ones(3, 2))
    with pytest.raises(ValueError, match="at least 2"):
        rms_error(torch.zeros(1, 2), torch.zeros(1, 2))


@pytest.mark.parametrize("prediction", ["score", "eps", "x0", "v"])
def test_exact_models_have_zero_score_error(prediction, gen):
    m, vp = toy.anisotropic(), VP()
    for t in (0.02, 0.5):
        err = score_error(ExactModel(m, vp, prediction), m, vp, t, 2000, gen)
        assert err.value < 1e-9, (prediction, t, err)


def _linear_error_case(c: float):
    """A Gaussian target and a score off by c x: relative error |c| sqrt(tr S_t / tr S_t^{-1}) in closed form."""
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    m = toy.single_gaussian((0.0, 0.0), cov)
    vp, t = VP(), 0.3
    a, s = float(vp.alpha(t)), float(vp.sigma(t))
    cov_t = a * a * cov + s * s * torch.eye(2, dtype=torch.float64)
    truth = abs(c) * math.sqrt(float(torch.trace(cov_t)) / float(torch.trace(torch.linalg.inv(cov_t))))
    exact = ExactModel(m, vp, "score")
    model = function_model(lambda x, tt: exact(x, tt) + c * x, "score")
    return m, vp, t, model, truth


def test_score_error_is_unbiased_for_a_known_error(gen):
    m, vp, t, model, truth = _linear_error_case(0.2)
    err = score_error(model, m, vp, t, 20000, gen)
    z = (err.value - truth) / err.se
    assert abs(z) < stats.norm.ppf(1 - 0.001 / 2), (err, truth)  # two-sided, false-alarm rate 0.001


def _calibration(values, ses, alpha=0.001):
    """Is the spread of K independent estimates what their standard errors say? chi-square on (K-1) s^2 / se^2."""
    k = len(values)
    spread = float(torch.tensor(values).var())
    se2 = float(torch.tensor(ses).pow(2).mean())
    stat = (k - 1) * spread / se2
    lo, hi = stats.chi2.ppf(alpha / 2, k - 1), stats.chi2.ppf(1 - alpha / 2, k - 1)
    return lo < stat < hi, stat, (lo, hi)


def _repeated(k=300, n=400):
    m, vp, t, model, truth = _linear_error_case(0.2)
    law = vp.marginal(m, t)
    values, ses, naive = [], [], []
    g = torch.Generator().manual_seed(77)
    for _ in range(k):
        x = law.sample(n, g)
        exact = law.score(x)
        err = relative_error(model(x, t), exact)
        values.append(err.value)
        ses.append(err.se)
        # a deliberately wrong standard error: the denominator treated as known (its Monte Carlo error ignored)
        a = (model(x, t) - exact).pow(2).sum(-1)
        b = exact.pow(2).sum(-1)
        naive.append(float(a.std()) / math.sqrt(n) / float(b.mean()) / (2 * err.value))
    return values, ses, naive


def test_standard_error_is_calibrated_and_a_wrong_one_is_caught():
    values, ses, naive = _repeated()
    ok, stat, band = _calibration(values, ses)
    assert ok, (stat, band)
    bad, stat_naive, band = _calibration(values, naive)
    assert not bad, (stat_naive, band)


def test_classifier_gradient_error_of_the_exact_classifier_is_zero(gen):
    m, vp = toy.three_classes(), VP()
    exact = ExactModel(m, vp)
    assert classifier_gradient_error(lambda x, t: exact.log_class_posterior(x, t), m, vp, 0.3, 2000, gen).value < 1e-9
    # logits are defined up to a class-independent function of x: the gradient of log softmax ignores it
    shifted = lambda x, t: exact.log_class_posterior(x, t) + torch.sin(x).sum(-1, keepdim=True) * 3.0
    assert classifier_gradient_error(shifted, m, vp, 0.3, 2000, gen).value < 1e-9
    # a tempered classifier is wrong
    tempered = lambda x, t: 2.0 * exact.log_class_posterior(x, t)
    assert classifier_gradient_error(tempered, m, vp, 0.3, 2000, gen).value > 0.2


def _exact_cfg_model(m, process, swap_uncond=False):
    """The exact conditional/unconditional eps as one model taking class indices (no y: unconditional)."""
    exact = ExactModel(m, process, "eps")

    def fn(x, t, y=None):
        if y is None:
            return exact(x, t, m.classes[torch.zeros(x.shape[0], dtype=torch.int64)]) if swap_uncond else exact(x, t)
        return exact(x, t, m.classes[y])

    return function_model(fn, "eps")


@pytest.mark.parametrize("w", [0.0, 1.0, 4.0])
def test_guided_eps_error_of_the_exact_model_is_zero(w, gen):
    m, vp = toy.three_classes(), VP()
    assert guided_eps_error(_exact_cfg_model(m, vp), m, vp, 0.2, w, 2000, gen).value < 1e-9
    assert implicit_classifier_error(_exact_cfg_model(m, vp), m, vp, 0.2, 2000, gen).value < 1e-9


def test_guided_eps_error_sees_a_wrong_unconditional_model(gen):
    m, vp = toy.three_classes(), VP()
    wrong = _exact_cfg_model(m, vp, swap_uncond=True)  # eps(z) replaced by eps(z | class 0)
    assert guided_eps_error(wrong, m, vp, 0.2, 0.0, 2000, gen).value < 1e-9  # w = 0 uses only eps(z, c)
    assert guided_eps_error(wrong, m, vp, 0.2, 1.0, 2000, gen).value > 0.05
    assert implicit_classifier_error(wrong, m, vp, 0.2, 2000, gen).value > 0.2


def test_optimal_variance_is_beta_for_standard_normal_data(gen):
    # Ho et al. 2020, Sec. 3.2: sigma_t^2 = beta_t is the optimal reverse variance for x_0 ~ N(0, I)
    process = DiscreteVP.linear(100)
    sched = discretize(process, torch.arange(101, dtype=torch.float64) / 100)
    m = toy.single_gaussian((0.0, 0.0), 1.0)
    for step in (2, 10, 60, 100):
        x = m.noised(sched.alpha[step], sched.sigma[step]).sample(50, gen)
        got = optimal_log_variance(m, sched, step, x)
        assert torch.allclose(got, torch.log(sched.beta[step - 1]).expand_as(got), rtol=0, atol=1e-12)


def test_variance_error_of_the_optimal_variance_is_zero(gen):
    process = DiscreteVP.cosine(100)
    sched = discretize(process, torch.arange(101, dtype=torch.float64) / 100)
    m = toy.anisotropic()
    exact = ExactModel(m, process, "eps")

    def v_raw(x, t):
        step = int(round(float(torch.as_tensor(t).reshape(-1)[0]) * 100))
        v = optimal_v(optimal_log_variance(m, sched, step, x).exp(), sched, step)
        return 2.0 * v - 1.0

    err = variance_error(WithVariance(exact, v_raw), m, sched, 40, 1000, gen)
    assert err.value < 1e-9
    off = variance_error(WithVariance(exact, lambda x, t: v_raw(x, t) + 0.5), m, sched, 40, 1000, gen)
    assert off.value > 1e-3


def test_learned_networks_plug_into_the_guidance_module(gen):
    # the conventions match diffcheck.guidance: model(x, t, y=labels), model(x, t) unconditional, classifier -> logits
    from diffcheck import guidance
    from diffcheck.learned import CFGRecipe, ClassifierRecipe, train_cfg, train_classifier

    small = dict(steps=3, batch_size=16, n_data=64, hidden=8, blocks=1, embed_dim=4)
    cfg, clf = train_cfg(CFGRecipe(**small), progress=False), train_classifier(ClassifierRecipe(**small), progress=False)
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        want = 3.0 * cfg.model(x, 0.4, y=y) - 2.0 * cfg.model(x, 0.4)
        got = guidance.ClassifierFree(cfg.model, cfg.process, 2.0)(x, 0.4, y=y)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    xr = x.clone().requires_grad_(True)
    (mine,) = torch.autograd.grad(torch.log_softmax(clf.model(xr, 0.4), -1).gather(1, y[:, None]).sum(), xr)
    assert torch.allclose(guidance.classifier_grad(clf.model, x, 0.4, y), mine, rtol=1e-12, atol=1e-12)
