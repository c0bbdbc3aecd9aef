"""What stackha reaches inside pyghmi holds on the pyghmi of each distribution it is packaged for.

Three pyghmi: Debian 12's python3-pyghmi (1.5.34) as installed, under ``/usr/bin/python3 -I``
as the package runs; Debian 13's (1.5.70), taken from the Debian mirror this machine's apt
configuration names (trixie, main; the index checked against Debian's archive keyring), under
the same interpreter with its dist-packages first on ``sys.path``; and the virtualenv's from
PyPI. For each, the lab's BMC class serves on 127.0.0.1 and the fence agent, through its own
``main`` in a fresh process per call, reads and switches that BMC's power over real UDP: with
pyghmi's AES from libcrypto as shipped, and with each of the two fallbacks (no libcrypto; a
stand-in that does not fit pyghmi, so its session module fails half-way through an import).

Debian 12's and 13's need python3-pyghmi installed (make deps, scripts/debian-build-packages):
run as root (CI), a missing package fails; not as root, it skips (the ``root`` marker).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

import pytest

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"
AGENT = ROOT / "fence" / "fence_stackha_ipmi"
PROBE = Path(__file__).with_name("pyghmi_probe.py")
SYSTEM_PYTHON = "/usr/bin/python3"
SYSTEM_PACKAGES = Path("/usr/lib/python3/dist-packages")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_13 = "trixie"
PACKAGE = "python3-pyghmi"
# The index apt reads: python3-pyghmi is Architecture: all, and trixie's Release says
# "No-Support-for-Architecture-all: Packages" (arch-all packages are in each architecture's
# index). Its binary-all index is not what apt reads: a mirror may serve one that does not
# match the Release (seen here: a different size and SHA256 from the signed Release).
INDEX = "main/binary-{arch}/Packages.xz"
AES_MODES = ("shipped", "no-libcrypto", "misfit")
SEQUENCE = (  # action, exit code, stdout, power afterwards
    ("status", 0, "Status: ON\n", "on"),
    ("off", 0, "Success: Powered OFF\n", "off"),
    ("status", 2, "Status: OFF\n", "off"),
    ("on", 0, "Success: Powered ON\n", "on"),
    ("status", 0, "Status: ON\n", "on"),
)


@dataclass(frozen=True)
class Pyghmi:
    """One pyghmi under test: how to run Python with it, and what the probe must find."""

    name: str
    command: tuple[str, ...]  # interpreter and probe, up to the role
    version: str
    directory: Path  # where its pyghmi package is


def system_pyghmi_needed() -> None:
    if (SYSTEM_PACKAGES / "pyghmi").is_dir():
        return
    if os.geteuid() != 0:
        pytest.skip(f"{PACKAGE} is not installed (needs root: make deps)")
    pytest.fail(
        f"{PACKAGE} is not installed: make deps installs it (scripts/debian-build-packages)"
    )


def apt_mirror() -> str:
    """The Debian mirror this machine's apt configuration names: the URI of the first enabled
    ``deb`` source of a release suite (not -security, -updates, -backports)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            key = ""
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0].isspace() and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
                    key = key.strip().lower()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" in fields.get("types", "").split() and any(
                "-" not in suite and "/" not in suite for suite in fields.get("suites", "").split()
            ):
                return fields["uris"].split()[0].rstrip("/")
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] != ["deb"]:
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2 and "-" not in words[1] and "/" not in words[1]:
                return words[0].rstrip("/")
    pytest.fail("no Debian mirror in /etc/apt/sources.list{,.d}: cannot fetch Debian 13's pyghmi")


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - the apt mirror's
        return response.read()


def checked(data: bytes, sha256: str, what: str) -> bytes:
    assert hashlib.sha256(data).hexdigest() == sha256, f"{what}: SHA256 mismatch"
    return data


def verified_release(mirror: str, cache: Path) -> str:
    """trixie's InRelease, its signature checked against Debian's archive keyring."""
    signed = cache / "InRelease"
    signed.write_bytes(download(f"{mirror}/dists/{DEBIAN_13}/InRelease"))
    plain = cache / "Release"
    plain.unlink(missing_ok=True)
    result = subprocess.run(
        ["gpgv", "--keyring", KEYRING, "--output", str(plain), str(signed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{DEBIAN_13} InRelease: bad signature: {result.stderr}"
    return plain.read_text()


def stanza(text: str, package: str) -> dict[str, str]:
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == package:
            return fields
    pytest.fail(f"{package} is not in {DEBIAN_13}'s index")


def debian_13_pyghmi(cache: Path) -> Path:
    """Debian 13's python3-pyghmi, extracted in ``cache`` (kept by the file name of its .deb);
    returns its dist-packages directory."""
    cache.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    release = verified_release(mirror, cache)
    architecture = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    name = INDEX.format(arch=architecture)
    sha256 = next(
        (
            line.split()[0]
            for line in release.split("SHA256:", 1)[1].splitlines()
            if line.split()[2:] == [name]
        ),
        None,
    )
    assert sha256, f"{name} is not in {DEBIAN_13}'s Release"
    index = cache / f"Packages-{sha256}.xz"
    if not index.exists():
        for stale in cache.glob("Packages-*.xz"):  # a point release ago
            stale.unlink()
        index.write_bytes(checked(download(f"{mirror}/dists/{DEBIAN_13}/{name}"), sha256, name))
    fields = stanza(lzma.decompress(index.read_bytes()).decode(), PACKAGE)
    deb = cache / Path(fields["Filename"]).name
    tree = cache / deb.name.removesuffix(".deb")
    if not tree.is_dir():
        if not deb.exists():
            data = download(f"{mirror}/{fields['Filename']}")
            deb.write_bytes(checked(data, fields["SHA256"], deb.name))
        partial = cache / f"{tree.name}.partial"
        subprocess.run(["rm", "-rf", str(partial)], check=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True, timeout=60)
        partial.rename(tree)
    return tree / "usr" / "lib" / "python3" / "dist-packages"


@pytest.fixture(scope="module", params=["debian12", "debian13", "venv"])
def pyghmi(request) -> Pyghmi:
    """The pyghmi under test: Debian 12's, Debian 13's, the virtualenv's."""
    if request.param == "venv":
        directory = Path(metadata.distribution("pyghmi").locate_file("pyghmi"))
        return Pyghmi(
            "venv",
            (sys.executable, "-I", str(PROBE), str(LIB)),
            metadata.version("pyghmi"),
            directory,
        )
    system_pyghmi_needed()
    if request.param == "debian12":
        return Pyghmi(
            "debian12",
            (SYSTEM_PYTHON, "-I", str(PROBE), str(LIB)),
            packaged_version(SYSTEM_PACKAGES),  # 1.5.34
            SYSTEM_PACKAGES / "pyghmi",
        )
    packages = debian_13_pyghmi(request.config.cache.mkdir("stackha-debian-pyghmi"))
    return Pyghmi(
        "debian13",
        (SYSTEM_PYTHON, "-I", str(PROBE), str(LIB), "--pyghmi", str(packages)),
        packaged_version(packages),  # 1.5.70
        packages / "pyghmi",
    )


def packaged_version(packages: Path) -> str:
    """The version of the pyghmi in a Debian package's dist-packages (its egg-info's name)."""
    (info,) = packages.glob("pyghmi-*.egg-info")
    return info.name[len("pyghmi-") : -len(".egg-info")]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Bmc:
    port: int
    password: str
    state: Path
    log: Path


@pytest.fixture(scope="module")
def bmc(pyghmi: Pyghmi, tmp_path_factory):
    """The lab's BMC class, run by the pyghmi under test on 127.0.0.1; its node is on."""
    directory = tmp_path_factory.mktemp(f"bmc-{pyghmi.name}")
    server = Bmc(free_udp_port(), secrets.token_hex(8), directory / "power", directory / "bmc.log")
    server.state.write_text("on\n")
    with server.log.open("w") as log:
        process = subprocess.Popen(
            [*pyghmi.command, "bmc", str(server.port), str(server.state)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert process.stdin and process.stdout
        process.stdin.write(server.password + "\n")  # never on a command line
        process.stdin.close()
        ready = process.stdout.readline()
        assert ready == "ready\n", f"the BMC did not start: {server.log.read_text()}"
        yield server
    finally:
        process.kill()
        process.wait()


def agent(pyghmi: Pyghmi, server: Bmc, action: str, aes: str) -> dict:
    request = {"port": server.port, "password": server.password, "action": action, "aes": aes}
    result = subprocess.run(
        [*pyghmi.command, "agent", str(AGENT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def note(pyghmi: Pyghmi, aes: str) -> Optional[str]:
    """The line the agent's log must hold for this way of loading AES (None: no line)."""
    fallback = f"WARNING: pyghmi {pyghmi.version}: AES through the cryptography package"
    if aes == "no-libcrypto":
        return f"{fallback} (libcrypto.so.stackha-probe-absent does not load: "
    if aes == "misfit":
        return f"{fallback} (the libcrypto shortcut does not fit: TypeError: "
    return None


@pytest.mark.parametrize("aes", AES_MODES)
def test_fence_agent_switches_the_lab_bmc(pyghmi, bmc, aes):
    """status, off, status, on, status over UDP: the answers, the power really switched (the
    BMC's own record and log), AES from libcrypto where it fits, else a working fallback and
    one line in the agent's log saying why."""
    log_before = bmc.log.read_text()
    for action, code, stdout, power in SEQUENCE:
        report = agent(pyghmi, bmc, action, aes)
        assert (report["code"], report["stdout"]) == (code, stdout), report["stderr"]
        assert bmc.state.read_text().strip() == power
        assert Path(report["pyghmi_file"]).resolve().parent == pyghmi.directory.resolve()
        assert Path(report["stackha_file"]).resolve().is_relative_to(LIB), report
        if pyghmi.name != "venv":
            assert (report["python"], report["isolated"]) == (SYSTEM_PYTHON, True)
        expected = note(pyghmi, aes)
        lines = report["stderr"].splitlines()
        if expected is None:
            assert lines == []
            assert report["shortcut"] and not report["cryptography_loaded"], report
            assert report["default_backend_from"] == "stackha.fencing.openssl_aes", report
        else:
            assert len(lines) == 1 and lines[0].startswith(expected), report["stderr"]
            assert not report["shortcut"] and report["cryptography_loaded"], report
            # No half-imported pyghmi module kept the stand-in's names.
            assert report["default_backend_from"].startswith("cryptography."), report
    log = bmc.log.read_text()[len(log_before) :]
    assert " power off: off " in log and " power on: on " in log, log


def open_session_request(auth: int, integrity: int) -> bytes:
    """An RMCP+ Open Session Request (IPMI 2.0, 13.17) proposing these algorithms, AES-CBC-128."""
    payload = bytes([0x2A, 0, 0, 0]) + b"\x11\x22\x33\x44"
    for kind, algorithm in ((0, auth), (1, integrity), (2, 1)):
        payload += bytes([kind, 0, 0, 8, algorithm, 0, 0, 0])
    header = b"\x06\x00\xff\x07" + bytes([0x06, 0x10]) + bytes(8)
    return header + len(payload).to_bytes(2, "little") + payload


def test_lab_bmc_refuses_every_cipher_suite_but_3(pyghmi, bmc):
    """The lab's override of pyghmi's server session holds: suite 17's algorithms (HMAC-SHA256)
    get RMCP+ status 0x11, suite 3's (HMAC-SHA1) are accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        answers = []
        for auth, integrity in ((3, 4), (1, 1)):
            client.sendto(open_session_request(auth, integrity), ("127.0.0.1", bmc.port))
            answer = client.recv(1024)
            assert answer[5] == 0x11, answer.hex()  # an Open Session Response
            answers.append(answer[16 + 1])  # its status code
            time.sleep(0.1)
    assert answers == [0x11, 0x00]
