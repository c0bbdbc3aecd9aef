"""The Debian packages as built: lintian's verdict, what each package holds and where, the
interpreter lines, the dependencies, and a build that needs no root."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from stackha import __version__

ROOT = Path(__file__).resolve().parents[2]
OCF_DIR = "usr/lib/ocf/resource.d/stackha"
INTERPRETER = b"#!/usr/bin/python3 -IS\n"
# What debian/install-python-program puts after "from __future__ import annotations": -S skips
# site.py, so the distribution's dist-packages is added by hand.
PATH_LINES = (
    b"import sys  # noqa: E402 - installed with python3 -IS (debian/install-python-program)\n"
    b'sys.path.append("/usr/lib/python3/dist-packages")  # noqa: E402\n'
)
FUTURE = b"from __future__ import annotations\n"


def dpkg_deb(*argv: str) -> str:
    return subprocess.run(
        ["dpkg-deb", *argv], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def contents(deb: Path, tmp_path: Path) -> Path:
    """The package's files, unpacked."""
    target = tmp_path / deb.name
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True, timeout=60)
    return target


def members(deb: Path) -> list[str]:
    return [line.split()[-1].removeprefix("./") for line in dpkg_deb("-c", str(deb)).splitlines()]


def executables(directory: str, prefix: str = "") -> list[str]:
    return sorted(
        p.name
        for p in (ROOT / directory).iterdir()
        if p.is_file() and os.access(p, os.X_OK) and p.name.startswith(prefix)
    )


@pytest.fixture(scope="module")
def lab_deb(stackha_deb):
    return stackha_deb.with_name(f"stackha-lab_{__version__}_all.deb")


def test_lintian_reports_no_error_and_no_warning(stackha_deb):
    changes = stackha_deb.with_name(f"stackha_{__version__}_amd64.changes")
    result = subprocess.run(
        ["lintian", "--allow-root", "--fail-on", "error,warning", "--pedantic", str(changes)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert shown == []


def test_the_package_is_named_and_versioned_as_the_library(stackha_deb, lab_deb):
    assert stackha_deb.name == f"stackha_{__version__}_all.deb"
    assert dpkg_deb("-f", str(stackha_deb), "Version").strip() == __version__
    assert dpkg_deb("-f", str(lab_deb), "Depends").count(f"stackha (= {__version__})") == 1


def test_depends_names_the_distributions_libraries(stackha_deb):
    depends = {d.strip().split()[0] for d in dpkg_deb("-f", str(stackha_deb), "Depends").split(",")}
    assert {"python3-lxml", "python3-pyghmi", "python3-pexpect"} <= depends
    assert not [d for d in depends if "pip" in d]
    recommends = dpkg_deb("-f", str(stackha_deb), "Recommends")
    assert "pacemaker" in recommends and "pcs" in recommends


def test_every_agent_is_where_pacemaker_looks_with_the_system_python(stackha_deb, tmp_path):
    tree = contents(stackha_deb, tmp_path)
    agents = sorted(p.name for p in (tree / OCF_DIR).iterdir())
    assert agents == executables("agents")
    fence = sorted(p.name for p in (tree / "usr/sbin").iterdir())
    assert fence == executables("fence", "fence_")
    for path in [*(tree / OCF_DIR).iterdir(), *(tree / "usr/sbin").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o755, path
        with open(path, "rb") as handle:
            assert handle.readline() == INTERPRETER, path
        # the body is the checkout's agent, with the path set right after its first statement
        source = ROOT / ("fence" if path.parent.name == "sbin" else "agents") / path.name
        body = source.read_bytes().split(b"\n", 1)[1]
        assert path.read_bytes().split(b"\n", 1)[1] == body.replace(FUTURE, FUTURE + PATH_LINES, 1)
    with open(tree / "usr/bin/stackha", "rb") as handle:
        assert handle.readline() == b"#!/usr/bin/python3\n"
    # HAProxy's Galera check starts every few seconds: as fast as the agents
    check = (tree / "usr/bin/stackha-galera-check").read_bytes()
    assert check.startswith(INTERPRETER) and FUTURE + PATH_LINES in check


def test_the_installed_programs_run_without_site(stackha_deb, tmp_path):
    """Unpacked, with the library put where -S finds it by their own sys.path line: the
    agents start and read their declaration (no import needed site.py)."""
    tree = contents(stackha_deb, tmp_path)
    for path in [*(tree / OCF_DIR).iterdir(), tree / "usr/sbin/fence_stackha_ipmi"]:
        text = path.read_text().replace(
            "/usr/lib/python3/dist-packages", str(tree / "usr/lib/python3/dist-packages")
        )
        # only the distribution's dist-packages and the unpacked library: no venv, no site
        result = subprocess.run(
            ["/usr/bin/python3", "-IS", "-c", text]
            + (["-o", "metadata"] if path.name.startswith("fence_") else ["meta-data"]),
            capture_output=True,
            text=True,
            timeout=60,
            env={"OCF_ROOT": "/usr/lib/ocf", "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0 and "<resource-agent" in result.stdout, (
            path.name,
            result.stderr,
        )


def test_man_pages_templates_and_docs(stackha_deb):
    files = set(members(stackha_deb))
    for agent in executables("fence", "fence_"):
        assert f"usr/share/man/man8/{agent}.8.gz" in files
    assert {"usr/share/man/man1/stackha.1.gz", "usr/share/man/man1/stackha-galera-check.1.gz"} <= (
        files
    )
    templates = {
        f"usr/share/stackha/crm-templates/{p.name}" for p in (ROOT / "crm-templates").iterdir()
    }
    assert templates <= files
    assert "usr/share/stackha/crm-templates/site.example.ini" in files
    docs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")}
    shipped = {f.removeprefix("usr/share/doc/stackha/").removesuffix(".gz") for f in files}
    assert docs <= shipped
    assert "README.md" in shipped


def test_the_lab_is_only_in_stackha_lab(stackha_deb, lab_deb):
    library = "usr/lib/python3/dist-packages/stackha/"
    main = [f for f in members(stackha_deb) if f.startswith(library)]
    lab = [f for f in members(lab_deb) if f.startswith(library) and not f.endswith("/")]
    assert main and not [f for f in main if f.startswith(library + "lab")]
    assert lab and all(f.startswith(library + "lab/") for f in lab)
    assert not [f for f in members(stackha_deb) + members(lab_deb) if "__pycache__" in f]


def test_the_build_needs_no_root():
    """make deb as an ordinary user, from a clean clone: the packages' files owned by root."""
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root (CI is root)")
    # not under pytest's tmp_path: that is root's, mode 0700
    work = Path(tempfile.mkdtemp(prefix="stackha-deb-nobody-"))
    try:
        source = work / "src"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(source)], check=True, timeout=120)
        subprocess.run(["chown", "-R", "nobody:nogroup", str(work)], check=True)
        result = subprocess.run(
            [
                "runuser",
                "-u",
                "nobody",
                "--",
                "env",
                f"HOME={work}",
                f"TMPDIR={work}",
                str(source / "scripts" / "build-deb"),
                str(work / "out"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        built = work / "out" / f"stackha_{__version__}_all.deb"
        owners = {line.split()[1] for line in dpkg_deb("-c", str(built)).splitlines()}
        assert owners == {"root/root"}
    finally:
        shutil.rmtree(work)
