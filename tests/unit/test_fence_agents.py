"""The fence agents' own glue: what they refuse and what they warn about."""

import pytest
from stackha.fencing.agents import ipmi as IPMI
from stackha.fencing.agents import pdu as PDU
from stackha.fencing.options import OptionsError, parse

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


class FakeSession:
    """pyghmi's session as _raw sees it: one canned response, or an exception."""

    def __init__(self, response):
        self.response = response

    def raw_command(self, netfn, command, data=()):
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def ipmi_device(response):
    from stackha.fencing.ipmi import IpmiDevice

    device = IpmiDevice("10.0.0.1", 623, "admin", "pw")
    device.session = FakeSession(response)
    return device


@pytest.mark.parametrize(
    "code, error",
    [(0xC0, "Node Busy"), (0xD5, "Command not supported in present state"), (0xFFFF, "timeout")],
)
def test_ipmi_busy_and_timed_out_answers_are_transient(code, error):
    from stackha.fencing.agent import TransientDeviceError

    with pytest.raises(TransientDeviceError, match=error) as raised:
        ipmi_device({"code": code, "error": error}).set_power(None, "on")
    assert not raised.value.session_lost


def test_ipmi_final_answers_and_a_lost_session():
    from pyghmi.exceptions import IpmiException
    from stackha.fencing.agent import TransientDeviceError
    from stackha.fencing.ipmi import IpmiError

    with pytest.raises(IpmiError, match="Insufficient privilege") as raised:
        ipmi_device({"code": 0xD4, "error": "Insufficient privilege level"}).get_power(None)
    assert not isinstance(raised.value, TransientDeviceError)
    with pytest.raises(TransientDeviceError) as raised:
        ipmi_device(IpmiException("Session no longer connected")).get_power(None)
    assert raised.value.session_lost
    assert ipmi_device({"code": 0, "data": [0x01]}).get_power(None) == "on"


def test_pdu_serial_link_lost_is_transient_and_a_bad_command_is_not():
    from stackha.fencing.agent import TransientDeviceError
    from stackha.fencing.pdu import ApcPdu, PduError

    class Connection:
        def __init__(self, reply):
            self.before = reply

        def sendline(self, line):
            pass

        def expect(self, patterns):
            return 0

    pdu = ApcPdu("10.0.0.9", 23, "apc", "pw", ssh=False)
    pdu.connection = Connection("olOn 3\r\nE107: Serial communication with the Rack PDU lost\r\n")
    with pytest.raises(TransientDeviceError, match="E107"):
        pdu.set_power("3", "on")
    pdu.connection = Connection("olOn 3\r\nE102: Parameter Error\r\n")
    with pytest.raises(PduError, match="E102") as raised:
        pdu.set_power("3", "on")
    assert not isinstance(raised.value, TransientDeviceError)
