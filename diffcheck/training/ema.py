"""Exponential moving average of the weights (Song & Ermon 2020, technique 5; Ho et al. 2020, App. B)."""

from __future__ import annotations

import torch
from torch import nn

from toy.validate import check_float

__all__ = ["EMA"]


class EMA:
    """θ_ema ← r θ_ema + (1 − r) θ after every step, for every floating parameter; buffers are copied.

    ``state_dict()`` has the keys of the model's own state dict, so EMA weights load into a fresh network.
    """

    def __init__(self, model: nn.Module, rate: float = 0.999) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.rate = check_float(rate, "rate", low=0.0, high=1.0, high_open=True)
        self._param_names = {name for name, p in model.named_parameters() if p.is_floating_point()}
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step from the model's current weights."""
        targets, values = [], []
        for name, value in model.state_dict().items():
            if name in self._param_names:
                targets.append(self.shadow[name])
                values.append(value.detach())
            else:
                self.shadow[name].copy_(value)
        if targets:
            torch._foreach_lerp_(targets, values, 1.0 - self.rate)  # one fused update instead of one op per tensor

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights under the model's state-dict keys."""
        return dict(self.shadow)

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore averaged weights saved by ``state_dict``."""
        missing, extra = set(self.shadow) - set(state), set(state) - set(self.shadow)
        if missing or extra:
            raise ValueError(f"EMA state does not match the model: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for name, value in state.items():
            if value.shape != self.shadow[name].shape:
                raise ValueError(f"EMA state {name!r} has shape {tuple(value.shape)}, expected {tuple(self.shadow[name].shape)}")
            self.shadow[name].copy_(value)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Load the averaged weights into ``model`` (a network of the same architecture) and return it."""
        model.load_state_dict(self.shadow)
        return model
