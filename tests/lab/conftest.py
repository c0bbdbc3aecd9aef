from __future__ import annotations

import pytest
from stackha.lab.lab import Lab


@pytest.fixture(scope="module")
def lab(installed, tmp_path_factory):
    """A 3-node lab for the tests of one module, removed afterwards whatever happened."""
    lab = Lab(str(tmp_path_factory.mktemp("lab") / "lab"))
    try:
        lab.up(nodes=3, timeout=120)
        yield lab
    finally:
        lab.down()
