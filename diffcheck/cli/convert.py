"""``diffcheck convert``: a published checkpoint read without running pickled code, written as a safetensors copy."""

from __future__ import annotations

import json
from typing import Any, Sequence

from ._common import UsageError

__all__ = ["register", "run", "overrides", "add_checkpoint_options"]


def overrides(items: Sequence[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs as configuration overrides; VALUE is JSON (lists become tuples) or else a string."""
    out: dict[str, Any] = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not field.strip():
            raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[field.strip()] = tuple(value) if isinstance(value, list) else value
    return out


def add_checkpoint_options(parser, *, prefix: str = "") -> None:
    """The options naming how a checkpoint is read: --net, --raw, --set."""
    parser.add_argument("--net", metavar="NAME",
                        help=f"{prefix}published checkpoint (e.g. ddpm_cifar10, adm_64), named configuration or family "
                             "(ddpm, adm, adm_classifier, ncsnpp, ncsn, ncsnv2); default: detected from the file")
    parser.add_argument("--raw", action="store_true",
                        help=f"{prefix}the raw weights rather than their moving average where the file holds both")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"{prefix}replace a configuration field (JSON value), e.g. --set image_size=256")


def register(sub) -> None:
    """Add the ``convert`` command."""
    p = sub.add_parser("convert", help="read a published checkpoint safely and write it as safetensors + config.json",
                       description="Read a checkpoint (diffusers folder, .safetensors, or a .pt/.pth/.bin/.ckpt pickle "
                                   "loaded with weights_only=True, so that no code in it runs), map its keys onto "
                                   "diffcheck's network, and write OUT/model.safetensors and OUT/config.json.")
    p.add_argument("path", help="checkpoint file or folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write model.safetensors and config.json into")
    add_checkpoint_options(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    """Convert and say what was written."""
    from ..nets.checkpoints import convert

    loaded = convert(args.net, args.path, args.out, ema=not args.raw, **overrides(args.set))
    print(f"{loaded.describe()}\nwritten: {args.out}/model.safetensors, {args.out}/config.json")
    return 0
