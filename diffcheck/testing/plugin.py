"""The diffcheck pytest plugin (registered through the ``pytest11`` entry point).

It adds fixtures for verifying your own samplers against exact answers:

- ``dc_seed`` (int, from ``--diffcheck-seed``, default 0) and ``dc_gen``, a torch.Generator seeded with it;
- ``dc_mixture(name, **kw)``: a preset of ``toy`` (two_modes, ring, anisotropic, ...);
- ``dc_process(name)``: "VP", "subVP", "VE", "VE-official", "cosine", "linear-VE", "ddpm-linear", "ddpm-cosine";
- ``dc_exact_model(mixture_or_name, process_or_name, prediction="eps")``: the exact model;
- ``dc_kdiffusion(mixture_or_name, steps=64, n=500, ...)``: a k-diffusion-style test case (exact
  denoiser D(x, sigma), Karras ladder, starts from the exact law at sigma_max, the data law).

It registers the markers ``slow`` and ``gpu`` (skipped without CUDA when collected with the
plugin's ``--diffcheck-skip-gpu``) and, with ``--diffcheck-hypothesis-profile NAME``, loads a
hypothesis profile (``ci``: derandomized, no deadline; ``dev``; ``thorough``). Importing it costs
nothing: torch and diffcheck load only when a fixture is used.
"""

from __future__ import annotations

import pytest

_PROCESSES = ("VP", "subVP", "VE", "VE-official", "cosine", "linear-VE", "ddpm-linear", "ddpm-cosine")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("diffcheck")
    group.addoption("--diffcheck-seed", type=int, default=0, help="seed of the dc_gen fixture (default 0)")
    group.addoption("--diffcheck-hypothesis-profile", default=None, help="load this diffcheck hypothesis profile (ci, dev, thorough)")
    group.addoption("--diffcheck-skip-gpu", action="store_true", help="skip tests marked gpu when CUDA is unavailable")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (diffcheck)")
    config.addinivalue_line("markers", "gpu: needs a CUDA device (diffcheck)")
    profile = config.getoption("--diffcheck-hypothesis-profile")
    if profile:
        from hypothesis import settings

        from .strategies import register_profiles

        register_profiles()
        settings.load_profile(profile)


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if not config.getoption("--diffcheck-skip-gpu"):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def dc_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this run's generators (``--diffcheck-seed``)."""
    return int(request.config.getoption("--diffcheck-seed"))


@pytest.fixture
def dc_gen(dc_seed: int):
    """A CPU torch.Generator seeded with ``dc_seed``, fresh for each test."""
    import torch

    return torch.Generator().manual_seed(dc_seed)


@pytest.fixture
def dc_mixture():
    """Factory: ``dc_mixture("two_modes", **kw)`` builds a toy preset."""
    import toy

    return toy.preset


def _process(name: str):
    from diffcheck import process as P

    builders = {
        "VP": P.VP, "subVP": P.SubVP, "VE": P.VE, "VE-official": lambda: P.VE(kernel="official"), "cosine": P.CosineVP,
        "linear-VE": P.LinearVE, "ddpm-linear": P.DiscreteVP.linear, "ddpm-cosine": P.DiscreteVP.cosine,
    }
    if name not in builders:
        raise ValueError(f"unknown process {name!r}; choose one of {', '.join(_PROCESSES)}")
    return builders[name]()


@pytest.fixture
def dc_process():
    """Factory: ``dc_process("VP")`` builds a forward process by name."""
    return _process


@pytest.fixture
def dc_exact_model():
    """Factory: ``dc_exact_model("two_modes", "VP", prediction="eps")`` (names or objects) builds the exact model."""
    import toy
    from diffcheck.exact import ExactModel

    def build(mixture, process, prediction: str = "eps"):
        m = toy.preset(mixture) if isinstance(mixture, str) else mixture
        p = _process(process) if isinstance(process, str) else process
        return ExactModel(m, p, prediction)

    return build


@pytest.fixture
def dc_kdiffusion(dc_gen):
    """Factory: ``dc_kdiffusion("anisotropic", steps=64)`` -> a case with ``denoiser``, ``sigmas``, ``x`` and ``law``."""
    from diffcheck.adapters.kdiffusion import case

    def build(mixture="anisotropic", **kw):
        kw.setdefault("generator", dc_gen)
        return case(mixture, **kw)

    return build
