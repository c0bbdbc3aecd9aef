from __future__ import annotations

import pytest
from stackha.lab import package
from stackha.lab.lab import Lab
from stackha.runner import SubprocessRunner


@pytest.fixture(scope="session")
def packaged(stackha_deb):
    """The stackha package installed with apt, as the lab installs it on its nodes: once for
    the whole run (each lab's up reinstalls it, and its down leaves a package it found), purged
    at the end if it was not installed before."""
    runner = SubprocessRunner()
    installed_here = package.install(runner, stackha_deb)
    yield stackha_deb
    if installed_here:
        package.remove(runner)


@pytest.fixture(scope="module")
def lab(packaged, tmp_path_factory):
    """A 3-node lab for the tests of one module, removed afterwards whatever happened."""
    lab = Lab(str(tmp_path_factory.mktemp("lab") / "lab"))
    try:
        lab.up(nodes=3, timeout=120, deb=str(packaged))
        yield lab
    finally:
        lab.down()
