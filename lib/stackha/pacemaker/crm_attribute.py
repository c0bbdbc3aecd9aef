"""``crm_attribute``: node attributes in the CIB and promotion scores.

A node attribute with lifetime ``reboot`` lives in the status section (transient: gone when the
node leaves the cluster), ``forever`` in the nodes section. Both show in ``crm_mon -A``.
"""

from __future__ import annotations

from stackha.runner import CommandError

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.runner import Runner


TOOL = "/usr/sbin/crm_attribute"
TIMEOUT_S = 10.0
# crm_attribute exits with this (CRM_EX_NOSUCH) when a queried attribute does not exist.
EXIT_NO_SUCH = 105


def set_node(
    runner: Runner,
    name: str,
    value: str,
    *,
    node: Optional[str] = None,
    lifetime: str = "reboot",
    timeout: float = TIMEOUT_S,
) -> None:
    """Set node attribute ``name`` (on ``node``, default the local node)."""
    argv = [TOOL, "--lifetime", lifetime, "--name", name, "--update", value]
    if node:
        argv += ["--node", node]
    runner.run(argv, timeout=timeout, check=True)


def get_node(
    runner: Runner,
    name: str,
    *,
    node: Optional[str] = None,
    lifetime: str = "reboot",
    timeout: float = TIMEOUT_S,
) -> Optional[str]:
    """The value of node attribute ``name``, or None when it is not set."""
    argv = [TOOL, "--lifetime", lifetime, "--name", name, "--query", "--quiet"]
    if node:
        argv += ["--node", node]
    result = runner.run(argv, timeout=timeout)
    if result.returncode == EXIT_NO_SUCH:
        return None
    if not result.ok:
        raise CommandError(f"crm_attribute --query {name} failed: {result.output_line()}", result)
    return result.stdout.strip()


def delete_node(
    runner: Runner,
    name: str,
    *,
    node: Optional[str] = None,
    lifetime: str = "reboot",
    timeout: float = TIMEOUT_S,
) -> None:
    """Delete node attribute ``name``; deleting one that is not set succeeds."""
    argv = [TOOL, "--lifetime", lifetime, "--name", name, "--delete"]
    if node:
        argv += ["--node", node]
    runner.run(argv, timeout=timeout, check=True)


def set_promotion_score(
    runner: Runner,
    resource: str,
    score: int,
    *,
    node: Optional[str] = None,
    timeout: float = TIMEOUT_S,
) -> None:
    """Set the promotion score of ``resource`` (without clone suffix) on ``node`` or here."""
    argv = [TOOL, f"--promotion={resource}", "--update", str(score)]
    if node:
        argv += ["--node", node]
    runner.run(argv, timeout=timeout, check=True)


def get_promotion_score(
    runner: Runner, resource: str, *, node: Optional[str] = None, timeout: float = TIMEOUT_S
) -> Optional[int]:
    """The promotion score of ``resource`` on ``node`` or here, or None when it has none."""
    argv = [TOOL, f"--promotion={resource}", "--query", "--quiet"]
    if node:
        argv += ["--node", node]
    result = runner.run(argv, timeout=timeout)
    if result.returncode == EXIT_NO_SUCH or (result.ok and not result.stdout.strip()):
        return None
    if not result.ok:
        raise CommandError(
            f"crm_attribute --promotion={resource} --query failed: {result.output_line()}", result
        )
    text = result.stdout.strip()
    try:
        return int(text)
    except ValueError:
        return None  # INFINITY and the like: not a score this agent set


def delete_promotion_score(
    runner: Runner, resource: str, *, node: Optional[str] = None, timeout: float = TIMEOUT_S
) -> None:
    argv = [TOOL, f"--promotion={resource}", "--delete"]
    if node:
        argv += ["--node", node]
    runner.run(argv, timeout=timeout, check=True)
