from __future__ import annotations

import pytest
from lab_helpers import lab_up
from stackha.lab.lab import Lab


@pytest.fixture(scope="session")
def packaged(installed, stackha_deb):
    """The stackha package, installed once for the whole run (tests/conftest.py); each lab's
    up reinstalls it from this file (or, for nodes of a release, installs it in the lab's
    layer), and its down leaves alone the package it found."""
    return stackha_deb


@pytest.fixture(scope="module")
def lab(packaged, tmp_path_factory):
    """A 3-node lab for the tests of one module, removed afterwards whatever happened."""
    lab = Lab(str(tmp_path_factory.mktemp("lab") / "lab"))
    try:
        lab_up(lab, packaged, nodes=3, timeout=120)
        yield lab
    finally:
        lab.down()
