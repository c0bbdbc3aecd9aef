"""fence_stackha_ipmi — fencing through a machine's BMC, IPMI 2.0 over LAN (pyghmi).

Option names are fence_ipmilan's, legacy aliases included: swapping one agent for the other is
one word in `pcs stonith create`. No ipmitool and no password on any command line.
"""

from __future__ import annotations

from stackha.fencing import spec as options
from stackha.fencing.agent import FenceAgent
from stackha.fencing.ipmi import IpmiDevice
from stackha.fencing.options import OptionsError
from stackha.fencing.spec import FenceAgentSpec, FenceOption

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; the type checker alone needs it
    from collections.abc import Mapping

    from stackha.clock import Deadline
    from stackha.ocf.spec import Config

SPEC = FenceAgentSpec(
    name="fence_stackha_ipmi",
    shortdesc="Fence agent for IPMI (pyghmi, IPMI 2.0 over LAN)",
    longdesc=(
        "fence_stackha_ipmi powers a machine off and on through its BMC with IPMI 2.0 (lanplus), "
        "speaking IPMI itself through pyghmi: no ipmitool, no password on any command line. "
        "off succeeds only when the BMC reports the machine off; reboot is a verified off then on; "
        "every call to the BMC has a hard deadline. The options are fence_ipmilan's. Give each "
        "device pcmk_host_list (one node) and a location constraint so no node runs its own."
    ),
    vendor_url="https://www.intel.com/content/www/us/en/products/docs/servers/ipmi/ipmi-home.html",
    options=(
        options.IP,
        FenceOption(
            "ipport",
            "TCP/UDP port to use for connection with device",
            type="integer",
            minimum=1,
            maximum=65535,
            default=623,
            short="-u",
            metavar="port",
        ),
        options.USERNAME,
        options.PASSWORD,
        options.PASSWORD_SCRIPT,
        options.PLUG,
        FenceOption(
            "lanplus",
            "Use Lanplus (IPMI 2.0) to improve security of connection",
            type="boolean",
            default=True,
            short="-P",
        ),
        FenceOption(
            "privlvl",
            "Privilege level on IPMI device",
            type="select",
            default="administrator",
            choices=("callback", "user", "operator", "administrator"),
            short="-L",
            metavar="level",
        ),
        FenceOption(
            "hexadecimal_kg",
            "Hexadecimal-encoded Kg key for IPMIv2 authentication",
            secret=True,
            metavar="key",
        ),
        FenceOption(
            "method",
            "Method to fence",
            type="select",
            default="onoff",
            choices=("onoff", "cycle"),
            short="-m",
            metavar="method",
        ),
        *options.COMMON,
    ),
    actions=("on", "off", "reboot", "status", "monitor", "metadata", "manpage", "validate-all"),
    example=(
        "pcs stonith create fence-node1 fence_stackha_ipmi ip=10.0.0.101 username=admin "
        "password_script='/usr/local/bin/bmc-password node1' lanplus=1 pcmk_host_list=node1"
    ),
)


def make_device(config: Config, deadline: Deadline) -> IpmiDevice:
    if config.lanplus is False:
        raise OptionsError(
            "lanplus=0 asks for IPMI 1.5, which sends credentials unprotected: not supported"
        )
    kg = None
    if config.hexadecimal_kg:
        try:
            kg = bytes.fromhex(str(config.hexadecimal_kg))
        except ValueError:
            raise OptionsError("option hexadecimal_kg: not hexadecimal") from None
    return IpmiDevice(
        address=str(config.ip),
        port=int(config.ipport or 623),
        username=str(config.username),
        password=str(config.password),
        privilege=str(config.privlvl),
        kg=kg,
    )


def validate(config: Config, extra: Mapping[str, str]) -> list[str]:
    """Problems worth a warning: an IPMI device fences one machine, whatever plug it is given."""
    if not extra.get("pcmk_host_list") and not extra.get("pcmk_host_map"):
        return [
            "neither pcmk_host_list nor pcmk_host_map is set: Pacemaker will believe this device "
            "can fence every node (IPMI ignores the plug); set pcmk_host_list=<the node it powers>"
        ]
    return []


AGENT = FenceAgent(spec=SPEC, make_device=make_device, validate=validate)
