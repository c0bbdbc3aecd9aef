"""Putting the agents where Pacemaker looks for them, and taking exactly them away again.

Each agent executable in ``agents/`` is copied to ``$OCF_ROOT/resource.d/stackha/<name>`` (and
each in ``fence/`` to the sbin directory) with an interpreter line naming the Python that has
this library (``sys.executable``, run with ``-I`` so no ``PYTHONPATH`` or user site of whoever
calls the agent can change what it imports); an executable only imports its declaration from
``stackha.agents`` or ``stackha.fencing.agents``, which is where the declarations are read from.
A manifest beside the agents records every file written and its checksum; uninstall removes
those files and no others, and leaves alone a file someone changed since.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PROVIDER = "stackha"
MANIFEST_NAME = ".stackha-installed.json"  # dot: OCF hides it from agent listings


class InstallError(Exception):
    """Install or uninstall cannot go on; the message says what to do."""


DEFAULT_SBIN = "/usr/sbin"  # where pacemaker-fenced and pcs look for fence agents
# What dpkg says the Debian package stackha installed (one path per line).
PACKAGE_LIST = "/var/lib/dpkg/info/stackha.list"


def packaged_paths(list_file: str = PACKAGE_LIST) -> frozenset[str]:
    """The files of the installed Debian package stackha (none when it is not installed)."""
    try:
        with open(list_file, encoding="utf-8") as handle:
            return frozenset(line.rstrip("\n") for line in handle if line.strip())
    except FileNotFoundError:
        return frozenset()
    except OSError as err:
        raise InstallError(f"cannot read {list_file}: {err.strerror}") from err


PACKAGED_OCF_ROOT = "/usr/lib/ocf"  # where the Debian package puts the OCF agents


def source_dir(kind: str = "agents") -> Path:
    """Where the ``agents``, ``fence`` or ``crm-templates`` sources are: the source tree beside
    ``lib/``, else the copy a wheel installs under ``share/stackha``."""
    candidates = [
        Path(__file__).resolve().parents[2] / kind,
        Path(sys.prefix) / "share" / "stackha" / kind,
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise InstallError(
        f"no {kind} sources found (looked in {', '.join(str(c) for c in candidates)})"
    )


def _executables(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and not path.name.startswith(".") and os.access(path, os.X_OK)
    )


def agent_files(source: Optional[Path] = None) -> list[Path]:
    """The OCF agents (every executable in ``agents/``)."""
    return _executables(source or source_dir("agents"))


def fence_agent_files(source: Optional[Path] = None) -> list[Path]:
    """The fence agents (``fence/fence_*``)."""
    return [p for p in _executables(source or source_dir("fence")) if p.name.startswith("fence_")]


def interpreter_line() -> str:
    return f"#!{sys.executable} -I\n"


def _with_interpreter(text: str) -> str:
    body = text.split("\n", 1)[1] if text.startswith("#!") else text
    return interpreter_line() + body


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


@dataclass(frozen=True)
class Installed:
    path: str
    sha256: str


def provider_dir(ocf_root: str) -> Path:
    return Path(ocf_root) / "resource.d" / PROVIDER


def _manifest_path(ocf_root: str) -> Path:
    return provider_dir(ocf_root) / MANIFEST_NAME


def read_manifest(ocf_root: str) -> list[Installed]:
    try:
        with open(_manifest_path(ocf_root), encoding="utf-8") as handle:
            entries = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise InstallError(f"cannot read {_manifest_path(ocf_root)}: {err}") from err
    return [Installed(entry["path"], entry["sha256"]) for entry in entries]


def install(
    ocf_root: str,
    sbin_dir: str = DEFAULT_SBIN,
    source: Optional[Path] = None,
    fence_source: Optional[Path] = None,
    package_list: str = PACKAGE_LIST,
) -> list[Installed]:
    """Install every OCF agent into the provider directory and every fence agent into
    ``sbin_dir``; returns what was written. Re-running replaces the files in place.

    For development and the tests: on a node the Debian package installs the agents, and
    this refuses to overwrite a file the package owns (dpkg would then check a file it no
    longer knows, and purge would leave this install's manifest behind)."""
    target = provider_dir(ocf_root)
    plan = [(path, target) for path in agent_files(source)]
    plan += [(path, Path(sbin_dir)) for path in fence_agent_files(fence_source)]
    packaged = packaged_paths(package_list)
    owned = [
        str(d / f.name)
        for f, d in plan
        if {str(d / f.name), os.path.realpath(d / f.name)} & packaged
    ]
    if owned:
        raise InstallError(
            f"{owned[0]} belongs to the Debian package stackha, whose agents Pacemaker runs "
            "on this node; stackha install is for development (apt remove stackha first, or "
            "give --ocf-root and --sbin-dir elsewhere)"
        )
    try:
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
    except PermissionError as err:
        raise InstallError(f"cannot create {target}: permission denied (run as root)") from err
    previous = {entry.path: entry for entry in read_manifest(ocf_root)}
    written = []
    try:
        for source_file, directory in plan:
            data = _with_interpreter(source_file.read_text(encoding="utf-8")).encode("utf-8")
            destination = directory / source_file.name
            _write_atomically(destination, data, 0o755)
            written.append(Installed(str(destination), _digest(data)))
    except PermissionError as err:
        raise InstallError(f"cannot write {err.filename}: permission denied (run as root)") from err
    entries = {**previous, **{entry.path: entry for entry in written}}
    manifest = json.dumps([entry.__dict__ for entry in entries.values()], indent=1).encode()
    _write_atomically(_manifest_path(ocf_root), manifest + b"\n", 0o644)
    return written


@dataclass(frozen=True)
class Removal:
    removed: list[str]
    kept: list[str]  # changed since install: not ours to delete


def uninstall(ocf_root: str) -> Removal:
    """Remove exactly the files install wrote (and unchanged since), then the manifest."""
    removed, kept = [], []
    for entry in read_manifest(ocf_root):
        path = Path(entry.path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if _digest(data) != entry.sha256:
            kept.append(entry.path)
            continue
        path.unlink()
        removed.append(entry.path)
    manifest = _manifest_path(ocf_root)
    if manifest.exists():
        manifest.unlink()
    directory = provider_dir(ocf_root)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    return Removal(removed, kept)
