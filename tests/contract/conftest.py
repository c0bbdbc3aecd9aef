from pathlib import Path

import pytest
from sandboxes import SANDBOXES, SHARED
from stackha.install import agent_files

ROOT = Path(__file__).resolve().parents[2]


def pytest_generate_tests(metafunc):
    if "agent_name" in metafunc.fixturenames:
        metafunc.parametrize("agent_name", [p.name for p in agent_files()])


@pytest.fixture
def sandbox(agent_name, tmp_path):
    """Parameters under which the agent really runs here (see sandboxes.py); what the sandbox
    started is stopped afterwards."""
    if agent_name not in SANDBOXES:
        pytest.fail(f"add a sandbox for {agent_name} to tests/contract/sandboxes.py")
    with SANDBOXES[agent_name](tmp_path) as parameters:
        yield parameters


@pytest.fixture(scope="session", autouse=True)
def shared_openstack():
    """The MariaDB, keystone and API services the sandboxes share, stopped at the end."""
    yield SHARED
    SHARED.close()
