"""The apply/status/delete tests against a real cluster, where one exists (skipped otherwise).

    kind create cluster --name flotilla         # and the CRDs: see docs/kubernetes.md, "Testing"
    FLOTILLA_KUBE_CONTEXT=kind-flotilla .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/kube/test_real_cluster.py

By default everything but the namespaces is applied as a server-side dry run (the API server
validates and defaults each object, the CRDs' CEL rules included, and stores nothing; the namespaces
are made for real because a dry run cannot create objects in a namespace that does not exist, and
deleted at the end). FLOTILLA_KUBE_APPLY=1 applies everything for real, reads the status back and
deletes everything again.
"""

from __future__ import annotations

import os

import pytest

from flotilla.kube import cluster
from flotilla.kube.cli import render_table
from flotilla.kube.render import Rendering
from flotilla.kube.status import tables

CONTEXT = os.environ.get("FLOTILLA_KUBE_CONTEXT")
pytestmark = pytest.mark.skipif(not CONTEXT, reason="set FLOTILLA_KUBE_CONTEXT to a kubeconfig context")


def test_apply_status_delete_on_a_real_cluster(study_rendering: Rendering) -> None:
    client = cluster.KubeClient.from_kubeconfig(context=CONTEXT)
    objects = study_rendering.objects()
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    real = os.environ.get("FLOTILLA_KUBE_APPLY") == "1"
    try:
        if not real:
            cluster.apply(client, namespaces)
        outcomes = cluster.apply(client, objects, dry_run=not real)
        assert len(outcomes) == len(objects)
        if real:
            shown = tables(cluster.status(client, objects), render_table)
            assert "cluster-queue" in shown and "whisper-transcription-large-0" in shown
    finally:
        cluster.delete(client, objects if real else namespaces)
        client.close()
