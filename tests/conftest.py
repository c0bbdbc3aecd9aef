import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent_runs import BASE_ENV, OCF_ROOT, stackha  # noqa: E402
from fakes import FakeClock, FakeRunner  # noqa: E402
from stackha.install import MANIFEST_NAME  # noqa: E402


@pytest.fixture
def fake_runner():
    runner = FakeRunner()
    yield runner
    runner.assert_done()


@pytest.fixture
def fake_clock():
    return FakeClock()


@pytest.fixture(scope="session")
def installed():
    """The agents installed where Pacemaker and pcs look (needs root); removed afterwards
    unless they were installed before the tests ran."""
    had_install = Path(OCF_ROOT, "resource.d", "stackha", MANIFEST_NAME).exists()
    stackha("install", "--ocf-root", OCF_ROOT)
    yield Path(OCF_ROOT, "resource.d", "stackha")
    if not had_install:
        stackha("uninstall", "--ocf-root", OCF_ROOT)


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
