"""Kubernetes mode: the same objects the embedded platform runs, on a real cluster.

    render      objects -> the manifests a cluster needs (Kueue in v1beta2 or v1beta1, Jobs for DAS,
                vLLM model servers, InferencePools with their endpoint pickers, Gateways and
                HTTPRoutes, the GPU health checker, RBAC, Prometheus monitors, a Containerfile)
    validate    manifests against the Kueue and GAIE CRDs and Kubernetes' own schemas
    cluster     apply (server-side, field manager `flotilla`), status and delete with the
                `kubernetes` client, in dependency order, after checking the CRDs are installed
    exporting   the embedded platform's objects back as manifests (the round trip)
    multikueue  a manager and N workers (AdmissionCheck, MultiKueueConfig, MultiKueueCluster)
    agents      what runs on the cluster: the endpoint picker and the GPU health agent

See docs/kubernetes.md.
"""
