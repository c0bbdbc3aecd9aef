"""The fence agents' own glue: what they refuse and what they warn about."""

from pathlib import Path

import pytest
from stackha.fencing.options import OptionsError, parse
from stackha.install import load_agent_module

ROOT = Path(__file__).resolve().parents[2]
IPMI = load_agent_module(ROOT / "fence" / "fence_stackha_ipmi")
PDU = load_agent_module(ROOT / "fence" / "fence_stackha_pdu")
BASE = [("ip", "10.0.0.1"), ("username", "admin"), ("password", "pw")]


def test_ipmi_validate_warns_when_nothing_limits_the_nodes_it_claims():
    config = parse(IPMI.SPEC, BASE).config
    (warning,) = IPMI.validate(config, {})
    assert "neither pcmk_host_list nor pcmk_host_map is set" in warning
    assert IPMI.validate(config, {"pcmk_host_list": "node1"}) == []


def test_ipmi_refuses_ipmi_1_5():
    config = parse(IPMI.SPEC, BASE + [("lanplus", "0")]).config
    with pytest.raises(OptionsError, match="lanplus=0 asks for IPMI 1.5"):
        IPMI.make_device(config, None)


def test_ipmi_takes_fence_ipmilans_option_names():
    config = parse(
        IPMI.SPEC,
        [
            ("ipaddr", "10.0.0.1"),
            ("login", "admin"),
            ("passwd", "pw"),
            ("privlvl", "OPERATOR"),
            ("hexadecimal_kg", "0a0b"),
        ],
    ).config
    device = IPMI.make_device(config, None)
    assert (device.address, device.username, device.privilege, device.kg) == (
        "10.0.0.1",
        "admin",
        3,
        b"\x0a\x0b",
    )


def test_pdu_port_follows_the_transport():
    assert PDU.make_device(parse(PDU.SPEC, BASE).config, None).port == 23
    assert PDU.make_device(parse(PDU.SPEC, BASE + [("secure", "1")]).config, None).port == 22
    assert PDU.make_device(parse(PDU.SPEC, BASE + [("ssh", "false")]).config, None).ssh is False


def test_pdu_reads_outlet_lines_with_and_without_a_guest_units_prefix():
    from stackha.fencing.pdu import OUTLET_LINE

    output = " 1: db1: On\n 2:3: web 3: 1: Off\n 4: E000: name: on\n"
    assert OUTLET_LINE.findall(output) == [
        ("1", "db1", "On"),
        ("3", "web 3: 1", "Off"),
        ("4", "E000: name", "on"),
    ]
