from pathlib import Path

from lxml import etree
from stackha.ocf.metadata import render_metadata
from stackha.ocf.spec import Action, AgentSpec, Parameter

ROOT = Path(__file__).resolve().parents[2]
DTD = Path("/usr/share/resource-agents/ra-api-1.dtd")

SPEC = AgentSpec(
    name="sample",
    version="2.3.4",
    shortdesc='Tricky <text> & "quotes"',
    longdesc="Needs escaping: a < b && c > d",
    parameters=(
        Parameter(
            "mode",
            "m",
            "Mode & more",
            type="select",
            choices=("a", "b"),
            default="a",
            reloadable=True,
        ),
        Parameter("pidfile", "p", "p", unique_group="pid", required=True),
        Parameter("old", "o", "o", replaced_by="mode"),
    ),
    actions=(
        Action("start", 20),
        Action("monitor", 20, interval=10, depth=0),
        Action("monitor", 20, interval=9, role="Promoted"),
        Action("reload-agent", 10),
    ),
)


def parse(text: str) -> etree._Element:
    return etree.fromstring(text.encode())


def test_ocf_1_1_form_for_a_caller_that_speaks_1_1():
    """Pacemaker 2.1 says 1.1: reloadable, unique-group, select, deprecated, reload-agent."""
    root = parse(render_metadata(SPEC, (1, 1)))
    assert root.findtext("version") == "1.1"
    assert root.get("version") == "2.3.4"
    mode = root.find("parameters/parameter[@name='mode']")
    assert mode.get("reloadable") == "1"
    assert [o.get("value") for o in mode.findall("content/option")] == ["a", "b"]
    assert root.find("parameters/parameter[@name='pidfile']").get("unique-group") == "pid"
    old = root.find("parameters/parameter[@name='old']")
    assert old.find("deprecated/replaced-with").get("name") == "mode"
    assert [a.get("name") for a in root.findall("actions/action")][-1] == "reload-agent"
    relaxng = etree.RelaxNG(etree.parse(str(ROOT / "tests/schemas/ocf-ra-1.1.rng")))
    assert relaxng.validate(root), relaxng.error_log


def test_descriptions_are_escaped():
    """Markup characters in descriptions survive as text (ocf.py emits broken XML here)."""
    root = parse(render_metadata(SPEC, (1, 1)))
    assert root.findtext("shortdesc") == 'Tricky <text> & "quotes"'
    assert root.findtext("longdesc") == "Needs escaping: a < b && c > d"


def test_ocf_1_0_form_when_the_caller_says_no_version():
    """ocf-tester sets no version: it gets the DTD form, which its xmllint --valid accepts."""
    text = render_metadata(SPEC, None)
    assert '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">' in text
    root = parse(text)
    assert root.findtext("version") == "1.0"
    mode = root.find("parameters/parameter[@name='mode']")
    assert mode.get("reloadable") is None
    assert mode.find("content").get("type") == "string"
    assert "Allowed values: a, b." in mode.findtext("longdesc")
    assert "reload-agent" not in [a.get("name") for a in root.findall("actions/action")]
    dtd = etree.DTD(str(DTD))
    assert dtd.validate(root), dtd.error_log


def test_ocf_1_0_caller_gets_1_0_form():
    assert "<version>1.0</version>" in render_metadata(SPEC, (1, 0))
