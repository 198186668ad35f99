"""The video networks (VDM's factorised U-Net, MCVD, RaMViD): counts, shapes, conditioning, frame mixing, numerics.

Reference counts come from building the authors' models (MODELS.md); the factorised U-Net has no official code, so
its count is checked against an independent sum: the image U-Net with the same options plus the parameters of
one temporal attention block per spatial attention block. As for the image networks, tests of conditioning and of
gradient reachability first perturb every trainable parameter (``perturbed``), because the official networks
start their output layers at zero (VDM, RaMViD) or at 1e-10 scale (MCVD).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffcheck import nets
from diffcheck import process as P
from diffcheck.nets import NOISE_INPUTS, PREDICTIONS, video
from diffcheck.nets.common import GroupNorm, SelfAttention2d, conv3x3, Downsample, Upsample
from diffcheck.nets.unet import UNet, UNetLayout
from diffcheck.nets.video_mcvd import mcvd_groups
from diffcheck.nets.video_vdm import TemporalAttention
from diffcheck.nets.wrap import wrap_net

REFERENCE = {"mcvd_smmnist": 27_941_765, "ramvid_bair": 235_071_875}
NAMES = nets.names("video")
FRAMED = ["vdm_video64", "ramvid_bair"]  # (B, C, F, H, W) networks: any frame count


def tiny(name: str, *, seed: int = 0, **overrides: object) -> nn.Module:
    """The tiny version of a named video network in eval mode."""
    return nets.build(name, seed=seed, **{**nets.tiny_overrides(name), **overrides}).eval()


@torch.no_grad()
def perturbed(net: nn.Module, seed: int = 1, scale: float = 0.05) -> nn.Module:
    """Add N(0, scale²) noise to every trainable parameter, so that zero-initialised layers pass signal."""
    g = torch.Generator().manual_seed(seed)
    for p in net.parameters():
        if p.requires_grad:
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net


def inputs(cfg, batch: int, size: int | None = None, frames: int | None = None, seed: int = 2
           ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """A video batch in the network's layout, noise inputs and the conditioning keywords it needs."""
    g = torch.Generator().manual_seed(seed)
    size = cfg.image_size if size is None else size
    if isinstance(cfg, video.MCVDConfig):
        x = torch.randn(batch, cfg.num_frames * cfg.channels, size, size, generator=g)
        cond = torch.randn(batch, cfg.cond_frames * cfg.channels, size, size, generator=g)
        kwargs = {"cond": cond}
    else:
        frames = cfg.num_frames if frames is None else frames
        x = torch.randn(batch, cfg.in_channels, frames, size, size, generator=g)
        kwargs = {}
    scale = 1000.0 if cfg.noise_input == "timestep_1000" else 999.0
    noise = torch.rand(batch, generator=g) * scale
    return x, noise, kwargs


def relative_change(a: Tensor, b: Tensor) -> float:
    """max |a − b| / max |a|."""
    return float((a - b).abs().amax() / a.abs().amax())


# --------------------------------------------------------------------------- counts and metadata


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_count_matches_official(name: str) -> None:
    with torch.device("meta"):
        net = nets.build(name)
    assert sum(p.numel() for p in net.parameters()) == REFERENCE[name]


def test_factorised_unet_is_the_image_unet_plus_temporal_attention() -> None:
    """Count of VDM = count of the per-frame image U-Net + Σ over attention sites of a temporal block's parameters:
    GroupNorm 2C, q/k/v 3C² + 3C, output C² + C, relative bias heads·(2·32 + 1)."""
    cfg = nets.config("vdm_video64")
    layout = cfg.layout()
    with torch.device("meta"):
        image = UNet(layout, out_channels=cfg.in_channels)
        net = nets.build("vdm_video64")
    spatial = [m.proj.in_channels for m in image.modules() if isinstance(m, SelfAttention2d)]
    assert len(spatial) == 3 * 2 + 1 + 3 * 3  # 3 attended levels × 2 encoder blocks, middle, 3 × 3 decoder blocks
    temporal = sum(2 * c + 3 * c * c + 3 * c + c * c + c + (c // 64) * 65 for c in spatial)
    expected = sum(p.numel() for p in image.parameters()) + temporal
    assert sum(p.numel() for p in net.parameters()) == expected == 1_165_601_851


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name: str) -> None:
    cfg = nets.config(name)
    assert cfg.prediction in PREDICTIONS and cfg.noise_input in NOISE_INPUTS
    assert cfg.learn_sigma is False and cfg.label_classes is None and cfg.data_range == (-1.0, 1.0)
    assert isinstance(cfg.cond_inputs, dict)
    with pytest.raises(AttributeError):
        cfg.prediction = "score"  # type: ignore[misc]


def test_metadata_of_each_family() -> None:
    vdm, mcvd, ramvid = (nets.config(n) for n in ("vdm_video64", "mcvd_smmnist", "ramvid_bair"))
    assert (vdm.prediction, vdm.noise_input, vdm.data_shape) == ("eps", "time_999", (3, 16, 64, 64))
    assert (mcvd.prediction, mcvd.noise_input, mcvd.data_shape, mcvd.cond_shape) == \
        ("eps", "timestep_1000", (5, 64, 64), (5, 64, 64))
    assert (ramvid.prediction, ramvid.noise_input, ramvid.data_shape) == ("eps", "timestep_1000", (3, 20, 64, 64))
    assert set(vdm.cond_inputs) == {"temporal_mask"}
    assert set(mcvd.cond_inputs) == {"cond", "cond_mask"}
    assert ramvid.cond_inputs == {}


def test_unknown_name_and_field_are_named() -> None:
    with pytest.raises(ValueError, match="'vdm_video128'"):
        nets.build("vdm_video128")
    with pytest.raises(TypeError, match="'frames'"):
        nets.build("vdm_video64", frames=8)
    with pytest.raises(ValueError, match="n_head_channels"):
        nets.build("mcvd_smmnist", n_head_channels=48)
    with pytest.raises(ValueError, match="num_heads"):
        nets.build("ramvid_bair", num_heads=3)
    with pytest.raises(ValueError, match="cond_emb"):
        nets.build("mcvd_smmnist", num_frames_cond=0, cond_emb=True)
    with pytest.raises(ValueError, match="noise_input"):
        nets.build("vdm_video64", noise_input="sigma")


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", FRAMED)
@pytest.mark.parametrize(("batch", "size", "frames"), [(1, 16, 4), (3, 32, 3), (2, 16, 1)])
def test_output_shape_of_framed_networks(name: str, batch: int, size: int, frames: int) -> None:
    """Any resolution divisible by the downsampling and any frame count, odd or one, gives ε in the input's layout."""
    net = tiny(name)
    x, noise, _ = inputs(net.config, batch, size, frames)
    with torch.no_grad():
        out = net(x, noise)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(("batch", "size", "frames", "cond", "future"), [(1, 16, 2, 2, 0), (3, 32, 3, 1, 2)])
def test_output_shape_of_mcvd(batch: int, size: int, frames: int, cond: int, future: int) -> None:
    net = tiny("mcvd_smmnist", num_frames=frames, num_frames_cond=cond, num_frames_future=future)
    x, noise, kwargs = inputs(net.config, batch, size)
    assert kwargs["cond"].shape[1] == cond + future
    with torch.no_grad():
        out = net(x, noise, **kwargs)
    assert out.shape == (batch, frames, size, size) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_wrapped_as_a_model_of_a_process(name: str) -> None:
    """diffcheck.nets.wrap feeds each network its noise input and passes the conditioning keywords through."""
    net = tiny(name)
    process = P.VP() if net.config.noise_input == "time_999" else P.DiscreteVP.linear()
    x, _, kwargs = inputs(net.config, 2)
    model = wrap_net(net, process)
    with torch.no_grad():
        out = model(x, torch.tensor([0.25, 0.75]), **kwargs)
    assert model.prediction == "eps" and out.shape == x.shape


# --------------------------------------------------------------------------- conditioning


@pytest.mark.parametrize("name", NAMES)
def test_noise_input_changes_output(name: str) -> None:
    net = perturbed(tiny(name))
    x, noise, kwargs = inputs(net.config, 2)
    with torch.no_grad():
        a, b = net(x, noise, **kwargs), net(x, (noise + 250) % 999, **kwargs)
    assert relative_change(a, b) > 1e-3


def test_mcvd_conditioning_frames_change_output() -> None:
    net = perturbed(tiny("mcvd_smmnist"))
    x, noise, kwargs = inputs(net.config, 2)
    other = kwargs["cond"].clone()
    other[:, -1] += 1.0  # the last past frame only
    with torch.no_grad():
        a, b = net(x, noise, **kwargs), net(x, noise, cond=other)
    assert relative_change(a, b) > 1e-3


def test_mcvd_masked_conditioning() -> None:
    """A mask of 0 is the zeroed conditioning of MCVD's training (and the net accepts zeros); 1 keeps the frames."""
    net = perturbed(tiny("mcvd_smmnist"))
    x, noise, kwargs = inputs(net.config, 2)
    cond = kwargs["cond"]
    with torch.no_grad():
        zeroed = net(x, noise, cond=torch.zeros_like(cond))
        masked = net(x, noise, cond=cond, cond_mask=torch.tensor([0, 0]))
        kept = net(x, noise, cond=cond, cond_mask=torch.tensor([1, 1], dtype=torch.int32))
        mixed = net(x, noise, cond=cond, cond_mask=torch.tensor([True, False]))
        full = net(x, noise, cond=cond)
    assert torch.isfinite(zeroed).all()
    torch.testing.assert_close(masked, zeroed, rtol=0, atol=0)
    torch.testing.assert_close(kept, full, rtol=0, atol=0)
    assert relative_change(full, zeroed) > 1e-3
    torch.testing.assert_close(mixed[0], full[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mixed[1], zeroed[1], rtol=1e-5, atol=1e-6)


def test_mcvd_mask_embedding_tells_masked_from_zero_frames() -> None:
    """With cond_emb the mask state is an input of its own: zero frames marked kept differ from masked ones."""
    net = perturbed(tiny("mcvd_smmnist", cond_emb=True))
    x, noise, kwargs = inputs(net.config, 2)
    zeros = torch.zeros_like(kwargs["cond"])
    with torch.no_grad():
        marked_kept = net(x, noise, cond=zeros)
        marked_masked = net(x, noise, cond=zeros, cond_mask=torch.tensor([0, 0]))
    assert relative_change(marked_kept, marked_masked) > 1e-3


def test_mcvd_rejects_bad_conditioning() -> None:
    net = tiny("mcvd_smmnist")
    x, noise, kwargs = inputs(net.config, 2)
    cond = kwargs["cond"]
    with pytest.raises(ValueError, match="pass cond"):
        net(x, noise)
    with pytest.raises(ValueError, match="cond must have shape"):
        net(x, noise, cond=cond[:, :1])
    with pytest.raises(ValueError, match="cond_mask"):
        net(x, noise, cond=cond, cond_mask=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="cond_mask"):
        net(x, noise, cond=cond, cond_mask=torch.tensor([0, 2]))
    unconditional = tiny("mcvd_smmnist", num_frames_cond=0)
    with pytest.raises(ValueError, match="no conditioning frames"):
        unconditional(x, noise, cond=cond)
    assert unconditional(x, noise).shape == x.shape


def test_mcvd_feeds_the_reversed_step_index_to_ddpm_sinusoids() -> None:
    """MCVD's label is k = 999 − i (its ᾱ table is stored noisiest first), embedded as [sin kω_j, cos kω_j] with
    ω_j = 10⁴^(−j/(half − 1)); written out here from those formulas and captured at the embedding MLP."""
    net = tiny("mcvd_smmnist")
    x, _, kwargs = inputs(net.config, 3)
    steps = torch.tensor([0.0, 400.0, 999.0])
    seen: list[Tensor] = []
    handle = net.time_mlp.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        net(x, steps, **kwargs)
    handle.remove()
    half = net.config.ngf // 2
    omega = torch.tensor([10_000.0 ** (-j / (half - 1)) for j in range(half)], dtype=torch.float64)
    k = (999.0 - steps.double())[:, None]
    expected = torch.cat([torch.sin(k * omega), torch.cos(k * omega)], dim=1)
    torch.testing.assert_close(seen[0].double(), expected, rtol=0, atol=2e-4)  # float32 arguments up to 999


def test_frames_to_channels_is_frame_major() -> None:
    """Channel f·C + c holds channel c of frame f, as MCVD reshapes (B, F, C, H, W) clips; the inverse undoes it."""
    v = torch.randn(2, 3, 4, 5, 5)
    stacked = video.frames_to_channels(v)
    assert stacked.shape == (2, 12, 5, 5)
    for f in range(4):
        for c in range(3):
            assert torch.equal(stacked[:, f * 3 + c], v[:, c, f])
    assert torch.equal(video.channels_to_frames(stacked, 3), v)
    with pytest.raises(ValueError, match="channels=5"):
        video.channels_to_frames(stacked, 5)
    with pytest.raises(ValueError, match="video"):
        video.frames_to_channels(stacked)


def test_mcvd_attention_matches_its_multihead_formula() -> None:
    """MCVD's attention: separate q, k, v maps, head h on channels [h·d, (h+1)·d), softmax(q·k/√d) v, output map,
    (x + out)/√2. Written out with einsum and compared with the block the network uses (qkv_first layout)."""
    torch.manual_seed(0)
    channels, d = 128, 64
    block = SelfAttention2d(channels, norm=lambda c: GroupNorm(mcvd_groups(c), c, eps=1e-6), num_heads=2,
                            layout="qkv_first", skip_rescale=True).double()
    perturbed(block, scale=0.1)
    x = torch.randn(2, channels, 4, 4, dtype=torch.float64)
    h = F.group_norm(x, 32, block.norm.weight, block.norm.bias, eps=1e-6)
    wq, wk, wv = block.qkv.weight[:, :, 0, 0].chunk(3)
    bq, bk, bv = block.qkv.bias.chunk(3)
    q, k, v = (torch.einsum("oc,bchw->bohw", w, h) + b[:, None, None] for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    heads = [slice(i * d, (i + 1) * d) for i in range(2)]
    out = []
    for s in heads:
        logits = torch.einsum("bchw,bcij->bhwij", q[:, s], k[:, s]) / math.sqrt(d)
        weights = logits.reshape(2, 4, 4, 16).softmax(-1).reshape(2, 4, 4, 4, 4)
        out.append(torch.einsum("bhwij,bcij->bchw", weights, v[:, s]))
    proj = torch.einsum("oc,bchw->bohw", block.proj.weight[:, :, 0, 0], torch.cat(out, 1)) + block.proj.bias[:, None, None]
    torch.testing.assert_close(block(x), (x + proj) / math.sqrt(2), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- how frames interact


def perturb_frame(x: Tensor, frame: int) -> Tensor:
    """x with one frame (axis 2) shifted by a fixed random pattern."""
    y = x.clone()
    y[:, :, frame] += torch.randn(y[:, :, frame].shape, generator=torch.Generator().manual_seed(9))
    return y


def frame_changes(net: nn.Module, x: Tensor, noise: Tensor, frame: int, **kwargs: object) -> list[float]:
    """Relative change of every output frame when one input frame is perturbed."""
    with torch.no_grad():
        a, b = net(x, noise, **kwargs), net(perturb_frame(x, frame), noise, **kwargs)
    return [relative_change(a[:, :, f], b[:, :, f]) for f in range(x.shape[2])]


def test_vdm_masked_temporal_attention_makes_frames_independent() -> None:
    """With the identity mask no layer mixes frames: perturbing frame 2 leaves every other frame unchanged to
    rounding, while the unmasked network carries the perturbation to every frame (the test can fail)."""
    net = perturbed(tiny("vdm_video64"))
    x, noise, _ = inputs(net.config, 2)
    masked = frame_changes(net, x, noise, 2, temporal_mask=video.joint_training_mask(0, 4))
    unmasked = frame_changes(net, x, noise, 2)
    assert masked[2] > 1e-2 and max(masked[:2] + masked[3:]) < 1e-6
    assert min(unmasked) > 1e-4


def test_vdm_independent_frames_are_processed_as_images() -> None:
    """Under the identity mask, each output frame equals the network's output on that frame alone (F = 1)."""
    net = perturbed(tiny("vdm_video64"))
    x, noise, _ = inputs(net.config, 2)
    with torch.no_grad():
        whole = net(x, noise, temporal_mask=torch.eye(4, dtype=torch.bool))
        alone = torch.cat([net(x[:, :, f : f + 1], noise) for f in range(4)], dim=2)
    torch.testing.assert_close(whole, alone, rtol=1e-4, atol=1e-5 * whole.abs().amax().item())


def test_vdm_joint_training_mask() -> None:
    """Video frames 0–1 see each other; appended images 2–3 see only themselves (Ho et al. 2022, Section 3)."""
    mask = video.joint_training_mask(2, 2)
    assert mask.tolist() == [[True, True, False, False], [True, True, False, False],
                             [False, False, True, False], [False, False, False, True]]
    net = perturbed(tiny("vdm_video64"))
    x, noise, _ = inputs(net.config, 2)
    from_video = frame_changes(net, x, noise, 0, temporal_mask=mask)
    from_image = frame_changes(net, x, noise, 3, temporal_mask=mask)
    assert from_video[1] > 1e-4 and max(from_video[2:]) < 1e-6
    assert from_image[3] > 1e-2 and max(from_image[:3]) < 1e-6
    # a per-sample mask: sample 0 joint, sample 1 all independent
    both = torch.stack([mask, torch.eye(4, dtype=torch.bool)])
    with torch.no_grad():
        a = net(x, noise, temporal_mask=both)
        b0 = net(x[:1], noise[:1], temporal_mask=mask)
        b1 = net(x[1:], noise[1:], temporal_mask=torch.eye(4, dtype=torch.bool))
    torch.testing.assert_close(a, torch.cat([b0, b1]), rtol=1e-4, atol=1e-5 * a.abs().amax().item())


def test_vdm_rejects_bad_masks() -> None:
    net = tiny("vdm_video64")
    x, noise, _ = inputs(net.config, 2)
    with pytest.raises(ValueError, match="bool"):
        net(x, noise, temporal_mask=torch.eye(4))
    with pytest.raises(ValueError, match="shape"):
        net(x, noise, temporal_mask=torch.eye(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="diagonal"):
        net(x, noise, temporal_mask=~torch.eye(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="video_frames"):
        video.joint_training_mask(-1, 2)


@pytest.mark.parametrize("relative_position", [False, True])
def test_vdm_relative_position_breaks_frame_permutation_equivariance(relative_position: bool) -> None:
    """Without position information every layer is per-frame or attention over frames, so permuting the input
    frames permutes the output frames; the relative-position bias makes the order matter."""
    net = perturbed(tiny("vdm_video64", relative_position=relative_position))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, TemporalAttention) and m.relative_bias is not None:
                m.relative_bias.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(3))
    x, noise, _ = inputs(net.config, 2)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        permuted_out = net(x[:, :, perm], noise)
        out_permuted = net(x, noise)[:, :, perm]
    change = relative_change(out_permuted, permuted_out)
    if relative_position:
        assert change > 1e-2
    else:
        assert change < 1e-5


def test_temporal_attention_matches_its_formula() -> None:
    """Per sample b, position p and head h: out_i = x_i + W_o Σ_j softmax_j(q_i·k_j/√d + bias_h(j − i), −∞ where
    masked) v_j, with q, k, v linear maps of the per-frame GroupNorm of x; written out with einsum over frames."""
    torch.manual_seed(0)
    b, frames, channels, heads, side = 2, 5, 64, 2, 3
    d = channels // heads
    block = perturbed(TemporalAttention(channels, num_heads=heads, max_distance=2).double(), scale=0.2)
    with torch.no_grad():
        block.relative_bias.normal_()
    mask = torch.stack([video.joint_training_mask(3, 2), torch.ones(frames, frames, dtype=torch.bool)])
    x = torch.randn(b * frames, channels, side, side, dtype=torch.float64)
    h = F.group_norm(x, 32, block.norm.weight, block.norm.bias, eps=1e-5)
    w_qkv, b_qkv = block.qkv.weight[:, :, 0, 0], block.qkv.bias
    proj = torch.einsum("oc,ncp->nop", w_qkv, h.flatten(2)) + b_qkv[:, None]  # (B·F, 3C, P)
    proj = proj.reshape(b, frames, 3, heads, d, side * side)
    q, k, v = proj[:, :, 0], proj[:, :, 1], proj[:, :, 2]  # (B, F, heads, d, P)
    offsets = (torch.arange(frames)[None, :] - torch.arange(frames)[:, None]).clamp(-2, 2) + 2
    bias = block.relative_bias[:, offsets]  # (heads, F, F)
    logits = torch.einsum("bihdp,bjhdp->bhpij", q, k) / math.sqrt(d) + bias[None, :, None]
    logits = logits.masked_fill(~mask[:, None, None], float("-inf"))
    attended = torch.einsum("bhpij,bjhdp->bihdp", logits.softmax(-1), v).reshape(b * frames, channels, side * side)
    out = torch.einsum("oc,ncp->nop", block.proj.weight[:, :, 0, 0], attended) + block.proj.bias[:, None]
    expected = x + out.reshape(x.shape)
    torch.testing.assert_close(block(x, frames, mask), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(block(x, frames, mask[:1]), block(x, frames, mask[:1].expand(2, -1, -1)),
                               rtol=1e-12, atol=1e-12)


def test_vdm_relative_bias_depends_on_offset_only() -> None:
    """bias[h, i, j] = table[h, clip(j − i) + K]: equal along diagonals, clipped beyond ±K."""
    block = TemporalAttention(32, num_heads=2, max_distance=2)
    with torch.no_grad():
        block.relative_bias.copy_(torch.arange(10.0).reshape(2, 5))
    bias = block.position_bias(6)
    for i in range(6):
        for j in range(6):
            assert bias[1, i, j] == 5 + min(max(j - i, -2), 2) + 2


def test_ramvid_mixes_frames_and_keeps_their_number() -> None:
    """3×3×3 convolutions and attention over all positions mix frames; resampling never touches the frame axis."""
    net = perturbed(tiny("ramvid_bair"))
    x, noise, _ = inputs(net.config, 2, frames=5)
    changes = frame_changes(net, x, noise, 0)
    assert min(changes) > 1e-4
    down = Downsample(8, with_conv=True, dims=3)
    up = Upsample(8, with_conv=True, dims=3)
    v = torch.randn(1, 8, 5, 8, 8)
    assert down(v).shape == (1, 8, 5, 4, 4) and up(v).shape == (1, 8, 5, 16, 16)
    assert isinstance(conv3x3(4, 4, dims=3), nn.Conv3d)
    with pytest.raises(ValueError, match="dims"):
        UNetLayout(image_size=8, in_channels=1, model_channels=32, channel_mult=(1,), num_res_blocks=1,
                   attention_resolutions=(), dropout=0.0, dims=4)


# --------------------------------------------------------------------------- numerics and training


@pytest.mark.parametrize("name", ["vdm_video64", "ramvid_bair"])
def test_zero_initialised_output(name: str) -> None:
    """As ADM, the output convolution starts at zero: an untrained network predicts ε = 0 exactly."""
    net = tiny(name)
    x, noise, _ = inputs(net.config, 2)
    with torch.no_grad():
        assert torch.equal(net(x, noise), torch.zeros_like(x))


def test_mcvd_output_starts_near_zero() -> None:
    """score_sde's initialisation: the output conv at variance scale 1e-10, so outputs ~1e-5 of a perturbed net."""
    net = tiny("mcvd_smmnist")
    x, noise, kwargs = inputs(net.config, 2)
    with torch.no_grad():
        start = net(x, noise, **kwargs).abs().amax()
        after = perturbed(net)(x, noise, **kwargs).abs().amax()
    assert 0 < start < 1e-3 * after


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    overrides = {"cond_emb": True} if name == "mcvd_smmnist" else {}
    net = perturbed(tiny(name, **overrides)).train()
    x, noise, kwargs = inputs(net.config, 3)
    out = net(x, noise, **kwargs)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(3))).sum().backward()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None or not torch.any(p.grad != 0)]
    assert trainable and not missing


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str) -> None:
    a, b, c = tiny(name, seed=11), tiny(name, seed=11), tiny(name, seed=12)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    x, noise, kwargs = inputs(a.config, 2)
    with torch.no_grad():
        assert torch.equal(perturbed(a)(x, noise, **kwargs), perturbed(b)(x, noise, **kwargs))


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_independent_of_the_batch(name: str) -> None:
    """All normalisations are per sample: output i depends on input i alone (eval mode)."""
    net = perturbed(tiny(name))
    x, noise, kwargs = inputs(net.config, 3)
    with torch.no_grad():
        whole = net(x, noise, **kwargs)
        one = torch.cat([net(x[i : i + 1], noise[i : i + 1], **{k: v[i : i + 1] for k, v in kwargs.items()})
                         for i in range(3)])
    torch.testing.assert_close(one, whole, rtol=1e-4, atol=1e-4 * whole.abs().amax().item())


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_runs_and_stays_close(name: str) -> None:
    """bf16 keeps 8 mantissa bits (unit roundoff 2⁻⁹); tiny nets chain a few dozen roundings, so within 10%."""
    net = perturbed(tiny(name))
    x, noise, kwargs = inputs(net.config, 2)
    mask = {"temporal_mask": video.joint_training_mask(2, 2)} if name == "vdm_video64" else {}
    with torch.no_grad():
        exact = net(x, noise, **kwargs, **mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, noise, **kwargs, **mask)
    assert torch.isfinite(low).all()
    assert (low.float() - exact).norm() < 0.1 * exact.norm()


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_rejected(name: str) -> None:
    net = tiny(name)
    x, noise, kwargs = inputs(net.config, 2)
    with pytest.raises(ValueError, match="input channels"):
        net(torch.cat([x, x], dim=1), noise, **kwargs)
    with pytest.raises(ValueError, match="noise must have shape"):
        net(x, noise[:1], **kwargs)
    with pytest.raises(ValueError, match="not class-conditional"):
        net(x, noise, torch.zeros(2, dtype=torch.long), **kwargs)
    with pytest.raises(ValueError, match="multiples of"):
        net(x[..., :6, :6], noise, **{k: v[..., :6, :6] for k, v in kwargs.items()})
    wrong_rank = x[:, :, 0] if x.dim() == 5 else x[:, :, None]
    with pytest.raises(ValueError, match="video batch" if x.dim() == 5 else "image batch"):
        net(wrong_rank, noise, **kwargs)


def test_class_conditional_vdm() -> None:
    net = perturbed(tiny("vdm_video64", num_classes=5))
    x, noise, _ = inputs(net.config, 2)
    y = torch.tensor([0, 3])
    with torch.no_grad():
        a, b = net(x, noise, y), net(x, noise, (y + 1) % 5)
    assert relative_change(a, b) > 1e-3
    with pytest.raises(ValueError, match="pass labels"):
        net(x, noise)
