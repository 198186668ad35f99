"""The state-dict keys and shapes of the official networks, enumerated from the authors' constructors.

Each function follows one official ``__init__`` line by line — module registration order, attribute names,
which layers have biases, which convolutions exist only when widths change — and lists ``key: shape`` as
``torch.nn.Module.state_dict()`` would, buffers included. Nothing here uses diffcheck's networks: these lists
are the facts the key maps are checked against, and their parameter totals are checked against the counts of
the official builds (MODELS.md).

Sources: ermongroup/ddim `models/diffusion.py` (`Model`); openai/guided-diffusion `guided_diffusion/unet.py`
(`UNetModel`, `EncoderUNetModel`, `ResBlock`, `AttentionBlock`, `AttentionPool2d`; improved-diffusion's are the
same without up/down residual blocks); yang-song/score_sde_pytorch `models/ncsnpp.py`, `layerspp.py`, `layers.py`
(`NCSNpp`, `ResnetBlockBigGANpp`, `AttnBlockpp`, `NIN`, `Combine`, `GaussianFourierProjection`);
ermongroup/ncsn `models/cond_refinenet_dilated.py` (`CondRefineNetDilated`); ermongroup/ncsnv2
`models/ncsnv2.py`, `layers.py`, `normalization.py` (`NCSNv2`, `NCSNv2Deeper`, `InstanceNorm2dPlus`).
"""

from __future__ import annotations

from typing import Sequence

Layout = dict[str, tuple[int, ...]]


class _Keys:
    def __init__(self) -> None:
        self.keys: Layout = {}

    def add(self, key: str, *shape: int) -> None:
        assert key not in self.keys, key
        self.keys[key] = tuple(shape)

    def conv(self, key: str, out: int, inp: int, k: int, bias: bool = True) -> None:
        self.add(f"{key}.weight", out, inp, k, k)
        if bias:
            self.add(f"{key}.bias", out)

    def conv1d(self, key: str, out: int, inp: int) -> None:
        self.add(f"{key}.weight", out, inp, 1)
        self.add(f"{key}.bias", out)

    def linear(self, key: str, out: int, inp: int) -> None:
        self.add(f"{key}.weight", out, inp)
        self.add(f"{key}.bias", out)

    def norm(self, key: str, c: int) -> None:
        self.add(f"{key}.weight", c)
        self.add(f"{key}.bias", c)


# --------------------------------------------------------------------------- ddim `Model` (DDPM)


def ddim_ddpm(ch: int, ch_mult: Sequence[int], num_res_blocks: int, attn_resolutions: Sequence[int], resolution: int,
              in_channels: int = 3, out_ch: int = 3, resamp_with_conv: bool = True) -> Layout:
    k = _Keys()
    temb = 4 * ch
    k.linear("temb.dense.0", temb, ch)
    k.linear("temb.dense.1", temb, temb)
    k.conv("conv_in", ch, in_channels, 3)

    def resnet(p: str, cin: int, cout: int) -> None:
        k.norm(f"{p}.norm1", cin)
        k.conv(f"{p}.conv1", cout, cin, 3)
        k.linear(f"{p}.temb_proj", cout, temb)
        k.norm(f"{p}.norm2", cout)
        k.conv(f"{p}.conv2", cout, cout, 3)
        if cin != cout:
            k.conv(f"{p}.nin_shortcut", cout, cin, 1)

    def attn(p: str, c: int) -> None:
        k.norm(f"{p}.norm", c)
        for name in ("q", "k", "v", "proj_out"):
            k.conv(f"{p}.{name}", c, c, 1)

    levels = len(ch_mult)
    in_mult = (1, *ch_mult)
    res = resolution
    block_in = ch
    for lv in range(levels):
        block_in, block_out = ch * in_mult[lv], ch * ch_mult[lv]
        for b in range(num_res_blocks):  # down.block is registered before down.attn
            resnet(f"down.{lv}.block.{b}", block_in, block_out)
            block_in = block_out
        if res in attn_resolutions:
            for b in range(num_res_blocks):
                attn(f"down.{lv}.attn.{b}", block_in)
        if lv != levels - 1:
            if resamp_with_conv:
                k.conv(f"down.{lv}.downsample.conv", block_in, block_in, 3)
            res //= 2
    resnet("mid.block_1", block_in, block_in)
    attn("mid.attn_1", block_in)
    resnet("mid.block_2", block_in, block_in)
    ups: dict[int, Layout] = {}
    for lv in reversed(range(levels)):
        sub = _Keys()
        k_saved, k.keys = k.keys, sub.keys
        block_out, skip_in = ch * ch_mult[lv], ch * ch_mult[lv]
        for b in range(num_res_blocks + 1):
            if b == num_res_blocks:
                skip_in = ch * in_mult[lv]
            resnet(f"up.{lv}.block.{b}", block_in + skip_in, block_out)
            block_in = block_out
        if res in attn_resolutions:
            for b in range(num_res_blocks + 1):
                attn(f"up.{lv}.attn.{b}", block_in)
        if lv != 0:
            if resamp_with_conv:
                k.conv(f"up.{lv}.upsample.conv", block_in, block_in, 3)
            res *= 2
        ups[lv], k.keys = k.keys, k_saved
    for lv in range(levels):  # self.up.insert(0, up): the list, and so the state dict, runs from level 0
        k.keys.update(ups[lv])
    k.norm("norm_out", block_in)
    k.conv("conv_out", out_ch, block_in, 3)
    return k.keys


# --------------------------------------------------------------------------- openai UNetModel / EncoderUNetModel


def _openai_resblock(k: _Keys, p: str, cin: int, cout: int, emb: int, scale_shift: bool) -> None:
    k.norm(f"{p}.in_layers.0", cin)
    k.conv(f"{p}.in_layers.2", cout, cin, 3)
    k.linear(f"{p}.emb_layers.1", 2 * cout if scale_shift else cout, emb)
    k.norm(f"{p}.out_layers.0", cout)
    k.conv(f"{p}.out_layers.3", cout, cout, 3)
    if cout != cin:
        k.conv(f"{p}.skip_connection", cout, cin, 1)


def _openai_attention(k: _Keys, p: str, c: int) -> None:
    k.norm(f"{p}.norm", c)
    k.conv1d(f"{p}.qkv", 3 * c, c)
    k.conv1d(f"{p}.proj_out", c, c)


def _openai_encoder(k: _Keys, in_channels: int, model_channels: int, num_res_blocks: int, attention_ds: Sequence[int],
                    channel_mult: Sequence[float], scale_shift: bool, resblock_updown: bool,
                    conv_resample: bool) -> tuple[int, list[int], int]:
    emb = 4 * model_channels
    ch = int(channel_mult[0] * model_channels)
    k.conv("input_blocks.0.0", ch, in_channels, 3)
    chans, ds, n = [ch], 1, 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            out = int(mult * model_channels)
            _openai_resblock(k, f"input_blocks.{n}.0", ch, out, emb, scale_shift)
            ch = out
            if ds in attention_ds:
                _openai_attention(k, f"input_blocks.{n}.1", ch)
            chans.append(ch)
            n += 1
        if level != len(channel_mult) - 1:
            if resblock_updown:
                _openai_resblock(k, f"input_blocks.{n}.0", ch, ch, emb, scale_shift)
            elif conv_resample:
                k.conv(f"input_blocks.{n}.0.op", ch, ch, 3)
            chans.append(ch)
            ds *= 2
            n += 1
    _openai_resblock(k, "middle_block.0", ch, ch, emb, scale_shift)
    _openai_attention(k, "middle_block.1", ch)
    _openai_resblock(k, "middle_block.2", ch, ch, emb, scale_shift)
    return ch, chans, ds


def openai_unet(image_size: int, model_channels: int, num_res_blocks: int, attention_resolutions: Sequence[int],
                channel_mult: Sequence[float], *, in_channels: int = 3, learn_sigma: bool = False,
                num_classes: int | None = None, use_scale_shift_norm: bool = True, resblock_updown: bool = False,
                conv_resample: bool = True) -> Layout:
    """guided-diffusion `create_model` → `UNetModel` (attention resolutions given as in the flags, in pixels)."""
    k = _Keys()
    emb = 4 * model_channels
    attention_ds = [image_size // r for r in attention_resolutions]
    k.linear("time_embed.0", emb, model_channels)
    k.linear("time_embed.2", emb, emb)
    if num_classes is not None:
        k.add("label_emb.weight", num_classes, emb)
    ch, chans, ds = _openai_encoder(k, in_channels, model_channels, num_res_blocks, attention_ds, channel_mult,
                                    use_scale_shift_norm, resblock_updown, conv_resample)
    n = 0
    for level, mult in list(enumerate(channel_mult))[::-1]:
        for i in range(num_res_blocks + 1):
            out = int(model_channels * mult)
            _openai_resblock(k, f"output_blocks.{n}.0", ch + chans.pop(), out, emb, use_scale_shift_norm)
            ch = out
            sub = 1
            if ds in attention_ds:
                _openai_attention(k, f"output_blocks.{n}.1", ch)
                sub = 2
            if level and i == num_res_blocks:
                if resblock_updown:
                    _openai_resblock(k, f"output_blocks.{n}.{sub}", ch, ch, emb, use_scale_shift_norm)
                elif conv_resample:
                    k.conv(f"output_blocks.{n}.{sub}.conv", ch, ch, 3)
                ds //= 2
            n += 1
    k.norm("out.0", ch)
    k.conv("out.2", in_channels * (2 if learn_sigma else 1), int(channel_mult[0] * model_channels), 3)
    return k.keys


def openai_classifier(image_size: int, width: int, depth: int, attention_resolutions: Sequence[int],
                      channel_mult: Sequence[float], *, num_classes: int = 1000, pool: str = "attention",
                      use_scale_shift_norm: bool = True, resblock_updown: bool = True) -> Layout:
    """guided-diffusion `create_classifier` → `EncoderUNetModel` (num_head_channels 64)."""
    k = _Keys()
    emb = 4 * width
    k.linear("time_embed.0", emb, width)
    k.linear("time_embed.2", emb, emb)
    ch, _, ds = _openai_encoder(k, 3, width, depth, [image_size // r for r in attention_resolutions], channel_mult,
                                use_scale_shift_norm, resblock_updown, True)
    k.norm("out.0", ch)
    if pool == "attention":
        spatial = image_size // ds
        k.add("out.2.positional_embedding", ch, spatial**2 + 1)
        k.conv1d("out.2.qkv_proj", 3 * ch, ch)
        k.conv1d("out.2.c_proj", num_classes, ch)
    else:
        k.conv("out.3", num_classes, ch, 1)
    return k.keys


# --------------------------------------------------------------------------- score_sde NCSNpp


def score_sde_ncsnpp(*, image_size: int, nf: int, ch_mult: Sequence[int], num_res_blocks: int,
                     attn_resolutions: Sequence[int], fir: bool, progressive: str, progressive_input: str,
                     embedding_type: str, num_scales: int = 1000, channels: int = 3) -> Layout:
    """`NCSNpp.__init__` with resblock_type 'biggan', conditional, combine 'sum': ``sigmas`` then ``all_modules``."""
    k = _Keys()
    k.add("sigmas", num_scales)
    n = 0

    def key(local: str) -> str:
        return f"all_modules.{n}.{local}"

    def done() -> None:
        nonlocal n
        n += 1

    def resnet(cin: int, cout: int, resample: bool = False) -> None:
        k.norm(key("GroupNorm_0"), cin)
        k.conv(key("Conv_0"), cout, cin, 3)
        k.linear(key("Dense_0"), cout, 4 * nf)
        k.norm(key("GroupNorm_1"), cout)
        k.conv(key("Conv_1"), cout, cout, 3)
        if cin != cout or resample:
            k.conv(key("Conv_2"), cout, cin, 1)
        done()

    def attn(c: int) -> None:
        k.norm(key("GroupNorm_0"), c)
        for i in range(4):
            k.add(key(f"NIN_{i}.W"), c, c)
            k.add(key(f"NIN_{i}.b"), c)
        done()

    if embedding_type == "fourier":
        k.add(key("W"), nf)
        done()
    embed = 2 * nf if embedding_type == "fourier" else nf
    k.linear(f"all_modules.{n}", 4 * nf, embed)
    done()
    k.linear(f"all_modules.{n}", 4 * nf, 4 * nf)
    done()
    k.conv(f"all_modules.{n}", nf, channels, 3)
    done()
    levels = len(ch_mult)
    resolutions = [image_size // 2**i for i in range(levels)]
    hs_c, in_ch, pyramid_ch = [nf], nf, channels
    for lv in range(levels):
        for _ in range(num_res_blocks):
            out = nf * ch_mult[lv]
            resnet(in_ch, out)
            in_ch = out
            if resolutions[lv] in attn_resolutions:
                attn(in_ch)
            hs_c.append(in_ch)
        if lv != levels - 1:
            resnet(in_ch, in_ch, resample=True)
            if progressive_input == "input_skip":
                k.conv(key("Conv_0"), in_ch, pyramid_ch, 1)
                done()
            elif progressive_input == "residual":
                k.conv(key("Conv2d_0" if fir else "Conv_0"), in_ch, pyramid_ch, 3)
                done()
                pyramid_ch = in_ch
            hs_c.append(in_ch)
    in_ch = hs_c[-1]
    resnet(in_ch, in_ch)
    attn(in_ch)
    resnet(in_ch, in_ch)
    for lv in reversed(range(levels)):
        for _ in range(num_res_blocks + 1):
            out = nf * ch_mult[lv]
            resnet(in_ch + hs_c.pop(), out)
            in_ch = out
        if resolutions[lv] in attn_resolutions:
            attn(in_ch)
        if progressive == "output_skip":
            k.norm(f"all_modules.{n}", in_ch)
            done()
            k.conv(f"all_modules.{n}", channels, in_ch, 3)
            done()
        if lv != 0:
            resnet(in_ch, in_ch, resample=True)
    if progressive != "output_skip":
        k.norm(f"all_modules.{n}", in_ch)
        done()
        k.conv(f"all_modules.{n}", channels, in_ch, 3)
        done()
    return k.keys


# --------------------------------------------------------------------------- NCSN and NCSNv2 RefineNets


def _refinenet(*, ngf: int, channels: int, conditional: bool, deeper: bool, num_classes: int) -> Layout:
    k = _Keys()

    def norm(p: str, c: int) -> None:
        if conditional:  # ConditionalInstanceNorm2dPlus: one embedding of gamma, alpha, beta per noise level
            k.add(f"{p}.embed.weight", num_classes, 3 * c)
        else:  # InstanceNorm2dPlus(bias=True): alpha, gamma, beta registered in this order
            for name in ("alpha", "gamma", "beta"):
                k.add(f"{p}.{name}", c)

    def block(p: str, cin: int, cout: int, resample: bool, dilation: int | None) -> None:
        # registration: conv1, normalize2, conv2, [shortcut], normalize1
        if resample and dilation is None:
            k.conv(f"{p}.conv1", cin, cin, 3)
            norm(f"{p}.normalize2", cin)
            k.conv(f"{p}.conv2.conv", cout, cin, 3)
            k.conv(f"{p}.shortcut.conv", cout, cin, 1)
        elif resample:
            k.conv(f"{p}.conv1", cin, cin, 3)
            norm(f"{p}.normalize2", cin)
            k.conv(f"{p}.conv2", cout, cin, 3)
            k.conv(f"{p}.shortcut", cout, cin, 3)
        else:
            k.conv(f"{p}.conv1", cout, cin, 3)
            norm(f"{p}.normalize2", cout)
            k.conv(f"{p}.conv2", cout, cout, 3)
            if cin != cout:
                k.conv(f"{p}.shortcut", cout, cin, 1)
        norm(f"{p}.normalize1", cin)

    def rcu(p: str, c: int, blocks: int) -> None:
        for i in range(blocks):
            for j in range(2):
                if conditional:
                    norm(f"{p}.{i + 1}_{j + 1}_norm", c)
                k.conv(f"{p}.{i + 1}_{j + 1}_conv", c, c, 3, bias=False)

    def refine(p: str, planes: Sequence[int], features: int, start: bool = False, end: bool = False) -> None:
        for i, c in enumerate(planes):
            rcu(f"{p}.adapt_convs.{i}", c, 2)
        rcu(f"{p}.output_convs", features, 3 if end else 1)
        if not start:
            for i, c in enumerate(planes):
                k.conv(f"{p}.msf.convs.{i}", features, c, 3)
            if conditional:
                for i, c in enumerate(planes):
                    norm(f"{p}.msf.norms.{i}", c)
        for i in range(2):
            k.conv(f"{p}.crp.convs.{i}", features, features, 3, bias=False)
        if conditional:
            for i in range(2):
                norm(f"{p}.crp.norms.{i}", features)

    g = ngf
    k.conv("begin_conv", g, channels, 3)
    norm("normalizer", g)
    k.conv("end_conv", channels, g, 3)
    if deeper:  # NCSNv2Deeper
        stages = [(g, g, False, None), (g, 2 * g, True, None), (2 * g, 2 * g, True, None), (2 * g, 4 * g, True, 2),
                  (4 * g, 4 * g, True, 4)]
        refines = [([4 * g], 4 * g), ([4 * g, 4 * g], 2 * g), ([2 * g, 2 * g], 2 * g), ([2 * g, 2 * g], g), ([g, g], g)]
    else:  # CondRefineNetDilated and NCSNv2
        stages = [(g, g, False, None), (g, 2 * g, True, None), (2 * g, 2 * g, True, 2), (2 * g, 2 * g, True, 4)]
        refines = [([2 * g], 2 * g), ([2 * g, 2 * g], 2 * g), ([2 * g, 2 * g], g), ([g, g], g)]
    for s, (cin, cout, resample, dilation) in enumerate(stages):
        block(f"res{s + 1}.0", cin, cout, resample, dilation)
        block(f"res{s + 1}.1", cout, cout, False, dilation)
    for r, (planes, features) in enumerate(refines):
        refine(f"refine{r + 1}", planes, features, start=r == 0, end=r == len(refines) - 1)
    return k.keys


def ncsn(ngf: int, channels: int = 3, num_classes: int = 10) -> Layout:
    """ermongroup/ncsn `CondRefineNetDilated` (conditional InstanceNorm++ everywhere, no buffers)."""
    return _refinenet(ngf=ngf, channels=channels, conditional=True, deeper=False, num_classes=num_classes)


def ncsnv2(ngf: int, channels: int = 3, num_classes: int = 232, deeper: bool = False) -> Layout:
    """ermongroup/ncsnv2 `NCSNv2` or `NCSNv2Deeper`: the ``sigmas`` buffer (num_classes levels) first."""
    return {"sigmas": (num_classes,), **_refinenet(ngf=ngf, channels=channels, conditional=False, deeper=deeper,
                                                    num_classes=num_classes)}


def parameters(layout: Layout, buffers: Sequence[str] = ("sigmas",)) -> int:
    """The number of parameters a layout holds (buffers excluded)."""
    total = 0
    for key, shape in layout.items():
        if key in buffers:
            continue
        count = 1
        for d in shape:
            count *= d
        total += count
    return total
