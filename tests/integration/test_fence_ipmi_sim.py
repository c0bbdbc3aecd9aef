"""fence_stackha_ipmi against OpenIPMI's ipmi_sim: an IPMI implementation independent of the
pyghmi server the lab uses, cross-checked with ipmitool."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from ipmi_sim import agent_options, running_ipmi_sim

AGENT = "/usr/sbin/fence_stackha_ipmi"


@pytest.fixture
def ipmi_sim(tmp_path):
    """ipmi_sim on loopback with one admin user, its power state in a file."""
    with running_ipmi_sim(tmp_path) as sim:
        yield sim


def agent(sim, action, password=None, extra=""):
    stdin = agent_options(sim, action, password, extra)
    return subprocess.run([AGENT], input=stdin, capture_output=True, text=True, timeout=60)


def ipmitool(sim, *command):
    return subprocess.run(
        [
            "ipmitool",
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            "127.0.0.1",
            "-p",
            str(sim["port"]),
            "-U",
            "admin",
            "-E",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "IPMI_PASSWORD": sim["password"]},
    )


def test_our_agent_and_ipmitool_agree_on_ipmi_sim(installed, ipmi_sim):
    assert agent(ipmi_sim, "status").stdout == "Status: ON\n"
    result = agent(ipmi_sim, "off")
    assert (result.returncode, result.stdout) == (0, "Success: Powered OFF\n"), result.stderr
    assert ipmi_sim["state"].read_text().strip() == "0"
    assert ipmitool(ipmi_sim, "chassis", "power", "status").stdout.strip() == "Chassis Power is off"
    assert ipmitool(ipmi_sim, "chassis", "power", "on").returncode == 0
    assert (agent(ipmi_sim, "status").returncode, ipmi_sim["state"].read_text().strip()) == (0, "1")


def test_a_verified_reboot_on_ipmi_sim(installed, ipmi_sim):
    result = agent(ipmi_sim, "reboot")
    assert (result.returncode, result.stdout) == (0, "Success: Rebooted\n"), result.stderr
    assert ipmi_sim["state"].read_text().strip() == "1"


def test_a_wrong_password_on_ipmi_sim_fails_inside_the_login_timeout(installed, ipmi_sim):
    """ipmi_sim drops a wrong login silently: only our own deadline ends the wait."""
    started = time.monotonic()
    result = agent(ipmi_sim, "status", password="wrong", extra="login_timeout=3\n")
    assert result.returncode == 1
    assert time.monotonic() - started < 6
