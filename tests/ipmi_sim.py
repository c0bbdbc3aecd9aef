"""OpenIPMI's ipmi_sim on loopback: an IPMI implementation independent of the pyghmi server the
lab uses, for fence_stackha_ipmi's tests (on this machine, and inside a root filesystem that
shares its network)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def running_ipmi_sim(directory: Path):
    """ipmi_sim on 127.0.0.1 with one admin user, its power state (on) in a file; yields
    its port, the admin's password and the state file."""
    port, password = free_udp_port(), secrets.token_hex(6)
    chassis = directory / "chassis"
    chassis.write_text(CHASSIS)
    chassis.chmod(0o755)
    (directory / "chassis.state").write_text("1")
    (directory / "lan.conf").write_text(f"""name "stackha-test"
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
    (directory / "sim.emu").write_text(
        "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"
    )
    (directory / "state").mkdir()
    process = subprocess.Popen(
        [
            "ipmi_sim",
            "-c",
            str(directory / "lan.conf"),
            "-f",
            str(directory / "sim.emu"),
            "-s",
            str(directory / "state"),
            "-n",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        yield {"port": port, "password": password, "state": directory / "chassis.state"}
    finally:
        process.kill()
        process.wait()


def agent_options(sim, action, password=None, extra=""):
    """fence_stackha_ipmi's options for ``sim`` as fenced passes them: on stdin, the password
    among them (never on a command line)."""
    return (
        f"ip=127.0.0.1\nipport={sim['port']}\nusername=admin\n"
        f"password={password or sim['password']}\naction={action}\n{extra}"
    )
