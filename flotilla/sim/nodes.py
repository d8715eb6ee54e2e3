"""The simulated cluster's nodes: what the node scheduler sees, what pods hold, and an index of free capacity.

Nodes come from the emulated inventory the live runtime registers (`flotilla.slicer.inventory`: the same
labels and allocatable as `node_object`). For each pod the driver asks `candidates(pod)`: the nodes whose
free whole GPUs and MIG placements (indexed, updated when a node changes) and cpu, memory and pod count
could hold it, in kube-scheduler's rotating order, at most `limit` of them. The driver passes their
`NodeInfo`s (cached until the node changes) to the node scheduler (`flotilla.runtime.scheduling`), which
decides with its own filters and scorers, and the slicer's placement policy carves the MIG slices. So the
index only narrows the search: a node it leaves out could not have held the pod.

`bind` takes the pod's requests and devices (a whole GPU is a SlotRange over its 8 slots, as live);
`release` gives them back and bumps `version` (a failed attempt can only succeed after a release).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from flotilla.api.quantity import Quantity
from flotilla.runtime.scheduling import Bound, DeviceAssignment, NodeInfo, PodInfo, canonical_amount
from flotilla.runtime.scheduling.types import GPU_RESOURCE
from flotilla.slicer import GPUState, SlotRange, stable_order
from flotilla.slicer.inventory import NodeInventory, node_object
from flotilla.slicer.profiles import RESOURCE_PREFIX, ProfileCatalog

MIN_FEASIBLE_NODES = 100  # kube-scheduler's minFeasibleNodesToFind


def nodes_to_find(total: int) -> int:
    """kube-scheduler's numFeasibleNodesToFind with the adaptive percentageOfNodesToScore:
    all nodes below 100; else max(100, total x max(5, 50 - total/125) %)."""
    if total < MIN_FEASIBLE_NODES:
        return total
    percentage = max(5, 50 - total // 125)
    return max(MIN_FEASIBLE_NODES, total * percentage // 100)


@dataclass
class SimNode:
    index: int
    name: str
    labels: dict[str, str]
    allocatable: dict[str, int]
    requested: dict[str, int] = field(default_factory=dict)
    pods: int = 0
    gpus: list[GPUState] = field(default_factory=list)
    info: NodeInfo | None = None
    free_gpus: int = 0  # healthy GPUs without any allocation

    def node_info(self) -> NodeInfo:
        if self.info is None:
            self.info = NodeInfo(
                name=self.name,
                labels=self.labels,
                allocatable=self.allocatable,
                requested=dict(self.requested),
                pods=self.pods,
                gpus=tuple(self.gpus),
            )
        return self.info

    def count_free(self) -> int:
        self.free_gpus = sum(1 for g in self.gpus if g.healthy and not g.allocations)
        return self.free_gpus

    def room_for(self, pod: PodInfo) -> bool:
        """cpu, memory, ... and the pod count (NodeResourcesFit's arithmetic, as a pre-check)."""
        limit = self.allocatable.get("pods")
        if limit is not None and self.pods + 1 > limit:
            return False
        return all(
            want <= 0 or self.requested.get(r, 0) + want <= self.allocatable.get(r, 0)
            for r, want in pod.requests.items()
        )


class ClusterState:
    """Nodes, their GPUs and what pods hold, with the free-capacity index (see the module docstring)."""

    def __init__(
        self,
        inventories: Sequence[NodeInventory],
        catalog: ProfileCatalog,
        daemon_requests: dict[str, int] | None = None,
    ) -> None:
        self.catalog = catalog
        self.nodes: list[SimNode] = []
        self.by_name: dict[str, SimNode] = {}
        for i, inv in enumerate(sorted(inventories, key=lambda n: n.name)):
            obj = node_object(inv, catalog)
            allocatable = {
                r: canonical_amount(r, Quantity.parse(q))
                for r, q in obj["status"]["allocatable"].items()
                if r != GPU_RESOURCE and not r.startswith(RESOURCE_PREFIX)
            }
            gpus = [GPUState(g.uuid, inv.name, g.model or "") for g in inv.gpus]
            node = SimNode(i, inv.name, dict(obj["metadata"]["labels"]), allocatable, gpus=list(stable_order(gpus)))
            if daemon_requests:
                node.requested = dict(daemon_requests)
            node.count_free()
            self.nodes.append(node)
            self.by_name[node.name] = node
        self.gpu_count = sum(len(n.gpus) for n in self.nodes)
        self.version = 0  # bumped on every release
        self._whole: set[int] = {n.index for n in self.nodes if n.free_gpus > 0}
        self._mig: dict[str, set[int]] = {}
        self._next_start = 0

    # -- the index ----------------------------------------------------------------------------------
    def _fits(self, node: SimNode, profile: str) -> bool:
        for g in node.gpus:
            slots = self.catalog.slots(g.model, profile)
            if slots is None or not g.healthy or slots.first_start[g.occupied] < 0:
                continue
            if slots.limited and g.count(profile) >= slots.profile.max_instances:
                continue
            return True
        return False

    def _mig_nodes(self, profile: str) -> set[int]:
        nodes = self._mig.get(profile)
        if nodes is None:
            nodes = self._mig[profile] = {n.index for n in self.nodes if self._fits(n, profile)}
        return nodes

    def _reindex(self, node: SimNode) -> None:
        node.info = None
        if node.count_free() > 0:
            self._whole.add(node.index)
        else:
            self._whole.discard(node.index)
        for profile, nodes in self._mig.items():
            if self._fits(node, profile):
                nodes.add(node.index)
            else:
                nodes.discard(node.index)

    def candidates(self, pod: PodInfo, limit: int | None) -> list[SimNode]:
        """Nodes that could hold `pod` (free GPUs/placements, cpu, memory, pods), in kube-scheduler's
        rotating order from where the last search stopped; at most `limit` (None: kube's nodes_to_find)."""
        pool: set[int] | None = None
        if pod.gpus:
            pool = self._whole if pod.gpus == 1 else {i for i in self._whole if self.nodes[i].free_gpus >= pod.gpus}
        for profile in dict.fromkeys(pod.mig):
            nodes = self._mig_nodes(profile)
            pool = nodes if pool is None else pool & nodes
        total = len(self.nodes)
        want = min(limit, total) if limit is not None else nodes_to_find(total)
        if pool is not None and not pool:
            return []
        out: list[SimNode] = []
        if pool is None or len(pool) * 8 >= total:  # dense: walk the nodes from the start index
            for k in range(total):
                i = (self._next_start + k) % total
                if (pool is None or i in pool) and self.nodes[i].room_for(pod):
                    out.append(self.nodes[i])
                    if len(out) >= want:
                        break
        else:  # sparse: walk the pool in node order from the start index
            ordered = sorted(pool)
            first = next((k for k, i in enumerate(ordered) if i >= self._next_start), 0)
            for k in range(len(ordered)):
                node = self.nodes[ordered[(first + k) % len(ordered)]]
                if node.room_for(pod):
                    out.append(node)
                    if len(out) >= want:
                        break
        if out:
            self._next_start = (out[-1].index + 1) % total
        return out

    # -- pods ---------------------------------------------------------------------------------------
    def bind(self, pod: PodInfo, bound: Bound) -> SimNode:
        """The pod takes its requests and its devices (whole GPUs and MIG slices) on `bound.node`."""
        node = self.by_name[bound.node]
        for r, v in pod.requests.items():
            node.requested[r] = node.requested.get(r, 0) + v
        node.pods += 1
        for device in bound.devices:
            i = self._gpu_index(node, device)
            node.gpus[i] = node.gpus[i].with_allocation(SlotRange(device.start, device.size, pod.owner, device.profile))
        self._reindex(node)
        return node

    def release(self, pod: PodInfo, node_name: str) -> None:
        """The pod's requests and devices are free again."""
        node = self.by_name[node_name]
        for r, v in pod.requests.items():
            node.requested[r] = node.requested.get(r, 0) - v
        node.pods -= 1
        owner = pod.owner
        node.gpus = [g.without_owner(owner) if any(a.owner == owner for a in g.allocations) else g for g in node.gpus]
        self.version += 1
        self._reindex(node)

    def set_health(self, node_name: str, gpu_uuid: str, healthy: bool) -> None:
        """A health check's verdict on one GPU: an unhealthy GPU takes no new pods (the node scheduler's
        GPUHealth filter and the slicer skip it); back to healthy, it is capacity again (`version` bumps)."""
        node = self.by_name[node_name]
        node.gpus = [replace(g, healthy=healthy) if g.uuid == gpu_uuid else g for g in node.gpus]
        if healthy:
            self.version += 1
        self._reindex(node)

    def gpu_model(self, node_name: str, gpu_uuid: str) -> str:
        return next(g.model for g in self.by_name[node_name].gpus if g.uuid == gpu_uuid)

    @staticmethod
    def _gpu_index(node: SimNode, device: DeviceAssignment) -> int:
        for i, g in enumerate(node.gpus):
            if g.uuid == device.gpu_uuid:
                return i
        raise KeyError(f"node {node.name} has no GPU {device.gpu_uuid}")
