"""fence_stackha_ipmi against OpenIPMI's ipmi_sim: an IPMI implementation independent of the
pyghmi server the lab uses, cross-checked with ipmitool."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time

import pytest

AGENT = "/usr/sbin/fence_stackha_ipmi"
CHASSIS = """#!/usr/bin/python3
# ipmi_sim's chassis_control program: <dev> get power | <dev> set power 0|1 | <dev> check
import sys
state = sys.argv[0] + ".state"
if sys.argv[2:4] == ["get", "power"]:
    print("power:" + open(state).read().strip())
elif sys.argv[2:4] == ["set", "power"]:
    open(state, "w").write(sys.argv[4])
elif sys.argv[2:3] == ["check"]:
    sys.exit(1)
"""


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ipmi_sim(tmp_path):
    """ipmi_sim on loopback with one admin user, its power state in a file."""
    port, password = free_udp_port(), secrets.token_hex(6)
    chassis = tmp_path / "chassis"
    chassis.write_text(CHASSIS)
    chassis.chmod(0o755)
    (tmp_path / "chassis.state").write_text("1")
    (tmp_path / "lan.conf").write_text(f"""name "stackha-test"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{chassis} 0x20"
  user 2 true  "admin" "{password}" admin 10 none md2 md5 straight
""")
    (tmp_path / "sim.emu").write_text(
        "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"
    )
    (tmp_path / "state").mkdir()
    process = subprocess.Popen(
        [
            "ipmi_sim",
            "-c",
            str(tmp_path / "lan.conf"),
            "-f",
            str(tmp_path / "sim.emu"),
            "-s",
            str(tmp_path / "state"),
            "-n",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    yield {"port": port, "password": password, "state": tmp_path / "chassis.state"}
    process.kill()
    process.wait()


def agent(sim, action, password=None, extra=""):
    stdin = (
        f"ip=127.0.0.1\nipport={sim['port']}\nusername=admin\n"
        f"password={password or sim['password']}\naction={action}\n{extra}"
    )
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
