"""Every reference network, wrapped as a model of a process, runs through DDPM ancestral, DDIM and the probability-flow ODE."""

import pytest
import torch

from diffcheck import nets
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.nets.wrap import wrap_net

MODELS = [n for n in nets.names() if nets.config(n).prediction != "logits"]


def _setup(name):
    cfg = nets.config(name)
    net = nets.build(name, seed=0, **nets.tiny_overrides(name)).eval()
    tiny = net.config if hasattr(net, "config") else cfg
    kind = cfg.noise_input
    if kind == "timestep_1000":
        process = P.DiscreteVP.linear()
        grid = P.iddpm_grid(process, [4])[:-1]  # steps 1000, 667, 334, 1: end at step 1, above sigma = 0, for the ODE
    elif kind == "time_999":
        process = P.VP()
        grid = P.uniform_grid(4, 1.0, 1e-3)
    elif kind == "sigma":
        process = P.VE(sigma_min=0.01, sigma_max=50.0)
        grid = P.uniform_grid(4, 1.0, 1e-2)
    else:  # sigma_index: times on the network's ladder (NCSN's 1 -> 0.01 over its levels)
        process = P.VE(sigma_min=0.001, sigma_max=2.0)
        ladder = P.geometric_sigmas(1.0, 0.01, tiny.num_classes)
        grid = P.sigma_grid(process, ladder[[0, len(ladder) // 2, len(ladder) - 1]])
    model = wrap_net(net, process, config=tiny)
    kwargs = {}
    if tiny.label_classes:
        kwargs["y"] = torch.tensor([0, 1])
    if name == "mcvd_smmnist":
        c = tiny.num_frames_cond * tiny.channels
        kwargs["cond"] = torch.randn(2, c, tiny.image_size, tiny.image_size, generator=torch.Generator().manual_seed(1))
    x = process.prior_sample((2, *tiny.data_shape), torch.Generator().manual_seed(0), dtype=torch.float32)
    return model, process, grid, x, kwargs


@pytest.mark.parametrize("name", MODELS)
def test_network_runs_in_every_kind_of_sampler(name):
    model, process, grid, x, kw = _setup(name)
    with torch.no_grad():
        outs = [
            S.ddpm_ancestral(model, process, x, grid, generator=torch.Generator().manual_seed(2), **kw),
            S.ddim(model, process, x, grid, **kw),
            S.euler_ode(model, process, x, grid, **kw),
        ]
    for out in outs:
        assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
