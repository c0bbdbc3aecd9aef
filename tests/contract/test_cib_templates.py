"""Every CIB the templates make, checked by the Pacemaker installed here: its RelaxNG schema,
crm_verify, and crm_simulate scenarios (start-up, each node lost) — and the mistakes check
exists for, caught. No cluster needed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from stackha import cli
from stackha.cib.check import check_cib
from stackha.cib.render import installed_schema, render_cib
from stackha.cib.site import read_site
from stackha.runner import SubprocessRunner

EXAMPLE = (Path(__file__).resolve().parents[2] / "crm-templates" / "site.example.ini").read_text()
ACTIVE_PASSIVE = (
    "\n[service cinder-volume]\nagent = systemd:cinder-volume\n"
    "\n[vip storage]\naddress = 192.0.2.20/24\nnic = eth1\nserves = cinder-volume\n"
)
SITES = {
    "everything in Pacemaker": EXAMPLE,
    "infrastructure only": EXAMPLE.replace("api_services = pacemaker", "api_services = systemd"),
    "every API service on its own node's Galera": EXAMPLE.replace(
        "database_path = haproxy", "database_path = local"
    ).replace("serves = database", "serves = galera"),
    "with an active/passive service": EXAMPLE.replace(
        "neutron-server cinder-api\n",
        "neutron-server cinder-api cinder-volume\n",
    )
    + ACTIVE_PASSIVE,
    "IPMI only, no PDU": EXAMPLE[: EXAMPLE.index("# PDUs:")]
    + EXAMPLE[EXAMPLE.index("# Parameters") :],
    "haproxy and galera on five nodes": "\n".join(
        ["[cluster]", "name = small", "services = haproxy galera", "stonith_enabled = false", ""]
        + [f"[node n{i}]\naddress = 10.1.0.{i}/24\n" for i in range(1, 6)]
        + ["[vip db]\naddress = 10.1.0.100/24\nnic = eth0\nserves = galera\n"]
    ),
}


def steps_of(text):
    return check_cib(text, SubprocessRunner())


@pytest.mark.parametrize("name", list(SITES))
def test_every_composition_passes_every_check(name):
    text = render_cib(read_site(SITES[name], name))
    steps = steps_of(text)
    assert [s.name for s in steps if not s.ok] == [], [s.problems for s in steps]
    names = [s.name for s in steps]
    assert names[:2] == [f"schema {installed_schema()}", "crm_verify"]
    assert "crm_simulate: start-up" in names
    lost = [n for n in names if n.endswith(" lost")]
    assert len(lost) == len(read_site(SITES[name]).nodes)


def test_the_ha_guides_inverted_colocation_is_caught():
    text = render_cib(read_site(EXAMPLE))
    inverted = text.replace(
        'rsc="vip-internal" with-rsc="haproxy-clone"', 'rsc="haproxy-clone" with-rsc="vip-internal"'
    )
    assert inverted != text
    failed = [s for s in steps_of(inverted) if not s.ok]
    assert [s.name for s in failed][0] == "crm_simulate: start-up"
    assert "haproxy-clone runs on" in failed[0].problems[0]
    assert "expected on every online node" in failed[0].problems[0]


def test_a_fence_device_allowed_on_its_own_node_is_caught():
    text = render_cib(read_site(EXAMPLE))
    unguarded = text.replace(
        '<rsc_location id="location-fence-ipmi-ctl2-ctl2--INFINITY" rsc="fence-ipmi-ctl2" '
        'node="ctl2" score="-INFINITY"/>',
        "",
    )
    assert unguarded != text
    problems = [p for s in steps_of(unguarded) for p in s.problems]
    assert any("fence-ipmi-ctl2" in p and "ctl2" in p for p in problems), problems


def test_a_role_name_the_schema_does_not_know_is_caught_by_the_schema_step():
    site = SITES["every API service on its own node's Galera"]  # its write VIP on a Promoted
    text = render_cib(read_site(site)).replace('with-rsc-role="Promoted"', 'with-rsc-role="Leader"')
    steps = steps_of(text)
    assert len(steps) == 1 and not steps[0].ok
    assert "rsc_colocation" in " ".join(steps[0].problems)


def test_what_only_pacemaker_itself_refuses_is_caught_by_crm_verify():
    """Two monitors with one interval: valid for the schema, refused by Pacemaker."""
    text = render_cib(read_site(EXAMPLE)).replace(
        'name="monitor" interval="20s" timeout="30s" role="Unpromoted"',
        'name="monitor" interval="10s" timeout="30s" role="Unpromoted"',
    )
    steps = steps_of(text)
    assert [s.ok for s in steps] == [True, False]
    assert steps[1].problems == [
        "Operation galera-monitor-interval-20s is duplicate of galera-monitor-interval-10s "
        "(do not use same name and interval combination more than once per resource)"
    ]


def run_cli(*argv):
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def test_the_commands_render_then_check(tmp_path, capsys):
    site = tmp_path / "site.ini"
    site.write_text(EXAMPLE)
    cib = tmp_path / "cib.xml"
    assert run_cli("cib", "render", str(site), "-o", str(cib)) == (0, "")
    code, out = run_cli("cib", "check", str(cib))
    assert code == 0, out
    assert out.splitlines()[0] == f"ok    schema {installed_schema()}"
    assert "FAIL" not in out


def test_render_lists_every_problem_of_a_bad_site(tmp_path, capsys):
    site = tmp_path / "site.ini"
    site.write_text(
        EXAMPLE.replace("192.0.2.12/24", "192.0.2.11/24")
        .replace("address = 192.0.2.9/24", "address = 203.0.113.9/24")
        .replace("cinder-api\n", "cinder-api etcd\n", 1)
        .replace("[node ctl3]", "[node ctl4]")
    )
    code, out = run_cli("cib", "render", str(site))
    error = capsys.readouterr().err
    assert (code, out) == (1, "")
    assert "203.0.113.9 is outside every node's subnet" in error
    assert "address 192.0.2.11 is used twice: node ctl1 and node ctl2" in error
    assert "unknown service 'etcd'" in error
    assert "outlet 3 powers node 'ctl3', which has no [node ctl3]" in error
    assert error.count("\n  - ") == 5, error


def test_check_of_a_file_that_is_no_cib_says_so(tmp_path, capsys):
    path = tmp_path / "x.xml"
    path.write_text("<cib/>")
    assert run_cli("cib", "check", str(path))[0] == 1
    assert "is not a CIB" in capsys.readouterr().err
