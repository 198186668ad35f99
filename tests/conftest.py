"""Test-only settings. GPU skipping and the hypothesis profile come from diffcheck's own pytest plugin."""

import os

# Idle OpenMP threads must not spin: with another busy process on a 2-core machine,
# spinning makes small tensor operations orders of magnitude slower. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# -- pytest-xdist workers (pytest -n N): one thread each, since the workers already share the cores -----------
# Set before torch loads (and again below, in case a plugin loaded it first); an explicit OMP_NUM_THREADS wins.
_XDIST_THREADS = os.environ.get("OMP_NUM_THREADS", "1") if os.environ.get("PYTEST_XDIST_WORKER") else None
if _XDIST_THREADS is not None:
    os.environ["OMP_NUM_THREADS"] = _XDIST_THREADS
    os.environ.setdefault("MKL_NUM_THREADS", _XDIST_THREADS)

import pytest  # noqa: E402
import torch  # noqa: E402

if _XDIST_THREADS is not None:
    torch.set_num_threads(int(_XDIST_THREADS))


# With pytest-xdist, tests that share a per-process cache (a trained toy model, a table of exact KLs) run on one
# worker, and so do the tests of a module with module- or session-scoped fixtures, so each cache is filled once per
# run; cached results equal fresh ones, so no result depends on the order or the worker. These groups, then the
# longest single tests, are handed out first, so that none of them starts last.
_SHARED_CACHES = {
    "learned": ("[learned.", "[learned_", "test_learned_checks.py"),
    "video": ("[vdm.", "[ramvid.", "[mcvd.", "[video_", "tests/video/test_video_fails.py"),
    "gan": ("[gan.", "[gan_", "test_gan_fails.py"),
    "orders": ("[samplers.orders]", "[sampler_orders.png]"),  # the figure draws the check's cached law errors
}
_LONG = ("[samplers.exact_law]", "[samplers.batch_independence]", "[sampler_clouds.png]", "[pc.per_sample_norms_low_dim]", "test_training_distributed.py")


def _scope(nodeid: str, modules: set[str]) -> str:
    group = next((g for g, keys in _SHARED_CACHES.items() if any(k in nodeid for k in keys)), None)
    module = nodeid.split("::")[0]
    return group or (module if module in modules else nodeid)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":
        return None
    import re

    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath
    wide = re.compile(r"scope=[\"'](module|session)[\"']")
    modules = {p.relative_to(root).as_posix() for p in (root / "tests").rglob("test_*.py") if wide.search(p.read_text())}

    class SharedCacheScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with the scopes above: a group, a module with wide fixtures, or else the test."""

        _ordered = False

        def _split_scope(self, nodeid):
            return _scope(nodeid, modules)

        def _assign_work_unit(self, node):
            if not self._ordered:
                self._ordered = True
                for first in (lambda s: any(k in s for k in _LONG), lambda s: s in _SHARED_CACHES):
                    for scope in [s for s in self.workqueue if first(s)][::-1]:
                        self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return SharedCacheScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Turn on the plugin's options: skip ``gpu`` tests without CUDA; the hypothesis profile ($HYPOTHESIS_PROFILE, else ci)."""
    config.option.diffcheck_skip_gpu = True
    if not getattr(config.option, "diffcheck_hypothesis_profile", None):
        config.option.diffcheck_hypothesis_profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")


@pytest.fixture
def gen():
    """A fresh, seeded CPU generator per test."""
    return torch.Generator().manual_seed(1234)


def _examples_independent_of_imports() -> None:
    """Hypothesis mixes literal constants of every loaded local module into its examples, so which examples a test sees
    would depend on which modules earlier tests imported. Keep its own constant pool only (edge cases that matter are
    pinned with @example)."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - another hypothesis layout: nothing to switch off
        return
    if hasattr(providers, "_get_local_constants") and hasattr(providers, "_local_constants"):
        providers._get_local_constants = lambda: providers._local_constants


_examples_independent_of_imports()
