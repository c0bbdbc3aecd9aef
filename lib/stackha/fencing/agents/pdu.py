"""fence_stackha_pdu — fencing through an APC-style switched PDU over SSH or telnet (pexpect).

Option names are fence_apc's, legacy aliases included. Outlets by number or by name, on
daisy-chained units by ``switch`` or ``switch:plug``; the firmware version is read whole; SSH
with the client's modern defaults; the password is typed at the device's prompt, never put on a
command line.
"""

from __future__ import annotations

from stackha.fencing import spec as options
from stackha.fencing.agent import FenceAgent
from stackha.fencing.pdu import ApcPdu
from stackha.fencing.spec import FenceAgentSpec, FenceOption

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; the type checker alone needs it
    from stackha.clock import Deadline
    from stackha.ocf.spec import Config

SPEC = FenceAgentSpec(
    name="fence_stackha_pdu",
    shortdesc="Fence agent for APC-style switched PDUs over SSH or telnet",
    longdesc=(
        "fence_stackha_pdu switches the outlets of an APC-style rack PDU (command-line firmware, "
        "AOS v5 or newer) over SSH or telnet. off succeeds only when the PDU reports the outlet "
        "off; reboot is a verified off then on; every exchange with the PDU has a deadline. "
        "Outlets by number or by name. The options are fence_apc's."
    ),
    vendor_url="https://www.apc.com",
    options=(
        options.IP,
        FenceOption(
            "ipport",
            "TCP/UDP port to use for connection with device (default 23, 22 with ssh)",
            type="integer",
            minimum=1,
            maximum=65535,
            short="-u",
            metavar="port",
        ),
        options.USERNAME,
        options.PASSWORD,
        options.PASSWORD_SCRIPT,
        options.PLUG,
        FenceOption(
            "ssh",
            "Use SSH connection",
            type="boolean",
            default=False,
            short="-x",
            aliases=("secure",),
        ),
        FenceOption("ssh_options", "SSH options to use", metavar="options"),
        FenceOption(
            "switch",
            "Physical switch number on device: the display id (1-4) of a daisy-chained unit",
            short="-s",
            metavar="id",
        ),
        FenceOption(
            "cmd_prompt",
            "Force Python regex for command prompt",
            default="apc>",
            short="-c",
            metavar="prompt",
        ),
        *options.COMMON,
    ),
    actions=(
        "on",
        "off",
        "reboot",
        "status",
        "monitor",
        "list",
        "list-status",
        "metadata",
        "manpage",
        "validate-all",
    ),
    example=(
        "pcs stonith create pdu fence_stackha_pdu ip=10.0.0.99 username=apc "
        "password_script='/usr/local/bin/pdu-password' ssh=1 "
        "pcmk_host_map='node1:1;node2:2;node3:3'"
    ),
)


def make_device(config: Config, deadline: Deadline) -> ApcPdu:
    ssh = bool(config.ssh)
    return ApcPdu(
        address=str(config.ip),
        port=int(config.ipport or (22 if ssh else 23)),
        username=str(config.username),
        password=str(config.password),
        ssh=ssh,
        ssh_options=str(config.ssh_options or ""),
        prompt=str(config.cmd_prompt or "apc>"),
        timeout=float(config.shell_timeout or 5),
        unit=str(config.switch) if config.switch else None,
    )


AGENT = FenceAgent(spec=SPEC, make_device=make_device)
