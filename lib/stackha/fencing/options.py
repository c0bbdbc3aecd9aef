"""Reading a fence agent's options: ``key=value`` lines on stdin (what pacemaker-fenced sends)
or long options on the command line (what people type). With any argument on the command line,
stdin is not read — as in fence-agents."""

from __future__ import annotations

from stackha.fencing.messages import cut, quoted
from stackha.ocf.spec import Config
from stackha.record import Record
from stackha.runner import CommandError, CommandNotFound, CommandTimedOut

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Optional

    from stackha.fencing.spec import FenceAgentSpec
    from stackha.runner import Runner

# Parameters the fencer, pcs or an operator may pass that are not the agent's to act on:
# nodename (the target, sent by pacemaker-fenced), and pcmk_* (which pcs passes to validate-all).
QUIET_PREFIXES = ("pcmk_",)
QUIET_NAMES = ("nodename",)
# The password_script's budget when the agent has no login_timeout (every stackha agent has).
LOGIN_TIMEOUT_S = 5.0


class OptionsError(Exception):
    """Options that cannot be used; the message names every problem."""


class Parsed(Record):
    __slots__ = ("config", "warnings", "extra")
    config: Config
    warnings: tuple[str, ...]
    extra: Mapping[str, str]  # nodename, pcmk_*: kept for validate-all and logging

    def __init__(self, config: Config, warnings: tuple[str, ...], extra: Mapping[str, str]) -> None:
        self._freeze(locals())


def read_stdin_lines(lines: Iterable[str]) -> list[tuple[str, str]]:
    """``name=value`` pairs; blank lines and ``#`` comments skipped, one pair of quotes stripped."""
    pairs = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        pairs.append((name.strip(), value))
    return pairs


def read_argv(spec: FenceAgentSpec, argv: Sequence[str]) -> list[tuple[str, str]]:
    """``--name value``, ``--name=value``, ``-x value``; a boolean given alone means true."""
    shorts = {o.short: o for o in spec.options if o.short}
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word.startswith("--"):
            name, has_value, value = word[2:].partition("=")
            try:
                option = spec.option(name)
            except KeyError:
                raise OptionsError(f"unknown option {quoted('--' + name)}") from None
        elif word in shorts:
            option, has_value, value = shorts[word], "", ""
            name = option.name
        else:
            raise OptionsError(f"unexpected argument {quoted(word)} (options are --name=value)")
        if not has_value:
            if option.type == "boolean":
                value = "1"
            elif index < len(argv):
                value = argv[index]
                index += 1
            else:
                raise OptionsError(f"option {quoted(word)} needs a value")
        pairs.append((name, value))
    return pairs


def parse(
    spec: FenceAgentSpec,
    pairs: Sequence[tuple[str, str]],
    runner: Optional[Runner] = None,
    require: bool = True,
) -> Parsed:
    """Typed options from ``pairs``. Raises OptionsError listing every problem at once.

    Legacy names map to their option; ``-`` and ``_`` are alike. ``password_script`` is run
    (without a shell) when no password is given, with ``login_timeout`` to print it. With
    ``require=False`` missing required options are not problems (meta-data and help need none).
    """
    raw: dict[str, str] = {}
    warnings: list[str] = []
    extra: dict[str, str] = {}
    for name, value in pairs:
        key = name.replace("-", "_")
        if key in QUIET_NAMES or key.startswith(QUIET_PREFIXES):
            extra[key] = value
            continue
        try:
            raw[spec.option(key).name] = value
        except KeyError:
            warnings.append(f"ignoring unknown option {cut(name)}")
    values: dict[str, object] = {}
    problems: list[str] = []
    for option in spec.options:
        text = raw.get(option.name, "")
        if text == "":
            values[option.name] = option.default
            continue
        try:
            values[option.name] = option.convert(text)
        except ValueError as err:
            problems.append(
                f"option {option.name}: " + ("has an invalid value" if option.secret else str(err))
            )
    names = {o.name for o in spec.options}
    if "password" in names and not values.get("password") and values.get("password_script"):
        try:
            # The script is the first step of logging in: it gets the login's budget (a
            # vault that does not answer must not hold a fencing action for long).
            budget = values.get("login_timeout") or LOGIN_TIMEOUT_S
            script = str(values["password_script"])
            values["password"] = run_password_script(runner, script, float(budget))  # type: ignore[arg-type]
        except OptionsError as err:
            problems.append(str(err))
    if require:
        for option in spec.options:
            if option.required and values.get(option.name) in (None, ""):
                problems.append(f"option {option.name} is required but not set")
        # A password_script that failed has said why already.
        if "password" in names and not values.get("password") and not values.get("password_script"):
            problems.append("a password (password or password_script) is required")
    if problems:
        raise OptionsError("; ".join(problems))
    secrets = [o.name for o in spec.options if o.secret]
    config = Config(values, secrets)  # type: ignore[arg-type]
    return Parsed(config, tuple(warnings), extra)


def run_password_script(runner: Optional[Runner], script: str, timeout: float) -> str:
    """The first line the script prints. Run as an argument list: no shell ever sees it.

    A script that does not finish within ``timeout`` seconds is killed. Raises OptionsError;
    its message never holds what the script printed (a failing script may have printed the
    password, or a part of it, on either stream), only its exit status and how much it printed.
    """
    if runner is None:
        raise OptionsError("password_script given but nothing can run it")
    import shlex  # only here: 3 ms of every fencing call otherwise

    try:
        argv = shlex.split(script)
    except ValueError as err:
        raise OptionsError(f"password_script cannot be split into words: {err}") from None
    if not argv:
        raise OptionsError("password_script is empty")
    name = f"password_script {cut(argv[0])}"
    try:
        result = runner.run(argv, timeout=timeout)
    except CommandTimedOut:
        raise OptionsError(
            f"{name} did not finish within {timeout:g}s (login_timeout): killed"
        ) from None
    except CommandNotFound:
        raise OptionsError(f"{name}: not found or not executable") from None
    except CommandError:
        raise OptionsError(f"{name} could not be run") from None
    if not result.ok:
        raise OptionsError(
            f"{name} failed (exit {result.returncode}); what it printed "
            f"({_lines(result.stdout)} on stdout, {_lines(result.stderr)} on stderr) is not "
            "shown: it may hold the password"
        )
    lines = result.stdout.splitlines()
    if not lines or not lines[0]:
        raise OptionsError(f"{name} printed no password on its first line")
    return lines[0]


def _lines(text: str) -> str:
    count = len(text.splitlines())
    return f"{count} line" if count == 1 else f"{count} lines"
