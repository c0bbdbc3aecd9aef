import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent_runs import BASE_ENV, OCF_ROOT  # noqa: E402
from fakes import FakeClock, FakeRunner  # noqa: E402
from stackha.lab import package  # noqa: E402
from stackha.runner import SubprocessRunner  # noqa: E402


@pytest.fixture
def fake_runner():
    runner = FakeRunner()
    yield runner
    runner.assert_done()


@pytest.fixture
def fake_clock():
    return FakeClock()


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def installed(stackha_deb):
    """The stackha package of this working tree installed with apt where Pacemaker and pcs
    look (needs root), so the contract, integration and lab tiers run what an operator
    installs: the agents with /usr/bin/python3 -IS and the distribution's libraries. A
    development install (stackha install) there is removed first; the package is purged
    afterwards unless it was installed before the tests ran."""
    runner = SubprocessRunner()
    installed_here = package.install(runner, stackha_deb)
    yield Path(OCF_ROOT, "resource.d", "stackha")
    if installed_here:
        package.remove(runner)


@pytest.fixture
def agent_env():
    """A minimal environment, as an agent gets it outside Pacemaker."""
    return dict(BASE_ENV)


@pytest.fixture(scope="session")
def stackha_deb(tmp_path_factory):
    """The stackha Debian package of this working tree, built once per test run
    (scripts/build-deb), or the one in $STACKHA_DEB_DIR."""
    given = os.environ.get("STACKHA_DEB_DIR")
    directory = Path(given) if given else tmp_path_factory.mktemp("deb")
    if not given:
        result = subprocess.run(
            [str(ROOT / "scripts" / "build-deb"), str(directory)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    debs = sorted(directory.glob("stackha_*_all.deb"))
    assert len(debs) == 1, f"{directory}: {debs}"
    return debs[0]
