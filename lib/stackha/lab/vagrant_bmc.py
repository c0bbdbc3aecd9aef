"""Virtual BMCs for the Vagrant lab's VMs, run on the hypervisor.

virtualbmc (built on pyghmi, like the namespace lab's BMC simulator) gives each VM a BMC at the
address the namespace lab gives that node's BMC (.100+i, port 623), on the bridge of the VMs'
libvirt network, and the inventory file has the namespace lab's format: the same fencing
configuration (``fence_ipmilan``/``fence_stackha_ipmi`` per node) works on both labs.

    .venv/bin/pip install virtualbmc          # on the hypervisor, beside libvirt
    .venv/bin/python -m stackha.lab.vagrant_bmc up [--nodes 3] [--subnet 192.168.213.0/24]
    .venv/bin/python -m stackha.lab.vagrant_bmc down

The BMC password never goes on a command line: ``vbmc add`` stores the default one, and this
module writes the real one into virtualbmc's per-domain configuration file before the start.
"""

from __future__ import annotations

import argparse
import configparser
import ipaddress
import json
import os
import secrets
import sys
from pathlib import Path

from stackha.lab.lab import BMC_PORT, BMC_USER, CLUSTER_NAME, DEFAULT_SUBNET, plan
from stackha.lab.namespaces import LabError
from stackha.runner import SubprocessRunner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.runner import Runner

NETWORK = "stackha-lab"  # the libvirt network the Vagrantfile makes
SHARED = Path(__file__).resolve().parents[3] / "vagrant" / ".lab"


def bridge_of(runner: Runner, network: str = NETWORK) -> str:
    """The host bridge of a libvirt network (``virsh net-info``)."""
    result = runner.run(["virsh", "net-info", network], timeout=30)
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Bridge" and value.strip():
            return value.strip()
    raise LabError(f"libvirt network {network} not found: run 'vagrant up' first")


def up(
    runner: Runner,
    nodes: int,
    subnet: str,
    vbmc: str,
    config_dir: Path,
    shared: Path,
    domain_prefix: str = "vagrant_",
    password: Optional[str] = None,
) -> Path:
    """Add and start a virtual BMC per VM; returns the inventory file written."""
    password = password or secrets.token_hex(8)
    prefix = ipaddress.ip_network(subnet).prefixlen
    bridge = bridge_of(runner)
    planned = plan(nodes, subnet)
    for node in planned:
        domain = f"{domain_prefix}{node.name}"
        address = runner.run(
            ["ip", "addr", "add", f"{node.bmc_address}/{prefix}", "dev", bridge], timeout=30
        )
        if not address.ok and "File exists" not in address.stderr:
            raise LabError(f"cannot add {node.bmc_address} to {bridge}: {address.output_line()}")
        runner.run(
            [
                vbmc,
                "add",
                domain,
                "--address",
                node.bmc_address,
                "--port",
                str(BMC_PORT),
                "--username",
                BMC_USER,
                "--libvirt-uri",
                "qemu:///system",
            ],
            timeout=30,
            check=True,
        )
        set_password(config_dir / domain / "config", password)
        runner.run([vbmc, "start", domain], timeout=30, check=True)
    shared.mkdir(mode=0o700, parents=True, exist_ok=True)
    inventory = {
        "cluster_name": CLUSTER_NAME,
        "subnet": subnet,
        "nodes": [
            {
                "name": node.name,
                "address": node.address,
                "bmc": {
                    "address": node.bmc_address,
                    "port": BMC_PORT,
                    "username": BMC_USER,
                    "password": password,
                    "lanplus": True,
                },
            }
            for node in planned
        ],
    }
    path = shared / "inventory.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(inventory, handle, indent=1)
        handle.write("\n")
    return path


def set_password(config: Path, password: str) -> None:
    """Put the BMC password into virtualbmc's stored configuration of one domain."""
    parser = configparser.ConfigParser()
    if not parser.read(config):
        raise LabError(f"virtualbmc configuration {config} not found")
    parser["VirtualBMC"]["password"] = password
    descriptor = os.open(config, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        parser.write(handle)


def down(
    runner: Runner, nodes: int, subnet: str, vbmc: str, domain_prefix: str = "vagrant_"
) -> None:
    """Stop and delete the virtual BMCs and take their addresses off the bridge."""
    prefix = ipaddress.ip_network(subnet).prefixlen
    bridge = bridge_of(runner)
    for node in plan(nodes, subnet):
        domain = f"{domain_prefix}{node.name}"
        runner.run([vbmc, "stop", domain], timeout=30)
        runner.run([vbmc, "delete", domain], timeout=30)
        runner.run(["ip", "addr", "del", f"{node.bmc_address}/{prefix}", "dev", bridge], timeout=30)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stackha.lab.vagrant_bmc")
    parser.add_argument("verb", choices=("up", "down"))
    parser.add_argument("--nodes", type=int, default=3, help="as STACKHA_NODES for vagrant up")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET)
    parser.add_argument("--vbmc", default=str(Path(sys.executable).parent / "vbmc"))
    parser.add_argument("--domain-prefix", default="vagrant_")
    args = parser.parse_args(argv)
    runner = SubprocessRunner()
    try:
        if args.verb == "up":
            config_dir = Path(os.path.expanduser("~/.vbmc"))
            path = up(
                runner, args.nodes, args.subnet, args.vbmc, config_dir, SHARED, args.domain_prefix
            )
            sys.stdout.write(f"virtual BMCs started; inventory: {path}\n")
        else:
            down(runner, args.nodes, args.subnet, args.vbmc, args.domain_prefix)
    except LabError as err:
        sys.stderr.write(f"vagrant_bmc: error: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
