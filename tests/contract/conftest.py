from pathlib import Path

from stackha.install import agent_files

ROOT = Path(__file__).resolve().parents[2]


def pytest_generate_tests(metafunc):
    if "agent_name" in metafunc.fixturenames:
        metafunc.parametrize("agent_name", [p.name for p in agent_files()])
