"""The one door to external programs.

Every program stackha runs goes through a :class:`Runner`: an argument list (never a shell), a
clean environment with ``LC_ALL=C``, a timeout, and a log line with secrets masked. Tests hand
the code a fake runner that holds the exact commands expected (``tests/fakes.py``).
"""

from __future__ import annotations

import os

from stackha.record import Record

# typing is imported for the type checker only, and subprocess when a command runs: agents
# start fast (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Callable, Optional, Protocol, Union

# The environment every command gets: a fixed PATH so a root agent never runs what an
# operator's shell happened to have first, and LC_ALL=C so output parsing sees English.
BASE_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "LANG": "C",
}


class Result(Record):
    """What a finished command left behind."""

    __slots__ = ("argv", "returncode", "stdout", "stderr")
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __init__(
        self, argv: tuple[str, ...], returncode: int, stdout: str = "", stderr: str = ""
    ) -> None:
        self._freeze(locals())

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def output_line(self) -> str:
        """The most telling single line of output: the last non-empty stderr line, else stdout's."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return ""


class CommandError(Exception):
    """A command could not be run, timed out, or (with ``check=True``) failed."""

    def __init__(self, message: str, result: Optional[Result] = None) -> None:
        super().__init__(message)
        self.result = result


class CommandNotFound(CommandError):
    """The program does not exist or is not executable."""


class CommandTimedOut(CommandError):
    """The program did not finish inside its timeout; it has been killed."""


class Spawn(Record):
    """How to start a long-running process that outlives the call."""

    __slots__ = ("argv", "user", "group", "cwd", "output_path", "env")
    argv: tuple[str, ...]
    user: Optional[str]
    group: Optional[str]
    cwd: str
    output_path: Optional[str]
    env: Mapping[str, str]

    def __init__(
        self,
        argv: tuple[str, ...],
        user: Optional[str] = None,
        group: Optional[str] = None,
        cwd: str = "/",
        output_path: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        env = dict(env or {})
        self._freeze(locals())


if TYPE_CHECKING:

    class Runner(Protocol):
        """Runs external programs."""

        def run(
            self,
            argv: Sequence[str],
            *,
            timeout: float,
            stdin: Optional[str] = None,
            env: Optional[Mapping[str, str]] = None,
            check: bool = False,
        ) -> Result: ...

        def spawn(self, spec: Spawn) -> int: ...


def format_argv(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
    """A loggable rendering of a command line with every secret replaced by ``***``."""
    text = " ".join(argv)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class SubprocessRunner:
    """The real runner.

    ``log`` receives one line per command (already masked); ``secrets`` are masked in it.
    """

    def __init__(
        self,
        log: Optional[Callable[[str], None]] = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self._log = log
        self._secrets = tuple(secrets)

    def _environment(self, extra: Optional[Mapping[str, str]]) -> dict[str, str]:
        environment = dict(BASE_ENV)
        if extra:
            environment.update(extra)
        return environment

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
    ) -> Result:
        import subprocess

        argv = tuple(argv)
        if self._log:
            self._log(f"running: {format_argv(argv, self._secrets)}")
        try:
            completed = subprocess.run(  # noqa: S603 - an argument list, never a shell
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=max(timeout, 0.001),
                env=self._environment(env),
                close_fds=True,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError as err:
            raise CommandNotFound(f"{argv[0]}: not found") from err
        except PermissionError as err:
            raise CommandNotFound(f"{argv[0]}: not executable") from err
        except subprocess.TimeoutExpired as err:
            raise CommandTimedOut(f"{argv[0]} did not finish within {timeout:.0f}s") from err
        result = Result(argv, completed.returncode, completed.stdout, completed.stderr)
        if check and not result.ok:
            raise CommandError(
                f"{argv[0]} failed (exit {result.returncode}): {result.output_line()}", result
            )
        return result

    def spawn(self, spec: Spawn) -> int:
        import subprocess

        group: Optional[Union[str, int]] = spec.group
        if spec.user is not None and group is None:
            # The user's primary group (Debian's nobody is in nogroup, not "nobody").
            import pwd

            try:
                group = pwd.getpwnam(spec.user).pw_gid
            except KeyError as err:
                raise CommandError(f"no such user: {spec.user}") from err
        if self._log:
            self._log(f"starting: {format_argv(spec.argv, self._secrets)}")
        output = (
            open(spec.output_path, "ab")  # noqa: SIM115 - handed to the child, closed below
            if spec.output_path
            else open(os.devnull, "wb")  # noqa: SIM115
        )
        try:
            process = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=spec.cwd,
                env=self._environment(spec.env),
                close_fds=True,
                start_new_session=True,
                user=spec.user,
                group=group,
                # Drop root's supplementary groups when running as another user.
                extra_groups=[] if spec.user else None,
            )
        except FileNotFoundError as err:
            raise CommandNotFound(f"{spec.argv[0]}: not found") from err
        except PermissionError as err:
            raise CommandNotFound(f"{spec.argv[0]}: not executable") from err
        finally:
            output.close()
        pid: int = process.pid
        return pid
