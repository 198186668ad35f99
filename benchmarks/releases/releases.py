"""Run ``diffcheck verify-diffusers`` against the diffusers releases in which catalogued scheduler bugs lived.

Each release gets its own virtual environment (torch 2.13 on CPU, the release, and the
old versions of its requirements that it needs to import), kept outside the repository.
diffcheck runs from this checkout (``PYTHONPATH``), so every report measures the same
diffcheck against a different diffusers.

    python benchmarks/releases/releases.py envs   [--root DIR] [--only 0.25.1 ...]
    python benchmarks/releases/releases.py run    [--root DIR] [--only ...] [--quick | --evidence]
    python benchmarks/releases/releases.py table

``envs`` creates the environments (a release that cannot be installed or imported is
recorded with its error); ``run`` writes ``reports/diffusers-<release>.json`` and the
printed report beside it (``--evidence``: ``diffusers-<release>-evidence.json``, only the
configurations and probes that the table names for that release's bugs); ``table`` reads the reports and writes ``table.md`` and
``table.json``: each bug, its release, whether that release installed and imported,
and whether the report flagged the bug and by which figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
from diffcheck.io import write_text  # noqa: E402  (standard library only: atomic writes)

REPORTS = HERE / "reports"
DEFAULT_ROOT = os.environ.get("DIFFCHECK_RELEASES_ROOT", str(Path.home() / ".cache" / "diffcheck-releases"))

# torch is the CPU build the project uses; the rest are diffcheck's own run-time needs
BASE = ["torch==2.13.0", "scipy==1.17.1", "tqdm==4.70.1", "safetensors==0.8.0"]
# diffusers before 0.27 imports huggingface_hub.cached_download, removed in huggingface_hub 0.26; and passes torch
# scalars to numpy (np.linspace(0, tensor, n) in DPMSolverSinglestepScheduler.set_timesteps), which numpy 2 refuses
OLD = ["huggingface_hub==0.25.2", "numpy==1.26.4"]
RELEASES: dict[str, list[str]] = {
    "0.3.0": OLD,
    "0.9.0": OLD,
    "0.12.1": OLD,
    "0.14.0": OLD,
    "0.25.1": OLD,
    "0.26.2": OLD,
    "0.31.0": [],
    "0.40.0": [],
}


def _python(root: Path, version: str) -> Path:
    return root / version / "bin" / "python"


def _status_path(root: Path, version: str) -> Path:
    return root / version / "diffcheck-status.json"


def _run(cmd: list[str], log, env: dict | None = None, timeout: float | None = None) -> int:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode


def make_env(root: Path, version: str) -> dict:
    """Create the environment of one release; returns (and stores beside it) whether it installed and imported."""
    env_dir = root / version
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = root / f"{version}.log"
    with open(log_path, "w") as log:
        if not _python(root, version).exists():
            if _run([sys.executable, "-m", "venv", str(env_dir)], log):
                return _store(root, version, {"installed": False, "error": "python -m venv failed", "log": str(log_path)})
        pip = [str(_python(root, version)), "-m", "pip", "install", "-q"]
        if _run(pip + BASE + RELEASES[version] + [f"diffusers=={version}"], log):
            return _store(root, version, {"installed": False, "error": _tail(log_path), "log": str(log_path)})
        probe = "import diffusers, torch, numpy; print(diffusers.__version__, torch.__version__, numpy.__version__)"
        out = subprocess.run([str(_python(root, version)), "-W", "ignore", "-c", probe], capture_output=True, text=True)
        if out.returncode:
            err = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
            return _store(root, version, {"installed": True, "imports": False, "error": err})
        freeze = subprocess.run([str(_python(root, version)), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
        return _store(root, version, {"installed": True, "imports": True, "versions": out.stdout.strip(),
                                      "freeze": freeze.split()})


def _tail(path: Path, n: int = 3) -> str:
    lines = [l for l in path.read_text().splitlines() if l.strip() and "is ignored" not in l]
    return " | ".join(lines[-n:])


def _store(root: Path, version: str, status: dict) -> dict:
    status = {"release": version, **status}
    path = _status_path(root, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(status, indent=2) + "\n")
    return status


def evidence_of(version: str) -> tuple[list[str], list[str]]:
    """The configurations and probes that the table names for the bugs whose report is ``version``'s."""
    from table import BUGS  # noqa: PLC0415  (beside this script)

    mine = [b for b in BUGS if (b.get("report_of") or b["release"]) == version]
    configs = [name for b in mine for kind, name in b["evidence"] if kind == "configuration"]
    probes = [name for b in mine for kind, name in b["evidence"] if kind == "finding"]
    return list(dict.fromkeys(configs)), list(dict.fromkeys(probes))


def run_report(root: Path, version: str, mode: str = "full") -> dict:
    """``diffcheck verify-diffusers`` in the release's environment, diffcheck taken from this checkout.

    ``mode``: "full" (the command as a user runs it), "quick" (its quick mode) or "evidence" (only the
    configurations and probes that the table names for this release's bugs, no two-sample tests).
    """
    if mode not in ("full", "quick", "evidence"):
        raise ValueError(f"mode must be full, quick or evidence, got {mode!r}")
    suffix = "" if mode == "full" else f"-{mode}"
    status_file = _status_path(root, version)
    status = json.loads(status_file.read_text()) if status_file.exists() else {"installed": False, "error": "no environment"}
    REPORTS.mkdir(parents=True, exist_ok=True)
    out = REPORTS / f"diffusers-{version}{suffix}.json"
    record = {"release": version, "mode": mode, "environment": {k: v for k, v in status.items() if k != "freeze"}}
    if status.get("imports"):
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        cmd = [str(_python(root, version)), "-W", "ignore", "-m"]
        if mode == "evidence":
            configs, probes = evidence_of(version)
            cmd += ["diffcheck.adapters.diffusers_report", "--no-two-sample", "--no-progress", "--schedulers", *configs,
                    "--probes", *probes, "--out", str(out)]
        else:
            cmd += ["diffcheck.cli", "verify-diffusers", "--out", str(out)] + (["--quick"] if mode == "quick" else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        record.update(returncode=proc.returncode, seconds=round(time.perf_counter() - t0, 1), report=out.name if out.exists() else None)
        write_text(REPORTS / f"diffusers-{version}{suffix}.txt", proc.stdout + ("" if proc.returncode == 0 else "\n" + proc.stderr[-4000:]))
        if proc.returncode:
            record["error"] = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
    write_text(REPORTS / f"run-{version}{suffix}.json", json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("envs", "run", "table"))
    parser.add_argument("--root", default=DEFAULT_ROOT, help=f"where the environments live (default {DEFAULT_ROOT})")
    parser.add_argument("--only", nargs="+", choices=sorted(RELEASES), help="these releases only")
    parser.add_argument("--quick", action="store_true", help="run the report's quick mode")
    parser.add_argument("--evidence", action="store_true",
                        help="run only the configurations and probes the table names for each release's bugs")
    args = parser.parse_args(argv)
    root = Path(args.root)
    versions = args.only or list(RELEASES)
    if args.command == "envs":
        for v in versions:
            print(json.dumps({k: s for k, s in make_env(root, v).items() if k != "freeze"}), flush=True)
    elif args.command == "run":
        for v in versions:
            mode = "evidence" if args.evidence else ("quick" if args.quick else "full")
            print(json.dumps(run_report(root, v, mode)), flush=True)
    else:
        from table import write_table  # noqa: PLC0415  (beside this script)

        write_table(REPORTS, HERE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
