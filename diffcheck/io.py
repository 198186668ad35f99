"""Atomic file writes (a result is written to a temporary file and moved into place), and output checks made before work."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

__all__ = ["atomic_path", "write_json", "write_text", "writable_file", "writable_dir"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual permissions
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _probe(start: Path, name: str, path: str | os.PathLike) -> None:
    """Write and remove a hidden file in ``start`` or the nearest existing folder above it (creating nothing else)."""
    folder = start.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{name} {path}: {folder} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".diffcheck-write-test-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise ValueError(f"{name} {path}: cannot write in {folder} ({err.strerror or err})") from None


def writable_file(path: str | os.PathLike, name: str = "path", suffixes: Sequence[str] | None = None) -> Path:
    """``path`` as a Path after checking that a file can be written there (ValueError naming ``name`` otherwise).

    Its folder (or the nearest existing folder above it) must accept a new file, and ``path`` must
    not be a folder; with ``suffixes`` its suffix must be one of them. Nothing is created.
    """
    p = Path(path).expanduser()
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise ValueError(f"{name} must end in {', '.join(suffixes)}, got {str(path)!r}")
    if p.is_dir():
        raise ValueError(f"{name} {path} is a folder; give a file name")
    _probe(p.parent, name, path)
    return p


def writable_dir(path: str | os.PathLike, name: str = "path") -> Path:
    """``path`` as a Path after checking that the folder can be created or written (ValueError naming ``name`` otherwise)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {path} is a file, not a folder")
    _probe(p, name, path)
    return p
