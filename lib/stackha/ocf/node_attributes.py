"""Node attributes an agent shares with its peers, and its promotion score.

Under Pacemaker they are transient node attributes in pacemaker-attrd (shown by ``crm_mon -A``,
gone when a node leaves the cluster) and the score is the resource's promotion score.

Outside a cluster — ``ocf-tester``, an operator trying an agent by hand — there are no peers
and no attribute daemon. Pacemaker passes ``OCF_RESKEY_crm_feature_set`` to every action it
runs; without it the agent runs standalone and keeps its attributes in a file under
``HA_RSCTMP``, so that every action can still be exercised on one node (resource-agents'
galera agent cannot run outside a live cluster at all).
"""

from __future__ import annotations

import json
import os

from stackha.pacemaker import attrd_updater, crm_attribute

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

    from stackha.ocf.context import Context
    from stackha.runner import Runner


class ClusterAttributes:
    """Transient node attributes through pacemaker-attrd; the score through crm_attribute."""

    def __init__(self, runner: Runner, resource: str, timeout: float = 10.0) -> None:
        self.runner = runner
        self.resource = resource
        self.timeout = timeout

    def everywhere(self, name: str) -> dict[str, str]:
        return attrd_updater.query_all(self.runner, name, timeout=self.timeout)

    def set(self, name: str, value: str) -> None:
        attrd_updater.update(self.runner, name, value, timeout=self.timeout)

    def delete(self, name: str) -> None:
        attrd_updater.delete(self.runner, name, timeout=self.timeout)

    def promotion_score(self) -> Optional[int]:
        return crm_attribute.get_promotion_score(self.runner, self.resource, timeout=self.timeout)

    def set_promotion_score(self, score: int) -> None:
        crm_attribute.set_promotion_score(self.runner, self.resource, score, timeout=self.timeout)

    def delete_promotion_score(self) -> None:
        crm_attribute.delete_promotion_score(self.runner, self.resource, timeout=self.timeout)


class StandaloneAttributes:
    """One node, no cluster: attributes in a JSON file that only this node reads."""

    def __init__(self, path: str, node: str) -> None:
        self.path = path
        self.node = node

    def _load(self) -> dict[str, str]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self, values: dict[str, str]) -> None:
        if not values:  # nothing reported: leave no file behind
            if os.path.exists(self.path):
                os.unlink(self.path)
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        temporary = f"{self.path}.new"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(values, handle)
        os.replace(temporary, self.path)

    def everywhere(self, name: str) -> dict[str, str]:
        value = self._load().get(name)
        return {self.node: value} if value else {}

    def set(self, name: str, value: str) -> None:
        values = self._load()
        values[name] = value
        self._save(values)

    def delete(self, name: str) -> None:
        values = self._load()
        if values.pop(name, None) is not None:
            self._save(values)

    def promotion_score(self) -> Optional[int]:
        value = self._load().get("#promotion-score")
        return int(value) if value else None

    def set_promotion_score(self, score: int) -> None:
        self.set("#promotion-score", str(score))

    def delete_promotion_score(self) -> None:
        self.delete("#promotion-score")


if TYPE_CHECKING:
    NodeAttributes = Union[ClusterAttributes, StandaloneAttributes]


def under_pacemaker(context: Context) -> bool:
    """Pacemaker sets OCF_RESKEY_crm_feature_set for every action it runs."""
    return bool(context.parameters.get("crm_feature_set"))


def local_node(context: Context) -> str:
    """This node's name as Pacemaker knows it (its uname when Pacemaker does not say)."""
    return context.node or os.uname().nodename


def node_attributes(context: Context, runner: Runner) -> NodeAttributes:
    if under_pacemaker(context):
        return ClusterAttributes(runner, context.resource_name)
    return StandaloneAttributes(
        f"{context.rsctmp}/stackha-{context.resource_name}.attributes.json", local_node(context)
    )
