"""stackha.cib.check without Pacemaker: the crm_verify step brings every node up through the
crm_simulate wrapper, and says so when crm_simulate refuses the CIB."""

from cib_builders import cib_xml
from stackha.cib.check import verify_findings


def test_a_cib_crm_simulate_cannot_bring_up_is_the_crm_verify_steps_problem(tmp_path, fake_runner):
    """The nodes are brought up with quorum by one crm_simulate call; its refusal is one
    problem line with crm_simulate's summary and reason, and crm_verify does not run."""
    cib_path = tmp_path / "cib.xml"
    cib_path.write_text(cib_xml())
    fake_runner.expect(
        [
            "/usr/sbin/crm_simulate",
            "--xml-file",
            str(cib_path),
            "--quiet",
            "--output-as=xml",
            "--quorum",
            "true",
            "--node-up",
            "node1",
            "--node-up",
            "compute-0",
            "--save-output",
            str(tmp_path / "nodes-up.xml"),
        ],
        returncode=78,
        stdout='<pacemaker-result><status code="78" message="Invalid configuration"/>'
        "</pacemaker-result>",
        stderr="cib.xml:3: element node: validity error\n",
    )
    problems, notes = verify_findings(fake_runner, cib_path, ["node1", "compute-0"], tmp_path)
    assert (problems, notes) == (
        [
            "bringing the nodes up: crm_simulate refused the CIB (exit 78, Invalid "
            "configuration): cib.xml:3: element node: validity error"
        ],
        [],
    )
