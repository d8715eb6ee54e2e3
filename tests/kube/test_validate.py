"""Validation against the official CRD schemas (read in place from shared/reference) and Kubernetes'
own schemas: every rendered object passes; a table of broken objects is caught, each problem named
by file, document, object, field path and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flotilla.api.registry import Registry
from flotilla.cli import app
from flotilla.kube import schemas
from flotilla.kube.multikueue import ClusterList, Worker
from flotilla.kube.options import RenderOptions
from flotilla.kube.render import Rendering, render
from flotilla.kube.validate import Validator
from tests.kube.conftest import STUDY, study_objects


def _validate(validator: Validator, rendering: Rendering) -> None:
    report = validator.validate_sources(
        (path, text) for path, text in rendering.files().items() if path.endswith(".yaml")
    )
    assert report.errors == [], "\n".join(str(e) for e in report.errors)
    checked = " ".join(report.checked)
    for crd in ("clusterqueues", "localqueues", "resourceflavors", "inferencepools"):
        assert f"CRD {crd}." in checked
    for kind in ("Job", "Deployment", "DaemonSet", "Service", "ClusterRole", "RoleBinding", "ServiceAccount"):
        assert f"schema of {kind} " in checked
    # No CRD at hand for the Prometheus Operator's kinds: listed, not silently passed.
    assert report.unchecked and all("PodMonitor" in u or "ServiceMonitor" in u for u in report.unchecked)


@pytest.mark.parametrize("picker", ["flotilla", "llm-d"])
@pytest.mark.parametrize("kueue_version", ["v1beta2", "v1beta1"])
def test_every_rendered_object_is_valid(
    validator: Validator, kube_registry: Registry, picker: str, kueue_version: str
) -> None:
    options = RenderOptions(picker=picker, kueue_version=kueue_version)  # type: ignore[arg-type]
    clusters = ClusterList(workers=[Worker(name="eu", kubeconfigSecret="eu"), Worker(name="us", kubeconfigSecret="us")])
    _validate(validator, render(study_objects(kube_registry), options, kube_registry, clusters))


def test_a_rendered_pipeline_is_valid(validator: Validator, kube_registry: Registry) -> None:
    from flotilla.api.loader import load_text

    text = """
apiVersion: flotilla.dev/v1alpha1
kind: Pipeline
metadata: {name: meetings, namespace: speech}
spec: {audio: /srv/a, output: /srv/o}
"""
    rendering = render(load_text(text, kube_registry), RenderOptions(), kube_registry)
    report = validator.validate_sources((p, t) for p, t in rendering.files().items() if p.endswith(".yaml"))
    assert report.errors == []


CQ = """apiVersion: kueue.x-k8s.io/{version}
kind: ClusterQueue
metadata: {{name: cq}}
spec:
  namespaceSelector: {{}}
  resourceGroups:
  - coveredResources: [cpu]
    flavors:
    - name: default
      resources:
      - name: cpu
        nominalQuota: 8
"""


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        (  # unknown field (a typo), in a CRD's nested object
            CQ.format(version="v1beta2").replace("nominalQuota: 8", "nominalQuota: 8\n        nominalQuata: 9"),
            "spec.resourceGroups[0].flavors[0].resources[0].nominalQuata",
            'unknown field "nominalQuata"; remove it (did you mean "nominalQuota"?)',
        ),
        (  # a field of the other Kueue version
            CQ.format(version="v1beta2").replace("spec:\n", "spec:\n  cohort: team\n"),
            "spec.cohort",
            'unknown field "cohort"; remove it (did you mean "cohortName"?)',
        ),
        (  # unknown field in metadata
            CQ.format(version="v1beta2").replace("{name: cq}", "{name: cq, label: {a: b}}"),
            "metadata.label",
            'unknown field "label"',
        ),
        (  # wrong type
            CQ.format(version="v1beta1").replace("nominalQuota: 8", "nominalQuota: [8]"),
            "spec.resourceGroups[0].flavors[0].resources[0].nominalQuota",
            "expected integer or string, got a list ([8])",
        ),
        (  # missing required field
            CQ.format(version="v1beta2").replace("      - name: cpu\n        nominalQuota: 8\n", "      - name: cpu\n"),
            "spec.resourceGroups[0].flavors[0].resources[0].nominalQuota",
            "required field is missing; add it",
        ),
        (  # bad enum
            CQ.format(version="v1beta2").replace("spec:\n", "spec:\n  queueingStrategy: FIFO\n"),
            "spec.queueingStrategy",
            '"FIFO" is not allowed; use one of: "StrictFIFO", "BestEffortFIFO"',
        ),
        (  # namespace on a cluster-scoped kind
            CQ.format(version="v1beta2").replace("{name: cq}", "{name: cq, namespace: team}"),
            "metadata.namespace",
            "ClusterQueue is cluster-scoped; remove it",
        ),
        (  # GAIE: out of range, bad enum
            "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: p, namespace: n}\n"
            "spec: {selector: {matchLabels: {a: b}}, targetPorts: [{number: 0}]}\n",
            "spec.targetPorts[0].number",
            "0 is less than the minimum of 1",
        ),
        (
            "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: p, namespace: n}\n"
            "spec: {targetPorts: [{number: 8000}]}\n",
            "spec.selector",
            "required field is missing; add it",
        ),
        (  # built-in kinds: unknown field, wrong type, missing required
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  parallelism: '2'\n  template:\n"
            "    spec: {restartPolicy: Never, containers: [{name: c, image: x, comand: [sh]}]}\n",
            "spec.template.spec.containers[0].comand",
            'unknown field "comand"; remove it (did you mean "command"?)',
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  parallelism: '2'\n  template:\n"
            "    spec: {restartPolicy: Never, containers: [{name: c, image: x}]}\n",
            "spec.parallelism",
            'expected integer, got a string ("2")',
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n"
            "    spec: {containers: [{image: x}]}\n",
            "spec.selector",
            "required field is missing; add it",
        ),
        (  # MultiKueue (Kueue's Go types): v1beta1 spelling in v1beta2
            "apiVersion: kueue.x-k8s.io/v1beta2\nkind: MultiKueueCluster\nmetadata: {name: w}\n"
            "spec: {kubeConfig: {location: s, locationType: Secret}}\n",
            "spec.kubeConfig",
            'unknown field "kubeConfig"',
        ),
        (  # a kind with no CRD at hand: Flotilla's own model of it
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: n}\n"
            "spec: {rules: [{matches: [{path: {type: Prefix, value: /}}]}]}\n",
            "spec.rules[0].matches[0].path.type",
            "Exact",
        ),
        (  # not a manifest at all
            "- just\n- a list\n",
            "",
            "expected an object with apiVersion and kind",
        ),
    ],
    ids=[
        "unknown-field",
        "other-version-field",
        "unknown-metadata-field",
        "wrong-type",
        "missing-required",
        "bad-enum",
        "namespace-on-cluster-scoped",
        "gaie-minimum",
        "gaie-missing-selector",
        "builtin-unknown-field",
        "builtin-wrong-type",
        "builtin-missing-required",
        "multikueue-version-field",
        "flotilla-model",
        "not-an-object",
    ],
)
def test_broken_objects_are_caught(validator: Validator, document: str, path: str, message: str) -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n---\n" + document
    report = validator.validate_sources([("broken.yaml", text)])
    assert not report.ok
    issues = [(i.path, i.message, e.source, e.doc_index) for e in report.errors for i in e.issues]
    assert any(p == path and message in m and (s, d) == ("broken.yaml", 2) for p, m, s, d in issues), issues


def test_strictify_closes_objects_but_not_preserved_ones() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"c": {}}}},
        },
    }
    out = schemas.strictify(schema)
    assert out["additionalProperties"] is False
    assert out["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]["free"]
    assert out["properties"]["map"]["additionalProperties"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the CRD's own schema is not changed


def test_cli_validate(tmp_path: Path) -> None:
    good = CliRunner().invoke(app, ["kube", "validate", str(STUDY)])
    assert good.exit_code == 0, good.output
    assert "objects valid" in good.stdout
    bad = tmp_path / "cq.yaml"
    bad.write_text(CQ.format(version="v1beta2").replace("spec:\n", "spec:\n  queueingStrategy: FIFO\n"))
    result = CliRunner().invoke(app, ["kube", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{bad} doc 1 ClusterQueue/cq: spec.queueingStrategy:" in result.output
    missing = CliRunner().invoke(app, ["kube", "validate", str(tmp_path), "--crds", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file or folder of CRDs" in missing.output


def test_unknown_kubernetes_version_is_refused(kube_registry: Registry) -> None:
    with pytest.raises(ValueError, match=r"no Kubernetes schemas for version 1\.2"):
        Validator(schemas.CrdIndex(), kube_registry, "1.2").validate_sources(
            [("x.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")]
        )
