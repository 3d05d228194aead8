"""Which instance of the service answers for which object, when one runs on every node (k8s/fallback's DaemonSet).

An instance started with a node name (``SHAREDVOL_NODE_NAME``, the DaemonSet's pod's ``spec.nodeName``) reaches
only that node's directories, so it provisions and reclaims only the volumes of its node:

- a claim's node is the scheduler's ``volume.kubernetes.io/selected-node`` (WaitForFirstConsumer), else the node
  :func:`storage.provisioner.features.node_for` picks for it (the class's ``node``, or the first Ready node that
  fits), which every instance computes alike; a PV's node is the one its node affinity names;
- what concerns an object before a node is known for it (a claim or class the checks refuse, a PV without the node
  affinity the service writes) is answered by one instance, the one on the first Ready node by name, so each
  Event is posted once, not once per node.

Two instances never make two PVs for one claim: the PV is named ``pvc-<claim uid>``, and the second create is
refused (409). An instance without a node name answers for every object (one service for all nodes).
"""

from __future__ import annotations

from kubernetes.client import CoreV1Api

from storage import nodes
from storage.provisioner import settings as settings_mod


def serves(config: settings_mod.Settings, node: str | None) -> bool:
    """Whether this instance makes or reclaims the volumes of ``node`` (a known node; None: not known)."""
    return not config.node_name or node == config.node_name


def answers_unplaced(core: CoreV1Api, config: settings_mod.Settings) -> bool:
    """Whether this instance answers for an object whose node is not known: it is on the first Ready node by name.

    Raises:
        ApiException: nodes cannot be listed (the caller reports it as the object's failure).
    """
    if not config.node_name:
        return True
    ready = sorted(n.metadata.name for n in nodes.ready(core.list_node().items))
    return not ready or ready[0] == config.node_name
