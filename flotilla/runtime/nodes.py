"""Node registration: the GPU backend's inventory becomes Node objects, as a kubelet and NVIDIA's
GPU operator would publish them (capacity, GPU feature discovery labels, the GPUs themselves).

At start-up every discovered node is created or updated (keeping what others own: health labels
and per-GPU health, injected faults, taints, user labels); nodes this backend published earlier
and no longer discovers (a smaller emulated config) are deleted when no pod is bound to them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flotilla.slicer import load_catalog
from flotilla.slicer.inventory import merge_node, node_object

if TYPE_CHECKING:
    from flotilla.runtime.controller import RuntimeController

BACKEND_LABEL = "flotilla.dev/gpu-backend"
log = logging.getLogger("flotilla.runtime")


def register_nodes(ctl: RuntimeController) -> list[str]:
    """Create or update the backend's nodes; returns their names."""
    catalog = load_catalog()
    names = []
    for inv in ctl.backend.discover():
        fresh = node_object(inv, catalog)
        existing = ctl.objects["Node"].get(inv.name)
        body: dict[str, Any] = merge_node(existing, fresh)
        if existing is None:
            saved = ctl.write("create", "Node", body)
        else:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            saved = ctl.write("update", "Node", body)
            if saved is not None:
                saved = ctl.write("status", "Node", {**saved, "status": body["status"]})
        if saved is None:
            log.error("could not register node %s", inv.name)
        names.append(inv.name)
        log.info("node %s: %s", inv.name, inv.source)
    bound = {(p.get("spec") or {}).get("nodeName") for p in ctl.objects["Pod"].values()}
    for name, node in list(ctl.objects["Node"].items()):
        labels = node["metadata"].get("labels") or {}
        if name not in names and labels.get(BACKEND_LABEL) and name not in bound:
            ctl.delete("Node", name, None)
    return names
