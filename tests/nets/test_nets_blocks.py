"""Shared building blocks against independent computations: FIR resampling, embeddings, attention, InstanceNorm++."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffcheck.nets.common import (
    GroupNorm,
    SelfAttention2d,
    adm_timestep_embedding,
    ddpm_timestep_embedding,
    fir_downsample,
    fir_upsample,
    upfirdn2d,
    variance_scaling_,
)
from diffcheck.nets.refinenet import ConditionalInstanceNormPlus, InstanceNormPlus

KERNEL = (1.0, 3.0, 3.0, 1.0)


def upfirdn_1d(x: np.ndarray, kernel: tuple[float, ...], up: int, down: int, pad: tuple[int, int],
               gain: float) -> np.ndarray:
    """The definition along one axis: insert zeros, pad, convolve with the normalised kernel, keep every down-th."""
    z = np.zeros(len(x) * up)
    z[::up] = x
    z = np.pad(z, pad)
    k = np.asarray(kernel) / np.sum(kernel) * gain
    return np.convolve(z, k, mode="valid")[::down]


def upfirdn_reference(image: np.ndarray, kernel: tuple[float, ...], up: int, down: int,
                      pad: tuple[int, int], gain: float) -> np.ndarray:
    """A separable FIR filter applied axis by axis (gain split evenly between the axes)."""
    g = math.sqrt(gain)
    rows = np.stack([upfirdn_1d(r, kernel, up, down, pad, g) for r in image])
    return np.stack([upfirdn_1d(c, kernel, up, down, pad, g) for c in rows.T]).T


@pytest.mark.parametrize(("up", "down", "pad", "gain"), [(2, 1, (2, 1), 4.0), (1, 2, (1, 1), 1.0), (1, 1, (2, 2), 1.0)])
def test_upfirdn2d_matches_its_definition(up: int, down: int, pad: tuple[int, int], gain: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    out = upfirdn2d(x, (1.0, 2.0, 5.0, 1.0), up=up, down=down, pad=pad, gain=gain)  # asymmetric: catches a flip
    for b in range(2):
        for c in range(3):
            ref = upfirdn_reference(x[b, c].numpy(), (1.0, 2.0, 5.0, 1.0), up, down, pad, gain)
            np.testing.assert_allclose(out[b, c].numpy(), ref, rtol=1e-12, atol=1e-12)


def test_box_kernel_gives_nearest_and_average() -> None:
    """With the 2-tap box kernel, StyleGAN2's resamplers reduce to nearest upsampling and 2×2 averaging."""
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(fir_upsample(x, (1.0, 1.0)), F.interpolate(x, scale_factor=2.0, mode="nearest"))
    torch.testing.assert_close(fir_downsample(x, (1.0, 1.0)), F.avg_pool2d(x, 2))


def test_fir_resampling_preserves_constants_away_from_borders() -> None:
    x = torch.full((1, 1, 8, 8), 3.0, dtype=torch.float64)
    up, down = fir_upsample(x, KERNEL), fir_downsample(x, KERNEL)
    assert up.shape[-1] == 16 and down.shape[-1] == 4
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))


def test_ddpm_timestep_embedding_formula() -> None:
    """Ho et al. 2020 (tensor2tensor): [sin(t ω_k), cos(t ω_k)], ω_k = exp(−k ln 10⁴ / (half − 1))."""
    t = torch.tensor([0.0, 1.0, 17.0, 999.0])
    emb = ddpm_timestep_embedding(t, 8)
    omega = torch.exp(-torch.arange(4) * math.log(10_000) / 3)
    torch.testing.assert_close(emb, torch.cat([torch.sin(t[:, None] * omega), torch.cos(t[:, None] * omega)], 1))
    assert ddpm_timestep_embedding(t, 9)[:, -1].eq(0).all()


def test_adm_timestep_embedding_formula() -> None:
    """improved-diffusion: [cos(t ω_k), sin(t ω_k)], ω_k = exp(−k ln 10⁴ / half)."""
    t = torch.tensor([0.0, 2.5, 999.0])
    emb = adm_timestep_embedding(t, 8)
    omega = torch.exp(-torch.arange(4) * math.log(10_000) / 4)
    torch.testing.assert_close(emb, torch.cat([torch.cos(t[:, None] * omega), torch.sin(t[:, None] * omega)], 1))


@pytest.mark.parametrize("layout", ["heads_first", "qkv_first"])
def test_attention_matches_explicit_softmax(layout: str) -> None:
    """x + W_o · softmax(q_hᵀ k_h / √d) v_h per head, with ADM's two channel orders of the packed projection."""
    torch.manual_seed(0)
    heads, d, c = 2, 4, 8
    block = SelfAttention2d(c, norm=lambda ch: GroupNorm(2, ch), num_heads=heads, layout=layout).double()
    x = torch.randn(2, c, 3, 5, dtype=torch.float64)
    qkv = block.qkv(block.norm(x)).flatten(2)  # (B, 3C, T)
    outs = []
    for h in range(heads):
        if layout == "heads_first":
            base = h * 3 * d
            q, k, v = (qkv[:, base + i * d : base + (i + 1) * d] for i in range(3))
        else:
            q, k, v = (qkv[:, i * c + h * d : i * c + (h + 1) * d] for i in range(3))
        w = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(d), dim=-1)
        outs.append(torch.einsum("bts,bcs->bct", w, v))
    expected = x + block.proj(torch.cat(outs, dim=1).reshape(x.shape))
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)


def test_instance_norm_plus_formula() -> None:
    """Song & Ermon 2019 §4.2: γ_k (x_k − μ_k)/s_k + β_k + α_k (μ_k − m)/v, m, v² the mean and variance of the μ_k."""
    torch.manual_seed(0)
    norm = InstanceNormPlus(5).double()
    x = torch.randn(3, 5, 4, 6, dtype=torch.float64) * 2 + 1
    mu = x.mean(dim=(2, 3), keepdim=True)
    s = torch.sqrt(x.var(dim=(2, 3), unbiased=False, keepdim=True) + 1e-5)
    m = mu.mean(dim=1, keepdim=True)
    v = torch.sqrt(mu.var(dim=1, unbiased=True, keepdim=True) + 1e-5)
    g, a, b = (p[:, None, None] for p in (norm.gamma, norm.alpha, norm.beta))
    with torch.no_grad():
        torch.testing.assert_close(norm(x), g * (x - mu) / s + b + g * a * (mu - m) / v)


def test_conditional_instance_norm_plus_selects_by_index() -> None:
    torch.manual_seed(0)
    cond = ConditionalInstanceNormPlus(5, num_levels=3).double()
    plain = InstanceNormPlus(5).double()
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        gamma, alpha, beta = cond.embed.weight[2].chunk(3)
        plain.gamma.copy_(gamma), plain.alpha.copy_(alpha), plain.beta.copy_(beta)
        torch.testing.assert_close(cond(x, torch.tensor([2, 2])), plain(x))


def test_variance_scaling_bound() -> None:
    """Uniform on ±√(3·scale/fan_avg), fan_avg = (fan_in + fan_out)/2 with the receptive field (score_sde)."""
    w = torch.empty(64, 32, 3, 3)
    variance_scaling_(w, 0.5)
    bound = math.sqrt(3 * 0.5 / ((64 + 32) * 9 / 2))
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
