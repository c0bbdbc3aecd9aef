"""OCF exit codes and the errors that carry them.

Library code raises one of these; only the agent's ``main()`` turns it into an exit code and an
``ocf-exit-reason:`` line.
"""

from __future__ import annotations

from enum import IntEnum


class OcfStatus(IntEnum):
    """OCF 1.1 exit codes (Pacemaker's ``enum ocf_exitcode``)."""

    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_PROMOTED = 8
    FAILED_PROMOTED = 9
    DEGRADED = 190
    DEGRADED_PROMOTED = 191
    # The names resource-agents' shell library still uses.
    RUNNING_MASTER = 8
    FAILED_MASTER = 9


class OcfError(Exception):
    """An action failed; ``status`` is the exit code and the message the one-line reason."""

    status: OcfStatus = OcfStatus.ERR_GENERIC

    def __init__(self, reason: str) -> None:
        # An exit reason is one line: Pacemaker shows it verbatim in crm_mon.
        super().__init__(" ".join(reason.split()))

    @property
    def reason(self) -> str:
        return str(self)


class GenericError(OcfError):
    status = OcfStatus.ERR_GENERIC


class InvalidArgs(OcfError):
    """Valid parameters that do not work on this node (a file missing here): a local, hard error."""

    status = OcfStatus.ERR_ARGS


class Unimplemented(OcfError):
    status = OcfStatus.ERR_UNIMPLEMENTED


class InsufficientPrivileges(OcfError):
    status = OcfStatus.ERR_PERM


class NotInstalled(OcfError):
    status = OcfStatus.ERR_INSTALLED


class NotConfigured(OcfError):
    """The parameters themselves are wrong: Pacemaker stops the resource everywhere."""

    status = OcfStatus.ERR_CONFIGURED


class NotRunning(OcfError):
    status = OcfStatus.NOT_RUNNING


class FailedPromoted(OcfError):
    status = OcfStatus.FAILED_PROMOTED
