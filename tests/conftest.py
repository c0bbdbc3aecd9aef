import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes import FakeClock, FakeRunner  # noqa: E402


@pytest.fixture
def fake_runner():
    runner = FakeRunner()
    yield runner
    runner.assert_done()


@pytest.fixture
def fake_clock():
    return FakeClock()
