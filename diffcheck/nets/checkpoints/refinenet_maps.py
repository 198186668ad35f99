"""Key maps of the RefineNets of NCSN (ermongroup/ncsn) and NCSNv2 (ermongroup/ncsnv2).

The official modules: ``begin_conv``; stages ``res1``… of two residual blocks (``normalize1``, ``conv1``,
``normalize2``, ``conv2``, ``shortcut``; a pooling block's conv2 and shortcut are ``ConvMeanPool`` modules
holding ``.conv``); RefineBlocks ``refine1``… from the coarsest stage, each with ``adapt_convs.{i}`` and
``output_convs`` (residual conv units whose layers are named ``{unit}_{stage}_conv`` and, in NCSN,
``{unit}_{stage}_norm``), ``msf.convs``/``msf.norms`` and ``crp.convs``/``crp.norms``; ``normalizer`` and
``end_conv``. NCSN's conditional InstanceNorm++ holds one ``embed`` table (levels × 3C: γ, α, β); NCSNv2's
InstanceNorm++ holds ``alpha``, ``gamma``, ``beta``. NCSNv2 stores its noise ladder as a buffer ``sigmas``.
"""

from __future__ import annotations

from torch import nn

from ..refinenet import RCU, RefineNet
from .keymap import KeyMap, Rule, renamed

__all__ = ["refinenet_keymap", "REFINENET_BUFFERS"]

REFINENET_BUFFERS = ("sigmas",)


def _rcu_names(rcu: RCU) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for j in range(len(rcu.convs)):
        unit, stage = divmod(j, 2)
        names[f"convs.{j}"] = f"{unit + 1}_{stage + 1}_conv"
        names[f"norms.{j}"] = f"{unit + 1}_{stage + 1}_norm"
    return names


def _with_embed(names: dict[str, str | None]) -> dict[str, str | None]:
    """NCSN's conditional norms keep their table in a child ``embed``: name it beside each module."""
    return {**names, **{f"{o}.embed": f"{t}.embed" for o, t in names.items() if o and t}}


def refinenet_keymap(net: nn.Module) -> KeyMap:
    """Keys of ermongroup's CondRefineNetDilated (NCSN) or NCSNv2/NCSNv2Deeper for our NCSN/NCSNv2 (``net.net``)."""
    trunk: RefineNet = net.net  # type: ignore[assignment]
    keys = list(net.state_dict())
    rules: list[Rule] = []
    for part in ("begin_conv", "end_conv", "normalizer"):
        rules += renamed(f"net.{part}", part, {"": "", "embed": "embed"}, keys)
    for s, stage in enumerate(trunk.stages):
        for j, block in enumerate(stage):
            names: dict[str, str | None] = {"norm1": "normalize1", "conv1": "conv1", "norm2": "normalize2",
                                            "conv2": "conv2.conv" if block.pool else "conv2",
                                            "shortcut": "shortcut.conv" if block.pool else "shortcut"}
            rules += renamed(f"net.stages.{s}.{j}", f"res{s + 1}.{j}", _with_embed(names), keys)
    for k, refine in enumerate(trunk.refines):
        ours, theirs = f"net.refines.{k}", f"refine{k + 1}"
        for i, adapt in enumerate(refine.adapt):
            rules += renamed(f"{ours}.adapt.{i}", f"{theirs}.adapt_convs.{i}", _with_embed(_rcu_names(adapt)), keys)
        rules += renamed(f"{ours}.output", f"{theirs}.output_convs", _with_embed(_rcu_names(refine.output)), keys)
        lists = {f"{kind}.{i}": f"{kind}.{i}" for kind in ("convs", "norms") for i in range(8)}
        rules += renamed(f"{ours}.crp", f"{theirs}.crp", _with_embed(lists), keys)
        if refine.msf is not None:
            rules += renamed(f"{ours}.msf", f"{theirs}.msf", _with_embed(lists), keys)
    return KeyMap(tuple(rules), extras=REFINENET_BUFFERS)
