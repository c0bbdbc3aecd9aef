"""``cibadmin``: read the whole CIB, and replace it or its configuration section.

Every call takes ``cib_file``: Pacemaker's tools then work on that CIB file (the ``CIB_file``
environment variable) instead of the running cluster — a saved CIB edited offline, or a test.
Found with Pacemaker 2.1.5 on such a file: a replace rewrites the file in place and needs
write access to it (on a read-only file cibadmin exits 1 and prints nothing); a change to the
configuration raises ``epoch`` by one, a replace that changes nothing leaves the file alone.
"""

from __future__ import annotations

import re

from stackha.runner import CommandError, CommandTimedOut

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.runner import Result, Runner

TOOL = "/usr/sbin/cibadmin"
# cibadmin gives up on the CIB manager after its own 30 s (--timeout): ours is longer, so its
# message is the one reported.
TIMEOUT_S = 60.0
# CRM_EX_OLD: a whole-CIB replacement whose admin_epoch/epoch/num_updates are older than the
# CIB's ("Update was older than existing configuration").
EXIT_OLD = 103
# The numbered dump of the refused XML cibadmin prints before "Call failed: ..." when an
# update does not validate: noise in a message, and it may hold parameter values.
_DUMP_LINE = re.compile(r"^\s*\d+(\s|$)")


class CibadminError(CommandError):
    """cibadmin failed; the message is cibadmin's own."""


class CibChanged(CibadminError):
    """A whole-CIB replacement was refused because the CIB changed since it was read."""


def _environment(cib_file: Optional[str]) -> Optional[dict[str, str]]:
    return {"CIB_file": cib_file} if cib_file else None


def _message(result: Result, cib_file: Optional[str]) -> str:
    lines = [
        line.strip()
        for line in result.stderr.splitlines()
        if line.strip() and not _DUMP_LINE.match(line)
    ]
    if lines:
        return "; ".join(lines)
    if cib_file:
        return f"exit {result.returncode} without a message (is {cib_file} writable?)"
    return f"exit {result.returncode} without a message"


def _failed(what: str, result: Result, cib_file: Optional[str]) -> CibadminError:
    error = CibChanged if result.returncode == EXIT_OLD else CibadminError
    return error(f"cibadmin {what} failed: {_message(result, cib_file)}", result)


def query(
    runner: Runner,
    *,
    scope: Optional[str] = None,
    cib_file: Optional[str] = None,
    timeout: float = TIMEOUT_S,
) -> str:
    """The whole CIB (configuration and status), or its section ``scope``, as XML text;
    raises CibadminError."""
    argv = [TOOL, "--query", *(["--scope", scope] if scope else [])]
    result = runner.run(argv, timeout=timeout, env=_environment(cib_file))
    if not result.ok:
        raise _failed("--query", result, cib_file)
    return result.stdout


def replace_cib(
    runner: Runner, cib_xml: str, *, cib_file: Optional[str] = None, timeout: float = TIMEOUT_S
) -> None:
    """Replace the whole CIB with ``cib_xml`` (a ``<cib>``) in one transaction.

    The CIB manager compares the ``admin_epoch``, ``epoch`` and ``num_updates`` of ``cib_xml``
    with its own and refuses an older one: pushing the version read with :func:`query` makes
    this a compare-and-swap (raises CibChanged). Any other failure raises CibadminError.
    """
    _replace(runner, [TOOL, "--replace", "--xml-pipe"], cib_xml, cib_file, timeout)


def replace_configuration(
    runner: Runner,
    configuration_xml: str,
    *,
    cib_file: Optional[str] = None,
    timeout: float = TIMEOUT_S,
) -> None:
    """Replace the configuration section with ``configuration_xml`` (a ``<configuration>``)
    in one transaction; raises CibadminError.

    No version check is made (the section carries none), and the result must validate
    against the schema the ``<cib>`` element already names: Pacemaker 2.1.5 refuses
    ``role="Promoted"`` this way on a CIB at pacemaker-3.6 ("Update does not conform to the
    configured schema"). :func:`replace_cib` does both.
    """
    argv = [TOOL, "--replace", "--scope", "configuration", "--xml-pipe"]
    _replace(runner, argv, configuration_xml, cib_file, timeout)


def _replace(
    runner: Runner, argv: list[str], xml: str, cib_file: Optional[str], timeout: float
) -> None:
    try:
        result = runner.run(argv, timeout=timeout, stdin=xml, env=_environment(cib_file))
    except CommandTimedOut as err:
        raise CibadminError(
            f"cibadmin --replace did not finish within {timeout:.0f}s: the change may or may "
            "not have been made (look with cibadmin --query)"
        ) from err
    if not result.ok:
        raise _failed("--replace", result, cib_file)
