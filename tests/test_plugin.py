"""The pytest plugin, run from a separate temporary project: the README's example passes, a wrong sampler fails."""

import os
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text()
    m = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the README must hold the plugin example after <!-- plugin-example -->"
    return m.group(1)


def test_readme_example_is_short():
    code = [line for line in _example().splitlines() if line.strip()]
    assert len(code) < 15


def test_readme_example_passes_in_a_fresh_project(pytester):
    pytester.makepyfile(test_user=_example())
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_wrong_sampler_fails_with_a_clear_message(pytester):
    wrong = _example().replace("0.5 * process.g2(t)", "process.g2(t)")  # the reverse-SDE drift without its noise
    pytester.makepyfile(test_user=wrong)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "samples do not match the exact law (n=2000, alpha=0.001)" in out
    assert "false-alarm rate alpha" in out and "FAILED" in out


def test_fixtures_and_options(pytester):
    pytester.makepyfile(test_fx="""
import torch
def test_fixtures(dc_gen, dc_seed, dc_mixture, dc_process, dc_exact_model):
    assert dc_seed == 7 and isinstance(dc_gen, torch.Generator)
    assert dc_mixture("ring").num_components == 8
    assert type(dc_process("ddpm-cosine")).__name__ == "DiscreteVP"
    assert dc_exact_model(dc_mixture("grid"), "VE", "x0").prediction == "x0"
""")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--diffcheck-seed", "7",
                                           "--diffcheck-hypothesis-profile", "ci")
    result.assert_outcomes(passed=1)


def test_plugin_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, diffcheck.testing.plugin; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_this_suite_runs_under_the_plugins_settings(request):
    """tests/conftest.py turns on the plugin's options rather than re-implementing them."""
    from hypothesis import settings

    assert request.config.getoption("--diffcheck-skip-gpu")
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    assert request.config.getoption("--diffcheck-hypothesis-profile") == profile
    if profile == "ci":
        assert settings.default.derandomize and settings.default.deadline is None and settings.default.max_examples == 60
