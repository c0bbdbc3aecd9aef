"""``crm_verify``: what Pacemaker itself finds wrong with a CIB, line by line, sorted into
errors and warnings."""

from __future__ import annotations

import re
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stackha.runner import Runner

TOOL = "/usr/sbin/crm_verify"
TIMEOUT_S = 60.0
# Twice --verbose: once lists the errors, twice the warnings too (Pacemaker 2.1.5; without it
# crm_verify says only "Errors found during check"). The CIB comes on stdin: no file to clean up.
ARGV = (TOOL, "--verbose", "--verbose", "--xml-pipe")
# crm_verify prefixes each log line with its level, and Pacemaker 2.1 also with the function
# that logged it: "(unpack_resources) \terror: ..."; Pacemaker 3.0 mostly "error: ...".
_LOG_PREFIX = re.compile(r"^(?:\([A-Za-z0-9_]+\)\s+)?(?:(?:error|warning):\s*)?")
# Its closing summary, not a finding: "crm_verify: Errors found during check: config not
# valid" (2.1), "Configuration invalid (with errors)" / "(with warnings)" (3.0).
_SUMMARY = re.compile(r"^(?:crm_verify:|-V may provide|Configuration invalid \(with )")


@dataclass(frozen=True)
class Findings:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    others: tuple[str, ...]  # lines of neither kind (libxml2's schema messages)
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not (self.errors or self.warnings or self.others)


def parse_output(stderr: str, stdout: str, returncode: int) -> Findings:
    """Each line once (schema errors come twice), without crm_verify's logger prefix and
    without its closing summary."""
    found: dict[str, list[str]] = {"errors": [], "warnings": [], "others": []}
    for raw in (stderr + "\n" + stdout).splitlines():
        line = " ".join(raw.split())
        if not line or _SUMMARY.match(line):
            continue
        if "error:" in line or "error :" in line:
            kind = "errors"
        elif "warning:" in line:
            kind = "warnings"
        else:
            kind = "others"
        line = _LOG_PREFIX.sub("", line)
        if line not in found[kind]:
            found[kind].append(line)
    return Findings(
        tuple(found["errors"]), tuple(found["warnings"]), tuple(found["others"]), returncode
    )


def verify_xml(runner: Runner, cib_text: str, timeout: float = TIMEOUT_S) -> Findings:
    """crm_verify's findings on ``cib_text``; CommandError when it cannot run. It exits 78 on
    warnings alone as well."""
    result = runner.run(list(ARGV), timeout=timeout, stdin=cib_text)
    return parse_output(result.stderr, result.stdout, result.returncode)
