"""The power state machine every stackha fence agent shares, and its one exit point.

A device supplies three things — get power, set power, list outlets — through
:class:`Device`. The library does the rest once for every device: ``off`` succeeds only when the
device confirms off, ``reboot`` is a verified off then on, every wait is on a monotonic deadline,
and every device call has a hard deadline of its own (a call that does not return in time is
abandoned in its thread: pyghmi can retry a login forever).

A device tells a failure that may pass (a busy BMC, a call that timed out, a connection refused
or dropped) by raising :class:`TransientDeviceError`; anything else it raises (bad credentials,
an unknown outlet) is final. While it powers a machine off or on, the state machine asks again
after a transient failure — logging in again first when the session was lost — until the
power_timeout deadline of that step, and so for the status reads that verify it. ``status``,
``monitor`` and ``list`` report what they get at once: the fencer and the operator ask again.

Exit codes are fence-agents': 0 success (``status``: on), 2 ``status`` off, 1 anything else,
with a one-line message on stderr. Every line on stderr goes through
:class:`~stackha.fencing.messages.Messages`: one line whatever the input, no secret.
"""

from __future__ import annotations

import sys
import threading
from functools import partial

from stackha.clock import Deadline, SystemClock
from stackha.fencing.messages import Messages, cut
from stackha.fencing.options import OptionsError, parse, read_argv, read_stdin_lines
from stackha.record import Record
from stackha.runner import SubprocessRunner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Callable, Optional, Protocol, TextIO, TypeVar

    from stackha.clock import Clock
    from stackha.fencing.spec import FenceAgentSpec
    from stackha.ocf.spec import Config
    from stackha.runner import Runner

    T = TypeVar("T")

    class Device(Protocol):
        """What a fence device offers. ``plug`` is None on single-port devices (IPMI)."""

        def login(self) -> None: ...

        def get_power(self, plug: Optional[str]) -> str:
            """'on' or 'off'."""

        def set_power(self, plug: Optional[str], state: str) -> None:
            """Ask for 'on' or 'off'; the library verifies."""

        def list_outlets(self) -> Optional[Mapping[str, str]]:
            """Outlet id → name, or None on a single-port device."""

        def logout(self) -> None: ...


EXIT_OK = 0
EXIT_ERROR = 1
EXIT_OFF = 2
STATUS_POLL_S = 0.2
# Between attempts after a transient failure: a busy BMC needs a moment, and a second of
# pause keeps a 20 s power_timeout to some twenty attempts.
RETRY_PAUSE_S = 1.0
LOGOUT_TIMEOUT_S = 2.0
LAST_LOGIN_S = 0.5
FENCING_ACTIONS = ("off", "reboot")
ALL_ACTIONS = (
    "on",
    "off",
    "reboot",
    "status",
    "monitor",
    "list",
    "list-status",
    "metadata",
    "manpage",
    "validate-all",
)


class FenceError(Exception):
    """The action failed; the message is the one line an operator sees."""


class TransientDeviceError(FenceError):
    """The device could not act now but may soon: busy (IPMI Node Busy), a call that timed out,
    a connection refused or dropped. ``session_lost``: log in again before asking again."""

    def __init__(self, message: str, session_lost: bool = False) -> None:
        super().__init__(message)
        self.session_lost = session_lost


class DeviceTimeout(TransientDeviceError):
    """A device call did not return inside its deadline (its session is not to be trusted)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, session_lost=True)


class FenceAgent(Record):
    """An agent: its declaration and how to make its device from the options."""

    __slots__ = ("spec", "make_device", "validate")
    spec: FenceAgentSpec
    make_device: Callable[[Config, Deadline], Device]
    validate: Optional[Callable[[Config, Mapping[str, str]], list[str]]]

    def __init__(
        self,
        spec: FenceAgentSpec,
        make_device: Callable[[Config, Deadline], Device],
        validate: Optional[Callable[[Config, Mapping[str, str]], list[str]]] = None,
    ) -> None:
        self._freeze(locals())


def call_with_deadline(function: Callable[[], T], seconds: float, what: str) -> T:
    """Run ``function`` in a daemon thread; raise DeviceTimeout if it has not returned in time.

    A thread cannot be killed: a call that overruns is abandoned, and the agent exits soon after
    (daemon threads do not hold the process).
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True, name=what)
    thread.start()
    thread.join(max(seconds, 0.0))
    if thread.is_alive():
        raise DeviceTimeout(f"{what}: the device did not answer within {seconds:.1f}s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


class PowerControl:
    """The state machine, over one device, on one clock."""

    def __init__(
        self, device: Device, config: Config, clock: Clock, out: TextIO, messages: Messages
    ) -> None:
        self.device = device
        self.config = config
        self.clock = clock
        self.out = out
        self.messages = messages
        self.call_timeout = float(config.shell_timeout or 5)
        self.login_timeout = float(config.login_timeout or 5)
        self.power_timeout = float(config.power_timeout or 20)
        self.power_wait = float(config.power_wait or 0)
        self._said: set[str] = set()

    def _call(self, function: Callable[[], T], what: str) -> T:
        return call_with_deadline(function, self.call_timeout, what)

    def login(self, deadline: Deadline) -> None:
        """Log in, asking again after a transient failure (no answer, a refused connection, a
        BMC out of sessions) until ``deadline``; bad credentials fail at once."""

        def attempt() -> None:
            try:
                # The last attempt, at the deadline, still gets a moment to answer.
                call_with_deadline(
                    self.device.login, max(deadline.remaining(), LAST_LOGIN_S), "login"
                )
            finally:
                self.say_notes()

        self._patiently(attempt, "login", deadline)

    def say_notes(self) -> None:
        """A device's notes for the log, each once, said as soon as the device has them,
        whatever becomes of the login (fence_stackha_ipmi: pyghmi's AES through the
        cryptography package, not libcrypto's). Devices without ``notes`` have none."""
        notes = getattr(self.device, "notes", None) or []
        while notes:
            self._say_once(notes.pop(0))

    def _patiently(self, attempt: Callable[[], T], what: str, deadline: Deadline) -> T:
        """``attempt()`` (a deadline-bound device call); after a TransientDeviceError, a pause
        and (if the session was lost) a new login, it is asked again until ``deadline``, when
        the last error is raised. Any other error is raised at once."""
        needs_login = False
        attempts = 0
        while True:
            attempts += 1
            try:
                if needs_login:
                    self._login_again(deadline)
                    needs_login = False
                return attempt()
            except TransientDeviceError as error:
                needs_login = needs_login or error.session_lost
                if deadline.expired():
                    if attempts > 1:
                        raise TransientDeviceError(
                            f"{error} (asked {attempts} times in {deadline.seconds:.0f}s)"
                        ) from error
                    raise
                self._say_once(f"{what}: {error}; asking again")
                deadline.sleep(RETRY_PAUSE_S)

    def _login_again(self, deadline: Deadline) -> None:
        try:
            call_with_deadline(self.device.logout, LOGOUT_TIMEOUT_S, "logout")
        except Exception:  # noqa: BLE001 - the session is gone already; a new one follows
            pass
        seconds = min(self.login_timeout, max(deadline.remaining(), 0.1))
        call_with_deadline(self.device.login, seconds, "login")

    def _say_once(self, warning: str) -> None:
        # One line per distinct failure: twenty "Node Busy" lines would bury the outcome.
        if warning not in self._said:
            self._said.add(warning)
            self.messages.warning(warning)

    def plugs(self) -> list[Optional[str]]:
        plug = self.config.get("plug")
        if not plug:
            return [None]
        return [p.strip() for p in str(plug).split(",") if p.strip()]

    def power(self) -> str:
        """'on' if any plug is on (fence-agents' rule for several plugs), else 'off'."""
        states = []
        for plug in self.plugs():
            state = self._call(partial(self.device.get_power, plug), "get power")
            if state not in ("on", "off"):
                raise FenceError(f"the device reports power state {state!r}")
            states.append(state)
        return "on" if "on" in states else "off"

    def _power_patiently(self, deadline: Deadline) -> str:
        return self._patiently(self.power, "get power", deadline)

    def _step_deadline(self) -> Deadline:
        """The deadline of one power step: power_wait, then power_timeout to see it done. The
        command's own transient failures are asked again inside it too."""
        return Deadline(self.clock, self.power_wait + self.power_timeout)

    def switch(self, target: str) -> bool:
        """Set every plug to ``target`` and wait until the device confirms it.

        Returns False when it was already so. Raises FenceError at the step's deadline, or at
        once on a failure that is not transient.
        """
        deadline = self._step_deadline()
        if self._power_patiently(deadline) == target:
            return False
        for plug in self.plugs():
            command = partial(self.device.set_power, plug, target)
            what = f"power {target}"
            self._patiently(partial(self._call, command, what), what, deadline)
        deadline.sleep(self.power_wait)
        self._wait_for(target, deadline)
        return True

    def _wait_for(self, target: str, deadline: Deadline) -> None:
        """Poll until the device reports ``target``; FenceError at ``deadline``."""
        while True:
            if self._power_patiently(deadline) == target:
                return
            if deadline.expired():
                raise FenceError(
                    f"timed out after {deadline.seconds - self.power_wait:.0f}s waiting for "
                    f"power {target.upper()}"
                )
            deadline.sleep(STATUS_POLL_S)

    def run(self, action: str) -> int:
        if action in ("list", "list-status"):
            outlets = self._call(self.device.list_outlets, "list outlets")
            if outlets is None:
                raise FenceError(f"{action}: this device has no outlets to list")
            for number, name in outlets.items():
                if action == "list":
                    self.out.write(f"{number},{name}\n")
                else:
                    state = self._call(partial(self.device.get_power, number), "get power")
                    self.out.write(f"{number},{name},{state.upper()}\n")
            return EXIT_OK
        if action == "monitor":
            if self._call(self.device.list_outlets, "list outlets") is None:
                self.power()
            return EXIT_OK
        if action == "status":
            state = self.power()
            self.out.write(f"Status: {state.upper()}\n")
            return EXIT_OK if state == "on" else EXIT_OFF
        if action in ("on", "off"):
            changed = self.switch(action)
            self.out.write(f"Success: {'Powered' if changed else 'Already'} {action.upper()}\n")
            return EXIT_OK
        if action == "reboot" and self.config.get("method") == "cycle":
            cycle = getattr(self.device, "cycle", None)
            if cycle is None:
                raise FenceError("method=cycle: this device cannot power cycle")
            # One power cycle command: the device never reports the off in between, so only the
            # machine being on again afterwards can be verified (method=onoff verifies both).
            deadline = self._step_deadline()
            for plug in self.plugs():
                attempt = partial(self._call, partial(cycle, plug), "power cycle")
                self._patiently(attempt, "power cycle", deadline)
            deadline.sleep(self.power_wait)
            self._wait_for("on", deadline)
            self.out.write("Success: Rebooted\n")
            return EXIT_OK
        if action == "reboot":
            self.switch("off")
            try:
                self.switch("on")
            except FenceError as error:
                # The node is off: fenced. Failing here would make Pacemaker retry a fencing
                # that has already succeeded and block recovery; say what happened instead
                # (fence-agents does the same). A busy or refused power-on was asked again
                # until power_timeout before this.
                self.messages.warning(f"powered off, but not back on: {error}")
            self.out.write("Success: Rebooted\n")
            return EXIT_OK
        raise FenceError(f"unknown action {action}")


def main(
    agent: FenceAgent,
    argv: list[str],
    stdin: TextIO,
    *,
    runner: Optional[Runner] = None,
    clock: Optional[Clock] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """Run the agent once; returns the exit code. Never raises."""
    out = stdout if stdout is not None else sys.stdout
    messages = Messages(stderr if stderr is not None else sys.stderr)
    clock = clock or SystemClock()

    def fail(message: str) -> int:
        messages.error(message)
        return EXIT_ERROR

    try:
        spec = agent.spec
        arguments = argv[1:]
        if arguments in (["-h"], ["--help"]):
            out.write(usage(spec))
            return EXIT_OK
        pairs = read_argv(spec, arguments) if arguments else read_stdin_lines(stdin)
        action = dict((k.replace("-", "_"), v) for k, v in pairs).get("action", "")
        action = (action or str(spec.option("action").default)).strip().lower()
        if action == "meta-data":
            action = "metadata"
        if action == "metadata":
            from stackha.fencing.metadata import render_metadata

            out.write(render_metadata(spec))
            return EXIT_OK
        if action == "manpage":
            from stackha import __version__
            from stackha.fencing.manpage import fence_page
            from stackha.manpage import render

            out.write(render(fence_page(spec), __version__))
            return EXIT_OK
        if action not in spec.actions:
            return fail(f"unknown action {cut(action)} (one of: {', '.join(spec.actions)})")
        # Secrets are masked from here on, even in a message about a bad option.
        messages.secrets.extend(value for name, value in pairs if value and _is_secret(spec, name))
        runner = runner or SubprocessRunner()
        parsed = parse(spec, pairs, runner)
        messages.secrets.extend(parsed.config.secret_values)
        for warning in parsed.warnings:
            messages.warning(warning)
        if action == "validate-all":
            for warning in agent.validate(parsed.config, parsed.extra) if agent.validate else []:
                messages.warning(warning)
            # Building the device checks its settings (lanplus, kg, a chain unit) without
            # contacting it: a device that could never be used fails validation.
            agent.make_device(parsed.config, Deadline(clock, 0.0))
            return EXIT_OK
        if action in FENCING_ACTIONS:
            clock.sleep(float(parsed.config.delay or 0))
        login_deadline = Deadline(clock, float(parsed.config.login_timeout or 5))
        device = agent.make_device(parsed.config, login_deadline)
        control = PowerControl(device, parsed.config, clock, out, messages)
        control.login(login_deadline)
        try:
            return control.run(action)
        finally:
            try:
                call_with_deadline(device.logout, 2.0, "logout")
            except Exception:  # noqa: BLE001 - logging out is best effort once the action ran
                pass
    except (OptionsError, FenceError) as error:
        return fail(str(error))
    except Exception as error:  # noqa: BLE001 - the one place that turns any failure into a message
        return fail(f"{type(error).__name__}: {error}")


def _is_secret(spec: FenceAgentSpec, name: str) -> bool:
    try:
        return spec.option(name).secret
    except KeyError:
        return False


def usage(spec: FenceAgentSpec) -> str:
    lines = [
        f"Usage: {spec.name} [options]   (or key=value lines on stdin)",
        "",
        spec.shortdesc,
        "",
    ]
    for option in spec.options:
        names = (f"{option.short}, " if option.short else "    ") + option.long
        if option.type != "boolean":
            names += f"=[{option.metavar or option.name}]"
        lines.append(f"  {names:36} {option.shortdesc}")
    lines += ["", f"Actions: {', '.join(spec.actions)}", ""]
    return "\n".join(lines)
