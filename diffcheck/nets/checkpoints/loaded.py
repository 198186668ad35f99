"""A loaded network with everything needed to use it: configuration, training process, how to wrap it; saving it.

A diffcheck conversion is a folder holding ``model.safetensors`` (our state dict) and ``config.json``
(``{"format": "diffcheck", "family", "name", "config", "process", "wrap", "sigmas", "source"}``); it loads back
without any key map.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ...io import atomic_path, write_json
from ..adm import ADMClassifierConfig, ADMConfig
from ..ddpm import DDPMConfig
from ..ncsn import NCSNConfig
from ..ncsnpp import NCSNppConfig
from ..ncsnv2 import NCSNv2Config
from .keymap import CheckpointError
from .presets import NCSN_PROCESS, process_of

__all__ = ["Loaded", "FAMILIES", "family_of", "config_from_json", "save", "FORMAT_VERSION"]

FAMILIES: dict[str, type] = {"ddpm": DDPMConfig, "adm": ADMConfig, "adm_classifier": ADMClassifierConfig,
                             "ncsnpp": NCSNppConfig, "ncsn": NCSNConfig, "ncsnv2": NCSNv2Config}
"""The network families a checkpoint can load into, by the name ``load`` accepts."""

FORMAT_VERSION = 1


def family_of(config: Any) -> str:
    """The family name of a configuration."""
    for name, cls in FAMILIES.items():
        if type(config) is cls:
            return name
    raise TypeError(f"{type(config).__name__} is not a configuration of a loadable family ({', '.join(FAMILIES)})")


def _default_process(config: Any, sigmas: Tensor | None) -> dict[str, Any]:
    """The process a checkpoint without a preset most likely used, by its noise input."""
    kind = config.noise_input
    if kind == "timestep_1000":
        return {"kind": "ddpm-linear", "T": 1000}
    if kind == "time_999":
        return {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0}
    if kind == "sigma_index":
        return dict(NCSN_PROCESS)
    if sigmas is not None:
        return {"kind": "ve", "sigma_min": float(sigmas.min()), "sigma_max": float(sigmas.max())}
    return {"kind": "ve", "sigma_min": 0.01, "sigma_max": 50.0}


@dataclasses.dataclass(frozen=True, eq=False)
class Loaded:
    """A network read from a checkpoint: ``net`` (eval mode), its ``config``, and where and how it was read.

    ``weights`` says which set was taken: "ema" (the exponential moving average stored beside the raw weights),
    "raw", or "single" (the file holds one set). ``sigmas`` is the noise ladder the file stores, if any.
    ``process_spec`` the forward process of training (from the published flags, or a default by noise input).
    """

    net: nn.Module
    config: Any
    name: str
    family: str
    layout: str
    path: Path
    weights: str
    sigmas: Tensor | None = None
    process_spec: dict[str, Any] | None = None
    wrap: dict[str, Any] = dataclasses.field(default_factory=dict)

    def process(self):
        """The forward process the network was trained on."""
        return process_of(self.process_spec or _default_process(self.config, self.sigmas))

    def model(self, process: Any = None, **options: Any):
        """The network as a model of ``process`` (default: its own) for every sampler; a classifier as (x, t) → logits."""
        from ..wrap import as_classifier, wrap_net

        process = self.process() if process is None else process
        kw = {**self.wrap, **options}
        if self.config.prediction == "logits":
            return as_classifier(self.net, process, config=self.config, **kw)
        return wrap_net(self.net, process, config=self.config, **kw)

    def describe(self) -> str:
        """One line: what was loaded from where."""
        n = sum(p.numel() for p in self.net.parameters())
        return (f"{self.name} ({self.family}, {n:,} parameters) from {self.path} [{self.layout} layout, "
                f"{self.weights} weights]")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def config_from_json(family: str, fields: dict[str, Any]) -> Any:
    """A configuration of ``family`` from the JSON of a diffcheck conversion (lists back to tuples)."""
    if family not in FAMILIES:
        raise CheckpointError(f"unknown family {family!r} in a diffcheck config.json; known: {', '.join(FAMILIES)}")
    cls = FAMILIES[family]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise CheckpointError(f"diffcheck config.json has field(s) {unknown} that {cls.__name__} does not know")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def save(loaded: Loaded, out: str | Path) -> Path:
    """Write ``loaded`` as a diffcheck conversion folder (``model.safetensors`` + ``config.json``), each file atomically."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"--out {out} exists and is not a folder")
    state = {k: v.detach().to("cpu").contiguous() for k, v in loaded.net.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "diffcheck", "family": loaded.family})
    write_json(out / "config.json", {
        "format": "diffcheck", "version": FORMAT_VERSION, "family": loaded.family, "name": loaded.name,
        "config": {f.name: _jsonable(getattr(loaded.config, f.name)) for f in dataclasses.fields(loaded.config)},
        "process": loaded.process_spec or _default_process(loaded.config, loaded.sigmas), "wrap": loaded.wrap,
        "sigmas": None if loaded.sigmas is None else [float(s) for s in loaded.sigmas],
        "source": {"path": str(loaded.path), "layout": loaded.layout, "weights": loaded.weights}})
    return out


def materialised(net: nn.Module) -> bool:
    """Whether no parameter or buffer of ``net`` is left on the meta device."""
    return not any(t.is_meta for t in [*net.parameters(), *net.buffers()])
