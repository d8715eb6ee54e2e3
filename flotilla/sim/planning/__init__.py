"""Cluster planning: `flotilla simulate CLUSTER.yaml WORKLOAD.yaml` (see spec.py and docs/simulator.md)."""
