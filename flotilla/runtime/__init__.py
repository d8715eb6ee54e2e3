"""The local container runtime: pods run as host processes under a small supervisor (no containers).

    env.py      a container's environment and argv, with kubelet's semantics (envFrom, $(VAR), valueFrom)
    sandbox.py  a pod's sandbox directory: volumes and the per-container mount symlinks
    shim.py     the per-container supervisor (like containerd-shim): stdlib only, run as a script
    process.py  ProcessRuntime: start, poll, stop and re-adopt shims; read logs

Keep this file free of imports: modules here are imported by the shim's tests and by the CLI, and
nothing should pull the controller's dependencies in on the way.
"""
