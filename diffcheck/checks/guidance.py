"""Checks of classifier guidance, classifier-free guidance and imputation against exact conditionals."""

from __future__ import annotations

import math

import torch

import toy

from .. import samplers as S
from ..exact import ExactModel
from ..guidance import ClassifierFree, ClassifierGuided, ExactClassifier, classifier_guided_ancestral, tilted_log_density
from ..impute import exact_conditional, replacement
from ..param import predict
from ..process import VP, DiscreteVP, iddpm_grid, uniform_grid
from ..testing import stats as st
from . import Outcome, check, tour_plot

ORDER = 70  # position in the tour

_TIMES = (0.05, 0.3, 0.7)


def _points(m: toy.GaussianMixture, p, t: float, n: int, gen: torch.Generator) -> torch.Tensor:
    return p.marginal(m, t).sample(n, gen)


@check(
    "guidance.conditional_score",
    source="Dhariwal & Nichol 2021, Sec. 4.1; Song et al. 2021, Eq. 14",
    claim="grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x) at every t (the classifier gradient taken by autograd)",
)
def conditional_score(n: int = 128, seed: int = 60) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m, p = toy.three_classes(), VP()
    worst = 0.0
    for t in _TIMES:
        law = p.marginal(m, t)
        x = _points(m, p, t, n, gen).requires_grad_(True)
        for c in m.classes.tolist():
            (g,) = torch.autograd.grad(law.log_class_posterior(x)[:, c].sum(), x)
            lhs = law.score(x.detach(), y=c)
            rhs = law.score(x.detach()) + g
            worst = max(worst, float(((lhs - rhs).norm(dim=-1) / (1 + lhs.norm(dim=-1))).max()))
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol, "closed form against autograd of log p(y|x) in float64")


@check(
    "guidance.scale_one_is_conditional",
    source="Dhariwal & Nichol 2021, Algorithms 1 and 2",
    claim="At scale 1 with the exact classifier, Algorithm 2's eps_hat is the exact class-conditional eps; Algorithm 1's mean shift is the exact conditional mean shift times Sigma a / beta (-> 1 as steps shrink)",
)
def scale_one_is_conditional(n: int = 128, seed: int = 61) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m = toy.three_classes()
    p = DiscreteVP.linear()
    clf = ExactClassifier(m, p)
    uncond = ExactModel(m, p, "v")  # any prediction: the guided model converts
    guided = ClassifierGuided(uncond, clf, p, scale=1.0)
    worst2, worst1 = 0.0, 0.0
    grid = iddpm_grid(p, [50])
    for i in (0, 10, 40):
        t, s = grid[i], grid[i + 1]
        x = _points(m, p, float(t), n, gen)
        y = torch.randint(0, 3, (n,), generator=gen)
        exact_c = ExactModel(m, p, "eps").eps(x, t, y)
        worst2 = max(worst2, float((guided(x, t, y=y) - exact_c).abs().max() / (1 + exact_c.abs().max())))
        # Algorithm 1: shift Sigma * grad log p(y|x_t) vs the conditional model's ancestral mean minus the unconditional one
        c = S.coefficients(p, t, s)
        shift = c.beta_tilde * clf.grad(x, t, y)
        zero = lambda like: torch.zeros_like(like)
        mean_c = S.ancestral_step(ExactModel(m, p, "eps"), p, x, t, s, zero, y=y)[1]
        mean_u = S.ancestral_step(ExactModel(m, p, "eps"), p, x, t, s, zero)[1]
        predicted = (mean_c - mean_u) * (c.beta_tilde * c.alpha_ratio / c.beta)
        worst1 = max(worst1, float((shift - predicted).abs().max() / (1 + shift.abs().max())))
    tol = 1e-10
    return Outcome({"Algorithm 2 vs exact eps": 0.0, "Algorithm 1 vs scaled exact shift": 0.0},
                   {"Algorithm 2 vs exact eps": worst2, "Algorithm 1 vs scaled exact shift": worst1}, tol,
                   worst1 <= tol and worst2 <= tol, "identities in float64",
                   {"note": "the exact conditional ancestral mean moves by (beta_t / a) grad log p(y|x_t); Algorithm 1 moves it by Sigma grad log p(y|x_t)"})


@check(
    "cfg.implicit_classifier",
    source="Ho & Salimans 2021, Sec. 3.2",
    claim="The implicit classifier of classifier-free guidance is exact: -(eps(z, c) - eps(z)) / sigma = grad log p(c | z); so classifier guidance at scale s is CFG at w = s - 1",
)
def implicit_classifier(n: int = 128, seed: int = 62) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m, p = toy.three_classes(), VP()
    ex = ExactModel(m, p, "eps")
    clf = ExactClassifier(m, p)
    worst = 0.0
    for t in _TIMES:
        x = _points(m, p, t, n, gen)
        for c in range(3):
            implicit = -(ex.eps(x, t, c) - ex.eps(x, t)) / float(p.sigma(t))
            g = clf.grad(x, t, c)
            worst = max(worst, float((implicit - g).abs().max() / (1 + g.abs().max())))
            for s in (0.5, 3.0):
                a, b = ClassifierGuided(ex, clf, p, s)(x, t, y=c), ClassifierFree(ex, p, s - 1.0)(x, t, y=c)
                worst = max(worst, float((a - b).abs().max() / (1 + b.abs().max())))
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol, "float64 identity")


def _grid_density(m, p, t, c, w, lim=7.0, n=401):
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    return pts, torch.softmax(tilted_log_density(m, p, t, pts, c, w), 0), float(g[1] - g[0])


@check(
    "cfg.tilt_identity",
    source="Ho & Salimans 2021, Sec. 3.2",
    claim="p(z|c) p(c|z)^w and p(z) p(c|z)^(w+1), each normalised on a grid, are the same density",
)
def tilt_identity(ws: tuple[float, ...] = (0.5, 1.0, 4.0)) -> Outcome:
    m, p = toy.three_classes(), VP()
    pts, _, _ = _grid_density(m, p, 0.0, 0, 0.0, n=201)
    law = p.marginal(m, 0.0)
    worst = 0.0
    for w in ws:
        for c in range(3):
            a = torch.softmax(law.log_prob(pts, y=c) + w * law.log_class_posterior(pts)[:, c], 0)
            b = torch.softmax(law.log_prob(pts) + (w + 1) * law.log_class_posterior(pts)[:, c], 0)
            worst = max(worst, float(((a - b).abs() / b.max()).max()))
    tol = 1e-12
    return Outcome(0.0, worst, tol, worst <= tol, "float64, relative to the largest grid mass")


def _axes(m: toy.GaussianMixture, c: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    others = torch.cat([m.means[:c], m.means[c + 1 :]]).mean(0)
    axis = (m.means[c] - others) / (m.means[c] - others).norm()
    return axis, torch.stack([-axis[1], axis[0]])


def _tilted_moments(m, p, c, w):
    pts, d, _ = _grid_density(m, p, 0.0, c, w)
    axis, perp = _axes(m, c)
    a, b = pts @ axis, pts @ perp
    ma = float((d * a).sum())
    return {"mean along class axis": ma, "var along class axis": float((d * (a - ma) ** 2).sum()),
            "var across": float((d * (b - (d * b).sum()) ** 2).sum())}


@check(
    "cfg.figure2",
    source="Ho & Salimans 2021, Fig. 2",
    claim="As w grows, the tilted density p(z|c) p(c|z)^w of three isotropic classes moves its mass away from the other classes and its spread shrinks",
)
def figure2(ws: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)) -> Outcome:
    m, p = toy.three_classes(), VP()
    rows = {w: _tilted_moments(m, p, 0, w) for w in ws}
    means = [rows[w]["mean along class axis"] for w in ws]
    spread = [rows[w]["var along class axis"] + rows[w]["var across"] for w in ws]
    ok = all(b > a for a, b in zip(means, means[1:])) and all(b < a for a, b in zip(spread, spread[1:]))
    ok &= abs(means[0] - 1.5) < 1e-6 and abs(spread[0] - 2.0) < 1e-6  # w = 0 is class 0 itself: N(mean at radius 1.5, I)
    return Outcome("mean along the class axis increasing, total variance decreasing in w; w = 0: 1.5 and 2",
                   {"mean along class axis": dict(zip(map(str, ws), means)), "total variance": dict(zip(map(str, ws), spread))},
                   "strict monotonicity; w = 0 to 1e-6 (grid quadrature)", ok,
                   "moments by quadrature on a 401 x 401 grid over [-7, 7]^2", {"rows": {str(k): v for k, v in rows.items()}})


def _sample_grid(pts, d, spacing, n, gen):
    i = torch.multinomial(d, n, replacement=True, generator=gen)
    return pts[i] + spacing * (torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5)


def guided_table(ws=(0.0, 1.0, 2.0, 4.0), n: int = 1000, seed: int = 63) -> dict:
    """Moments along the class axis of CFG samplers (reverse SDE, probability-flow ODE) and of the tilted density, per w."""
    gen = torch.Generator().manual_seed(seed)
    m, p = toy.three_classes(), VP()
    ex = ExactModel(m, p, "eps")
    axis, perp = _axes(m, 0)
    y = torch.zeros(n, dtype=torch.long)
    table = {}
    for w in ws:
        cfg = ClassifierFree(ex, p, w)
        x_T = ex.law(1.0).given(0).sample(n, gen) if w == 0 else p.prior_sample((n, 2), gen)
        sde = S.euler_maruyama(cfg, p, x_T, uniform_grid(500, 1.0, 1e-3), generator=gen, y=y)
        ode = S.heun_ode(cfg, p, x_T, uniform_grid(100, 1.0, 1e-3), y=y)
        pts, d, h = _grid_density(m, p, 0.0, 0, w)
        tilt = _sample_grid(pts, d, h, n, gen)
        row = {"tilted": _tilted_moments(m, p, 0, w)}
        for name, x in (("reverse SDE", sde), ("probability-flow ODE", ode)):
            a, b = x @ axis, x @ perp
            row[name] = {"mean along class axis": float(a.mean()), "var along class axis": float(a.var()),
                         "var across": float(b.var()), "se of mean": float(a.std() / math.sqrt(n)),
                         "two-sample p vs tilted": st.two_sample_test(x, tilt, alpha=0.01, generator=gen).p_value}
        table[w] = row
    return table


@check(
    "cfg.guided_is_not_tilted",
    source="Ho & Salimans 2021, Sec. 3.2 (guidance as sampling p(z|c) p(c|z)^w is heuristic)",
    claim="For w > 0 the CFG reverse SDE and probability-flow ODE do not sample the tilted density p(z|c) p(c|z)^w, and they disagree with each other; at w = 0 both sample the class-conditional law",
)
def guided_is_not_tilted(n: int = 1000, seed: int = 63, alpha: float = 1e-3, ws: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)) -> Outcome:
    """n = 1000: the smallest gap to resolve, ODE - SDE at w = 1 (the smallest w > 0), is about 0.42 standard
    deviations of the samples along the class axis, 0.42 sqrt(n) = 13 standard errors at n = 4000; n = 1000 leaves
    6.6 standard errors, 1.7x the Bonferroni critical value (3.84 for 16 tests). w = 0.5 would need n >= 5000 for the
    same margin, and w = 1 already shows the claim for w > 0."""
    table = guided_table(ws, n, seed)
    z = st.normal_quantile(1 - alpha / (4 * len(ws)))
    ok = True
    summary = {}
    for w, row in table.items():
        sde, ode, tilt = row["reverse SDE"], row["probability-flow ODE"], row["tilted"]
        z_sde = (sde["mean along class axis"] - tilt["mean along class axis"]) / sde["se of mean"]
        z_ode = (ode["mean along class axis"] - tilt["mean along class axis"]) / ode["se of mean"]
        z_gap = (ode["mean along class axis"] - sde["mean along class axis"]) / math.hypot(sde["se of mean"], ode["se of mean"])
        summary[str(w)] = {"SDE - tilted (z)": round(z_sde, 1), "ODE - tilted (z)": round(z_ode, 1), "ODE - SDE (z)": round(z_gap, 1)}
        if w == 0.0:
            ok &= abs(z_sde) <= z and abs(z_ode) <= z
        else:
            ok &= abs(z_sde) > z and abs(z_ode) > z and abs(z_gap) > z
    return Outcome({"w = 0": f"|z| <= {z:.2f}", "w > 0": f"|z| > {z:.2f} for SDE-tilted, ODE-tilted, ODE-SDE"}, summary,
                   f"z = {z:.2f} (two-sided, Bonferroni alpha={alpha:g} over {4 * len(ws)})", ok,
                   f"means along the class axis of n={n} samples (n sized to resolve the w = 1 gaps; see the docstring); "
                   f"the tilted moments by quadrature",
                   {"table": {str(k): v for k, v in table.items()}})


@check(
    "guidance.unguided_limit",
    source="Dhariwal & Nichol 2021, Algorithms 1-2; Ho & Salimans 2021, Eq. 6",
    claim="Classifier guidance at scale 1 (both algorithms) and classifier-free guidance at w = 0 sample the exact class-conditional mixture",
)
def unguided_limit(n: int = 2000, seed: int = 64, alpha: float = 1e-3, scale: float = 1.0, w: float = 0.0) -> Outcome:
    """``scale`` and ``w`` replace 1 and 0 (to show the check fails for real guidance)."""
    gen = torch.Generator().manual_seed(seed)
    m = toy.three_classes()
    ddpm = DiscreteVP.linear()
    vp = VP()
    y = torch.full((n,), 1)
    target = m.given(1)
    runs = {}
    clf = ExactClassifier(m, ddpm)
    ex = ExactModel(m, ddpm, "eps")
    start = ex.law(1.0).given(1).sample(n, gen)
    runs["Algorithm 1 (ancestral, 1000 steps)"] = classifier_guided_ancestral(ex, clf, ddpm, start, iddpm_grid(ddpm, [1000]), y, scale=scale, generator=gen)
    runs["Algorithm 2 (DDIM, 100 steps)"] = S.ddim(ClassifierGuided(ex, clf, ddpm, scale), ddpm, start, iddpm_grid(ddpm, [100]), y=y)
    exv = ExactModel(m, vp, "eps")
    start_v = exv.law(1.0).given(1).sample(n, gen)
    runs["CFG w=0 (reverse SDE)"] = S.euler_maruyama(ClassifierFree(exv, vp, w), vp, start_v, uniform_grid(1000, 1.0, 1e-3), generator=gen, y=y)
    runs["Algorithm 2 (probability-flow ODE)"] = S.heun_ode(ClassifierGuided(exv, ExactClassifier(m, vp), vp, scale), vp, start_v, uniform_grid(100, 1.0, 1e-3), y=y)
    each = alpha / (2 * len(runs))
    failures, pv = [], {}
    for name, x in runs.items():
        two = st.two_sample_test(x, target.sample(n, gen), alpha=each, generator=gen, features=target.log_prob)
        modes = st.mode_weights_test(x, m, alpha=each, generator=gen, reference=target)
        pv[name] = {"two-sample p": two.p_value, "mode weights p": modes.p_value}
        failures += [f"{name}: {r}" for r in (two, modes) if not r.passed]
    return Outcome("no rejection", f"{len(failures)} rejections", f"alpha={alpha:g} overall", not failures,
                   f"Bonferroni over {2 * len(runs)} tests, n={n}", {"failures": failures, "p_values": pv})


@check(
    "impute.replacement_bias",
    source="Song et al. 2021, App. I.2 (replacement); Ho et al. 2022, Sec. 3.1 (its bias)",
    claim="On a correlated mixture, imputation by replacement is measurably biased while the exact conditional sampler passes the two-sample test",
)
def replacement_bias(n: int = 4000, seed: int = 65, alpha: float = 1e-3) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m = toy.anisotropic()
    p = DiscreteVP.linear()
    grid = iddpm_grid(p, [250])
    known = torch.tensor([0])
    value = torch.tensor([0.0], dtype=torch.float64)
    target = m.condition(known, value)
    x_T = p.prior_sample((n, 2), gen)
    rep = replacement(ExactModel(m, p, "eps"), p, value.expand(n, 1), known, x_T, grid, step=S.ancestral_step, generator=gen)
    start = ExactModel(target, p).law(grid[0]).sample(n, gen)
    exact = exact_conditional(m, p, value, known, start, grid, sampler=S.ddpm_ancestral, generator=gen)
    ref = target.sample(n, gen)
    r_rep = st.two_sample_test(rep[:, 1:], ref, alpha=alpha / 2, generator=gen, features=target.log_prob)
    r_ex = st.two_sample_test(exact[:, 1:], ref, alpha=alpha / 2, generator=gen, features=target.log_prob)
    kl = lambda x: float(toy.kl_gaussian(x.mean(0), torch.cov(x.T).reshape(1, 1), target.mean(), target.covariance()))
    ok = (not r_rep.passed) and r_ex.passed
    return Outcome({"replacement": "rejected", "exact conditional": "not rejected"},
                   {"replacement p": r_rep.p_value, "exact conditional p": r_ex.p_value,
                    "Gaussian KL of fitted moments (replacement)": kl(rep[:, 1:]), "(exact)": kl(exact[:, 1:])},
                   f"alpha={alpha:g} split over two tests", ok, f"n={n}; anisotropic mixture, x_1 = 0 known, x_2 imputed")


@tour_plot("cfg_tilts.png")
def _plot_tilts(path):
    import matplotlib.pyplot as plt

    from ..plots import save, style

    style()
    m, p = toy.three_classes(), VP()
    ws = (0.0, 1.0, 4.0)
    gen = torch.Generator().manual_seed(0)
    ex = ExactModel(m, p, "eps")
    fig, axes = plt.subplots(2, len(ws), figsize=(3.1 * len(ws), 6.0), layout="constrained", squeeze=False)
    for j, w in enumerate(ws):
        pts, d, h = _grid_density(m, p, 0.0, 0, w, n=201)
        img = d.reshape(201, 201).numpy()
        y = torch.zeros(1500, dtype=torch.long)
        x_T = p.prior_sample((1500, 2), gen)
        cfg = ClassifierFree(ex, p, w)
        for i, (label, x) in enumerate((("reverse SDE", S.euler_maruyama(cfg, p, x_T, uniform_grid(300, 1.0, 1e-3), generator=gen, y=y)),
                                        ("probability-flow ODE", S.heun_ode(cfg, p, x_T, uniform_grid(60, 1.0, 1e-3), y=y)))):
            ax = axes[i][j]
            ax.imshow(img, origin="lower", extent=(-7, 7, -7, 7), cmap="Greys")
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.35, color="C1" if i == 0 else "C0")
            ax.scatter(m.means[:, 0], m.means[:, 1], marker="x", color="k")
            ax.set_xlim(-5, 5)
            ax.set_ylim(-5, 5)
            ax.set_title(f"w = {w:g}: {label}")
    fig.suptitle(r"CFG samples (dots) over the tilted density $p(z|c)\,p(c|z)^w$ (grey), class 0 of three")
    return save(fig, path)


@tour_plot("classifier_gradient.png")
def _plot_classifier(path):
    import matplotlib.pyplot as plt

    from ..plots import density_grid, save, style

    style()
    m, p = toy.three_classes(), VP()
    clf = ExactClassifier(m, p)
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.3), layout="constrained")
    g = torch.linspace(-4.5, 4.5, 19, dtype=torch.float64)
    qx, qy = torch.meshgrid(g, g, indexing="xy")
    q = torch.stack([qx.reshape(-1), qy.reshape(-1)], -1)
    for ax, t in zip(axes, (0.05, 0.3, 0.6)):
        xx, yy, lp = density_grid(p.marginal(m, t), 4.5, 150)
        ax.contour(xx, yy, lp, levels=8, colors="0.6", linewidths=0.6, linestyles="solid")
        v = clf.grad(q, t, 0)
        ax.quiver(q[:, 0], q[:, 1], v[:, 0], v[:, 1], color="C3", scale=40, width=0.004)
        ax.set_title(rf"$\nabla \log p(c=0 \mid x_t)$, t = {t:g}")
        ax.set_aspect("equal")
    return save(fig, path)
