"""Load ``k_diffusion.sampling`` without the heavy imports of the package's ``__init__``.

``import k_diffusion`` pulls in CLIP, clean-fid, torchvision, wandb and more, none of which
the samplers use: ``sampling.py`` needs torch, scipy, torchdiffeq, torchsde, tqdm and one
helper of ``k_diffusion.utils`` (``append_dims``, whose module imports torchvision and PIL).
If ``k_diffusion.sampling`` is already imported it is used; otherwise ``sampling.py`` is
loaded from the installed files under a private package name, beside a ``utils`` module
that holds that one helper.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

__all__ = ["INSTALL_HINT", "sampling", "available"]

INSTALL_HINT = "pip install 'diffcheck[kdiffusion]' && pip install --no-deps k-diffusion"
_PRIVATE = "diffcheck_kdiffusion_sampling"


def _append_dims(x, target_dims: int):
    """x with trailing singleton dimensions up to ``target_dims`` (the helper k-diffusion's samplers use)."""
    extra = target_dims - x.ndim
    if extra < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * extra]


def _light_utils() -> types.ModuleType:
    mod = types.ModuleType(f"{_PRIVATE}.utils", "append_dims only: the one helper of k_diffusion.utils the samplers call")
    mod.append_dims = _append_dims
    return mod


def available() -> bool:
    """Whether k-diffusion's files are installed (its package is found; nothing is imported)."""
    return importlib.util.find_spec("k_diffusion") is not None


def sampling() -> types.ModuleType:
    """``k_diffusion.sampling``, loaded without the package's optional heavy imports; a clear ImportError if it is missing."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    if f"{_PRIVATE}.sampling" in sys.modules:
        return sys.modules[f"{_PRIVATE}.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"this needs k-diffusion, which is not installed: {INSTALL_HINT}")
    for need in ("torchsde", "torchdiffeq", "scipy"):
        if importlib.util.find_spec(need) is None:
            raise ImportError(f"k_diffusion.sampling needs {need}, which is not installed: {INSTALL_HINT}")
    folder = list(spec.submodule_search_locations)[0]
    package = types.ModuleType(_PRIVATE, "k-diffusion's sampling module, loaded without the package's __init__")
    package.__path__ = []  # a package with nothing to search: only the modules registered here exist
    utils = _light_utils()
    package.utils = utils
    sys.modules[_PRIVATE] = package
    sys.modules[f"{_PRIVATE}.utils"] = utils
    path = os.path.join(folder, "sampling.py")
    mod_spec = importlib.util.spec_from_file_location(f"{_PRIVATE}.sampling", path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[f"{_PRIVATE}.sampling"] = module
    try:
        mod_spec.loader.exec_module(module)
    except Exception:
        del sys.modules[f"{_PRIVATE}.sampling"]
        raise
    package.sampling = module
    return module
