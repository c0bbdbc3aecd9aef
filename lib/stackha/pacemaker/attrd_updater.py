"""``attrd_updater``: node attributes held by pacemaker-attrd.

``private=True`` keeps an attribute out of the CIB entirely (no transition, not in crm_mon):
the right place for an agent's own bookkeeping between calls.
"""

from __future__ import annotations

from stackha.runner import CommandError

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.runner import Runner


TOOL = "/usr/sbin/attrd_updater"
TIMEOUT_S = 10.0


def update(
    runner: Runner,
    name: str,
    value: str,
    *,
    node: Optional[str] = None,
    private: bool = False,
    timeout: float = TIMEOUT_S,
) -> None:
    argv = [TOOL, "--name", name, "--update", value]
    if private:
        argv.append("--private")
    if node:
        argv += ["--node", node]
    runner.run(argv, timeout=timeout, check=True)


def query(
    runner: Runner, name: str, *, node: Optional[str] = None, timeout: float = TIMEOUT_S
) -> Optional[str]:
    """The attribute's value on ``node`` (default local), or None when it has none."""
    argv = [TOOL, "--name", name, "--query"]
    if node:
        argv += ["--node", node]
    result = runner.run(argv, timeout=timeout)
    if not result.ok:
        # Pacemaker 2.1 says "attribute does not exist" (exit 78); others "not found" (105).
        if result.returncode in (78, 105) or "does not exist" in result.stderr:
            return None
        raise CommandError(f"attrd_updater --query {name} failed: {result.output_line()}", result)
    # Output: name="NAME" host="NODE" value="VALUE" (the value may hold spaces: take the rest)
    line = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    start = line.find('value="')
    if start < 0:
        return None
    return line[start + len('value="') :].rstrip('"') or None


def query_all(runner: Runner, name: str, *, timeout: float = TIMEOUT_S) -> dict[str, str]:
    """The attribute's value on every node that has it: {node: value}, in one call."""
    result = runner.run([TOOL, "--name", name, "--query", "--all"], timeout=timeout)
    if not result.ok:
        if result.returncode in (78, 105) or "does not exist" in result.stderr:
            return {}
        raise CommandError(
            f"attrd_updater --query --all {name} failed: {result.output_line()}", result
        )
    values = {}
    for line in result.stdout.splitlines():
        # name="NAME" host="NODE" value="VALUE"
        host_at, value_at = line.find(' host="'), line.find(' value="')
        if host_at < 0 or value_at < 0:
            continue
        host = line[host_at + len(' host="') : value_at].rstrip('"')
        value = line[value_at + len(' value="') :].rstrip().rstrip('"')
        if value:
            values[host] = value
    return values


def delete(
    runner: Runner, name: str, *, node: Optional[str] = None, timeout: float = TIMEOUT_S
) -> None:
    argv = [TOOL, "--name", name, "--delete"]
    if node:
        argv += ["--node", node]
    runner.run(argv, timeout=timeout, check=True)
