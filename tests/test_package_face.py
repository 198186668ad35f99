"""``import diffcheck as dc`` reaches the public core by name, loads it lazily, and is enough for the README's examples."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import diffcheck as dc

README = Path(__file__).resolve().parents[1] / "README.md"


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_core_names_are_the_modules_own():
    from diffcheck import exact, process, samplers, testing

    assert dc.VP is process.VP and dc.DiscreteVP is process.DiscreteVP and dc.uniform_grid is process.uniform_grid
    assert dc.ExactModel is exact.ExactModel
    assert dc.ddim is samplers.ddim and dc.heun_ode is samplers.heun_ode and dc.info is samplers.info
    assert dc.assert_samples_match is testing.assert_samples_match and dc.affine_law is testing.affine_law
    assert {"VP", "ExactModel", "ddpm_ancestral", "assert_order"} <= set(dc.__all__) <= set(dir(dc))
    with pytest.raises(AttributeError, match="no_such_name"):
        dc.no_such_name  # noqa: B018


def test_readme_examples_need_only_the_package_face():
    """Every name the README's examples take from diffcheck.process, samplers, exact or testing is a name of ``dc``."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), re.S))
    names = set(re.findall(r"\b[PS]\.([A-Za-z_]\w*)", code))
    for module, imported in re.findall(r"from diffcheck(?:\.(process|exact|samplers|testing))? import ([^\n]+)", code):
        if module:
            names |= {n.strip() for n in imported.split(",") if " as " not in n}
    assert len(names) > 10
    missing = sorted(n for n in names if not hasattr(dc, n))
    assert not missing, missing


def test_importing_the_package_loads_nothing_heavy():
    code = "import sys, diffcheck; print('torch' in sys.modules, 'diffcheck.samplers' in sys.modules)"
    assert _run(code).split() == ["False", "False"]
    # a submodule imported from the package does not load the rest of the face
    code = "import sys; from diffcheck import process; print('diffcheck.samplers' in sys.modules, 'diffcheck.testing' in sys.modules)"
    assert _run(code).split() == ["False", "False"]
    code = "import sys, diffcheck.cli; print('torch' in sys.modules)"
    assert _run(code) == "False"
