"""The one exit point of every OCF agent: read the environment, dispatch the action, report.

An agent's module in ``stackha.agents`` declares an :class:`Agent` (its spec and one handler per
action); its executable in ``agents/`` imports it and ends with
``raise SystemExit(main(AGENT, sys.argv, os.environ))``. Handlers raise
:class:`~stackha.ocf.status.OcfError` subclasses, and let process control's
:class:`~stackha.process.ProcessError` through; ``main()`` alone turns them into an exit code
and an ``ocf-exit-reason:`` line (a ProcessError into OCF_ERR_GENERIC).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from stackha.clock import Deadline, SystemClock
from stackha.ocf.context import Context, read_context
from stackha.ocf.log import AgentLog, one_line
from stackha.ocf.spec import SHOWN_CHARS, AgentSpec, Config, parse_parameters, shown
from stackha.ocf.status import (
    GenericError,
    InvalidArgs,
    NotConfigured,
    NotInstalled,
    NotRunning,
    OcfError,
    OcfStatus,
    Unimplemented,
)
from stackha.process import ProcessError
from stackha.record import Record
from stackha.runner import SubprocessRunner

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, TextIO

    from stackha.clock import Clock
    from stackha.ocf.budget import CheckBudget
    from stackha.runner import Runner


# Actions every agent answers without a handler of its own.
BUILTIN_ACTIONS = ("meta-data", "validate-all", "usage", "help")
# Actions that must check the local environment (binaries, files) before acting.
LOCALLY_VALIDATED = ("start", "validate-all", "reload", "reload-agent", "promote")
# An exit reason names every bad parameter with at most 100 characters of its value; Pacemaker
# shows it in crm_mon's one line per failure, so whatever else a reason holds is cut here.
MAX_REASON_CHARS = 1000


class Call(Record):
    """Everything a handler gets: the context, the typed config, and the seams."""

    __slots__ = ("context", "config", "runner", "log", "clock", "deadline")
    context: Context
    config: Config
    runner: Runner
    log: AgentLog
    clock: Clock
    deadline: Deadline

    def __init__(
        self,
        context: Context,
        config: Config,
        runner: Runner,
        log: AgentLog,
        clock: Clock,
        deadline: Deadline,
    ) -> None:
        self._freeze(locals())

    def binary_available(self, path: str) -> bool:
        """Whether an executable exists; ocf-tester can ask us to pretend none does."""
        if self.context.pretend_binaries_missing:
            return False
        return os.path.isfile(path) and os.access(path, os.X_OK)

    def require_binary(self, path: str) -> None:
        """Raise :class:`NotInstalled` naming ``path`` when it is not an executable."""
        if not self.binary_available(path):
            raise NotInstalled(f"{path} is not installed or not executable")

    def check_budget(
        self, slow_after_s: Optional[float] = None, leave_s: float = 0.0
    ) -> CheckBudget:
        """The time this call's checks of its service may wait, together: the operation's
        timeout less a reserve to report in (:mod:`stackha.ocf.budget`), less ``leave_s`` for
        work after them (a fallback check). Every budget of one call ends at the same moment:
        checks made through several still share one. A wait longer than ``slow_after_s`` is
        logged as a warning."""
        from stackha.ocf.budget import SLOW_AFTER_S, CheckBudget, reserve_s

        return CheckBudget(
            self.deadline.sub(reserve_s(self.context.timeout_s) + leave_s),
            self.log,
            SLOW_AFTER_S if slow_after_s is None else slow_after_s,
        )


if TYPE_CHECKING:
    Handler = Callable[[Call], Optional[int]]


class Agent(Record):
    """An agent: its declaration, one handler per action, and its local validation.

    ``validate`` makes the local checks (a binary present, a file readable) and raises an
    OcfError; it runs before start, reload and validate-all, never before stop or a probe.

    ``leftovers`` is how stop and a probe still tell the truth when their handler cannot work
    with the configuration given (a parameter unset, a user that does not exist): called with
    ``stop=True`` it finds the resource's processes by means that do not depend on every
    parameter (the pid file checked against the program's name, the instance's own
    arguments on its command line — stackha.process.find_instance), stops them, and
    returns their pids; with ``stop=False`` it only finds them. Every agent in ``agents/`` that
    runs a process declares one (tests/unit/test_seams.py).
    """

    __slots__ = ("spec", "handlers", "validate", "leftovers")
    spec: AgentSpec
    handlers: Mapping[str, Handler]
    validate: Optional[Callable[[Call], None]]
    leftovers: Optional[Callable[[Call, bool], list[int]]]

    def __init__(
        self,
        spec: AgentSpec,
        handlers: Mapping[str, Handler],
        validate: Optional[Callable[[Call], None]] = None,
        leftovers: Optional[Callable[[Call, bool], list[int]]] = None,
    ) -> None:
        self._freeze(locals())


def usage(agent: Agent) -> str:
    actions = sorted(set(agent.handlers) | {"meta-data", "validate-all"})
    return f"usage: {agent.spec.name} {{{'|'.join(actions)}}}\n"


def main(
    agent: Agent,
    argv: list[str],
    environ: Mapping[str, str],
    *,
    runner: Optional[Runner] = None,
    clock: Optional[Clock] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """Run one action of ``agent`` and return its OCF exit code. Never raises.

    Whatever goes wrong — reading the environment, logging, meta-data, validate-all, a handler —
    ends in an OCF exit code and exactly one ``ocf-exit-reason:`` line, the last on stderr.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    context: Optional[Context] = None
    log: Optional[AgentLog] = None
    try:
        context = read_context(argv, environ)
        log = AgentLog(
            f"{context.resource_type}({context.instance})",
            facility=context.log_facility,
            log_file=context.log_file,
            debug_log_file=context.debug_log_file,
            debug=context.debug,
            stderr=err,
        )
        for warning in context.warnings:
            log.warning(warning)
        return int(_dispatch(agent, context, log, runner, clock or SystemClock(), out, err))
    except OcfError as error:
        return _fail(agent, context, log, err, error.status, error.reason)
    except ProcessError as error:
        # Process control knows nothing of OCF: a stop that outlived SIGKILL or a wait that ran
        # out is a failed action (OCF_ERR_GENERIC, as GenericError), with its own reason — not
        # an internal error.
        failure = GenericError(str(error))
        return _fail(agent, context, log, err, failure.status, failure.reason)
    except Exception as error:  # noqa: BLE001 - the one place that turns any bug into a reason
        return _fail(agent, context, log, err, OcfStatus.ERR_GENERIC, _internal_error(log, error))


def _internal_error(log: Optional[AgentLog], error: Exception) -> str:
    """The exit reason for a bug: its type and message. The log gets where it was raised and,
    at debug level (HA_debug=1), the traceback, one message per line."""
    import traceback

    # str() of an error can hold a whole parameter value (a 100 KB path): cut it.
    reason = f"internal error: {type(error).__name__}: {one_line(str(error), SHOWN_CHARS)}"
    if log is not None:
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            last = frames[-1]
            where = f"{os.path.basename(last.filename)}:{last.lineno} in {last.name}"
            log.error(f"{reason} (raised at {where}; HA_debug=1 logs the traceback)")
        for chunk in traceback.format_exception(type(error), error, error.__traceback__):
            for line in chunk.rstrip("\n").split("\n"):
                log.debug(line)
    return reason


def _fail(
    agent: Agent,
    context: Optional[Context],
    log: Optional[AgentLog],
    err: TextIO,
    status: int,
    reason: str,
) -> int:
    """Log the failure and write the exit reason. Never raises: it is the last resort."""
    prefix = "ocf-exit-reason:"
    try:
        if context is not None:
            prefix = one_line(context.exit_reason_prefix, MAX_REASON_CHARS)
        if log is None:  # the environment could not even be read: log to stderr only
            log = AgentLog(agent.spec.name, stderr=err)
        reason = one_line(log.mask(reason), MAX_REASON_CHARS)
        action = one_line(context.action, SHOWN_CHARS) if context is not None else ""
        log.error(f"{action or 'no action'} failed ({_status_name(status)}): {reason}")
    except Exception:  # noqa: BLE001 - nothing may stop the exit reason from being written
        reason = one_line(reason, MAX_REASON_CHARS)
    try:
        # The exit reason is the last line on stderr: Pacemaker shows it in crm_mon and pcs
        # status.
        err.write(f"{prefix}{reason}\n")
        err.flush()
    except (OSError, ValueError):
        pass  # no stderr to write to: the exit code must still be returned
    return status


def _status_name(status: int) -> str:
    try:
        return OcfStatus(status).name
    except ValueError:
        return str(status)


def _dispatch(
    agent: Agent,
    context: Context,
    log: AgentLog,
    runner: Optional[Runner],
    clock: Clock,
    out: TextIO,
    err: TextIO,
) -> int:
    action = context.action
    if action == "meta-data":
        # Imported here: the monitor path never pays for building XML.
        from stackha.ocf.metadata import render_metadata

        out.write(render_metadata(agent.spec, context.caller_ocf_version))
        return OcfStatus.SUCCESS
    if action in ("usage", "help", "--help", "-h"):
        out.write(usage(agent))
        return OcfStatus.SUCCESS
    if not action:
        err.write(usage(agent))
        raise InvalidArgs("no action given")
    if action not in agent.handlers and action != "validate-all":
        raise Unimplemented(
            f"action {one_line(action, SHOWN_CHARS)} is not supported by {agent.spec.name}"
        )
    problem = context.instance_problem
    if problem is not None:
        # Not from Pacemaker (an XML ID): the agent would name files and node attributes
        # after it. Refused cleanly, whatever the action.
        raise NotConfigured(f"OCF_RESOURCE_INSTANCE {shown(context.instance)} {problem}")

    parsed = parse_parameters(agent.spec, context.parameters)
    log.add_secrets(parsed.config.secret_values)
    for warning in parsed.warnings:
        log.warning(warning)
    call = Call(
        context=context,
        config=parsed.config,
        runner=runner or SubprocessRunner(log=log.debug, secrets=parsed.config.secret_values),
        log=log,
        clock=clock,
        deadline=Deadline(clock, context.timeout_s),
    )
    lenient = action == "stop" or context.is_probe
    if parsed.problems:
        reason = "; ".join(str(problem) for problem in parsed.problems)
        if not lenient:
            raise NotConfigured(reason)
        # OCF: a configuration problem must never fail a stop (that escalates to fencing) or a
        # probe. Carry on with defaults in place of the bad values: the handler can still find
        # and stop a running service; if it cannot work without the value, see below.
        log.warning(f"{action}: {reason}")
    if action in LOCALLY_VALIDATED and agent.validate is not None:
        agent.validate(call)
    if action == "validate-all":
        return OcfStatus.SUCCESS
    try:
        result = agent.handlers[action](call)
    except (NotConfigured, InvalidArgs, NotInstalled) as error:
        if not lenient:
            raise
        return _unconfigured(agent, call, action, error)
    except NotRunning:
        _none_left(agent, call)
        raise
    if result == OcfStatus.NOT_RUNNING:
        _none_left(agent, call)
    return OcfStatus.SUCCESS if result is None else result


def _none_left(agent: Agent, call: Call) -> None:
    """A monitor about to say 7 asks the agent's ``leftovers`` first: a handler that looked
    only at its pid file (missing, or naming another process) would otherwise say "not running"
    while the instance runs, and Pacemaker would start a second one. Found by the fuzz tier."""
    if agent.leftovers is None:
        return
    found = agent.leftovers(call, False)
    if found:
        pids = ", ".join(str(pid) for pid in found)
        raise GenericError(f"runs here (pid {pids}) though its pid file does not name it")


def _unconfigured(agent: Agent, call: Call, action: str, error: OcfError) -> int:
    """Stop or a probe whose handler could not work with this configuration. Neither may fail
    for a configuration problem (a failed stop escalates to fencing), and neither may lie: a
    stop that says 0 while the service runs lets Pacemaker start it elsewhere — two writers on
    one database. So the agent's ``leftovers`` look for what still runs and stop it."""
    if agent.leftovers is None:
        # An agent without processes of its own (or one that declared none): nothing can run.
        call.log.warning(f"{action}: {error.reason}; nothing can be running here")
        return OcfStatus.SUCCESS if action == "stop" else OcfStatus.NOT_RUNNING
    stopping = action == "stop"
    try:
        found = agent.leftovers(call, stopping)
    # it could not look, or what it found would not stop (process control's ProcessError)
    except (OcfError, ProcessError) as failure:
        raise GenericError(f"{action}: {error.reason}; {failure}") from None
    if not found:
        call.log.warning(f"{action}: {error.reason}; none of its processes runs here")
        return OcfStatus.SUCCESS if stopping else OcfStatus.NOT_RUNNING
    pids = ", ".join(str(pid) for pid in found)
    if stopping:
        call.log.warning(f"stop: {error.reason}; stopped what still ran (pid {pids})")
        return OcfStatus.SUCCESS
    # A probe: it runs, with a configuration this agent cannot work with. Failed, so that
    # Pacemaker stops it (and the stop above finds it) rather than trusting it.
    raise GenericError(f"runs here (pid {pids}) but {error.reason}")
