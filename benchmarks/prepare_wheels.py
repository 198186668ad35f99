"""Prepare the wheels a GPU machine without network needs for ``diffcheck bench gpu``, and check them.

The target: Python 3.12 on manylinux x86-64 with PyTorch 2.11 (CUDA 13) and the packages of ``PRESENT``
already installed; what it lacks (diffusers and what diffusers declares beyond ``PRESENT``) is downloaded
here as wheels, one version of each, into ``--dest`` (default ``.whl``, kept out of git)::

    python benchmarks/prepare_wheels.py                       # download and check the requirements
    python benchmarks/prepare_wheels.py --check PYTHON3.12    # also install them into a temporary folder and
                                                              # import them and diffcheck.bench with that Python

The check installs exactly as the GPU run does (``pip install --no-index --no-deps --target``), imports
``diffusers.UNet2DModel`` and ``DDIMScheduler`` and the benchmark, and runs the benchmark's dry run. The
Python given must already hold what ``PRESENT`` names (torch, numpy, huggingface_hub, ...) at versions near
those listed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# What is carried: diffusers, and what its Requires-Dist names that the GPU image lacks (importlib_metadata,
# whose own requirement lazy-importer is missing too). On Python 3.12 diffusers imports the standard
# library's importlib.metadata, but the declared requirements are carried all the same.
WHEELS = {"diffusers": "0.42.1", "importlib_metadata": "10.2.0", "lazy-importer": "0.1.0"}

# The GPU image's Python packages that these wheels and diffcheck need (version None: present, version
# not read). Python 3.12.3, torch 2.11.0+cu130.
PRESENT = {"torch": "2.11.0", "numpy": "2.5.2", "huggingface-hub": "1.33.0", "safetensors": "0.8.0", "scipy": None,
           "matplotlib": None, "tqdm": None, "filelock": None, "regex": None, "requests": None, "pillow": None,
           "zipp": None, "packaging": None, "pyyaml": None, "pytest": None, "hypothesis": None, "typing-extensions": None}
TARGET_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
LIMIT_BYTES = 48 * 2**20  # the whole working tree that travels is limited to 64 MiB


def download(dest: Path) -> None:
    """``pip download`` each wheel of ``WHEELS`` for the target (no dependencies resolved: they are checked below)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", TARGET_PYTHON,
           "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + [f"{n}=={v}" for n, v in WHEELS.items()], check=True)


def wheels(dest: Path) -> dict[str, tuple[str, Path]]:
    """name -> (version, path) of the wheels in ``dest``; two versions of one name is an error."""
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(dest.glob("*.whl")):
        name, version = path.name.split("-")[:2]
        key = canonicalize_name(name)
        if key in found and found[key][0] != version:
            raise SystemExit(f"two versions of {key} in {dest}: {found[key][0]} and {version}; keep one")
        found[key] = (version, path)
    return found


def requirements(path: Path) -> list[Requirement]:
    """The Requires-Dist of a wheel that apply on the target (extras left out)."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    env = {**default_environment(), "python_version": TARGET_PYTHON, "python_full_version": TARGET_PYTHON + ".3",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
    out = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None or req.marker.evaluate(env):
                out.append(req)
    return out


def check_requirements(found: dict[str, tuple[str, Path]]) -> list[str]:
    """Problems: a requirement that neither a carried wheel nor the image satisfies."""
    present = {canonicalize_name(k): v for k, v in PRESENT.items()}
    problems = []
    for name, (version, path) in found.items():
        for req in requirements(path):
            key = canonicalize_name(req.name)
            have = found[key][0] if key in found else present.get(key, "missing")
            if have == "missing":
                problems.append(f"{name} {version} needs {req}: neither carried nor on the image")
            elif have is not None and req.specifier and Version(have) not in req.specifier:
                problems.append(f"{name} {version} needs {req}: {key} {have} does not satisfy it")
            else:
                print(f"  {name} {version} needs {req}: {'carried' if key in found else 'on the image'} "
                      + ("" if have is None else have) + (" (version not read)" if have is None else ""))
    return problems


def check_install(python: str, dest: Path) -> None:
    """Install the wheels into a temporary folder with ``python`` as the GPU run does, import them, run the dry run."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                        "--upgrade", "--target", str(site)] + [str(p) for p in sorted(dest.glob("*.whl"))], check=True)
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        probe = ("import sys, torch, diffusers; from diffusers import UNet2DModel, DDIMScheduler; import diffcheck.bench.gpu; "
                 "print('python', sys.version.split()[0], 'torch', torch.__version__, 'diffusers', diffusers.__version__, "
                 "'from', diffusers.__file__)")
        subprocess.run([python, "-c", probe], check=True, env=env, cwd=tmp)
        out = Path(tmp) / "dry.json"
        subprocess.run([python, "-m", "diffcheck.cli", "bench", "gpu", "--dry-run", "--budget-s", "300", "--quiet", "--out", str(out)],
                       check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        doc = json.loads(out.read_text())
        ok = [r for r in doc["runs"] if r["status"] == "ok"]
        bad = [f"{r['variant']}: {r['reason']}" for r in doc["runs"] if r["status"] in ("failed", "oom")]
        print(f"dry run with {python}: complete={doc['complete']}, {len(ok)} runs measured, diffusers rows "
              f"{sum(r['impl'] == 'diffusers' for r in ok)}, gate passed={doc['gate'] and doc['gate']['passed']}"
              + (f"; FAILED: {bad}" if bad else ""))
        if bad or not doc["complete"]:
            raise SystemExit("the dry run failed with the carried wheels")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", default=str(ROOT / ".whl"), help="the wheel folder (default .whl in the repository root)")
    ap.add_argument("--no-download", action="store_true", help="check the folder as it is")
    ap.add_argument("--check", metavar="PYTHON", help="a Python 3.12 to install into a temporary folder and import with")
    a = ap.parse_args(argv)
    dest = Path(a.dest)
    if not a.no_download:
        download(dest)
    found = wheels(dest)
    unexpected = set(found) - {canonicalize_name(n) for n in WHEELS}
    if unexpected:
        raise SystemExit(f"{dest} holds wheels not in WHEELS: {sorted(unexpected)}")
    print("requirements:")
    problems = check_requirements(found)
    total = 0
    print("wheels:")
    for name, (version, path) in sorted(found.items()):
        size = path.stat().st_size
        total += size
        print(f"  {path.name}  {size / 2**20:.2f} MiB")
    print(f"total {total / 2**20:.2f} MiB (limit {LIMIT_BYTES / 2**20:.0f} MiB)")
    if total > LIMIT_BYTES:
        problems.append(f"the wheels take {total / 2**20:.1f} MiB, over {LIMIT_BYTES / 2**20:.0f} MiB")
    if problems:
        raise SystemExit("\n".join(problems))
    if a.check:
        check_install(a.check, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
