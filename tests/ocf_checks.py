"""How the tests validate an OCF agent's meta-data, the contract tier on this machine's agents
and the package tier inside a root filesystem alike."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
OCF_1_1_RNG = ROOT / "tests" / "schemas" / "ocf-ra-1.1.rng"
# resource-agents' schemas: metadata.rng (its lint schema) and ra-api-1.dtd.
DATADIR = "/usr/share/resource-agents"
# The two OCF 1.1 parameter attributes that resource-agents' lint schema (metadata.rng, written
# for its own agents, none of which uses them) predates. Everything else in our 1.1 meta-data is
# checked against it unchanged; the full 1.1 document is checked against tests/schemas.
NEWER_THAN_METADATA_RNG = ("reloadable", "unique-group")
# What ocf-tester does: xmllint --valid, run in DATADIR, where the DOCTYPE's ra-api-1.dtd is.
XMLLINT_VALID = ("xmllint", "--noout", "--valid", "-")


def assert_valid_ocf_1_1(text: str, datadir: str = DATADIR) -> etree._Element:
    """Meta-data as Pacemaker gets it (it says OCF 1.1): valid OCF 1.1, and valid against
    ``datadir``'s metadata.rng besides the two attributes that schema predates. Returns the
    parsed document."""
    root = etree.fromstring(text.encode())
    assert root.findtext("version") == "1.1"
    schema = etree.RelaxNG(etree.parse(str(OCF_1_1_RNG)))
    assert schema.validate(root), schema.error_log
    lint_copy = etree.fromstring(text.encode())
    for parameter in lint_copy.iter("parameter"):
        for attribute in NEWER_THAN_METADATA_RNG:
            parameter.attrib.pop(attribute, None)
    lint = etree.RelaxNG(etree.parse(f"{datadir}/metadata.rng"))
    assert lint.validate(lint_copy), lint.error_log
    return root
