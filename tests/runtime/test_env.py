"""A container's environment and argv: kubelet's order, $(VAR) expansion, valueFrom sources, errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from flotilla.runtime.env import EnvError, container_env, expand, expand_argv

ALLOCATABLE = {"cpu": "16", "memory": "64Gi"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "data": data}


def secret(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "data": {k: b64(v) for k, v in data.items()}}


CONFIGMAPS = {"settings": configmap("settings", MODE="fast", LEVEL="3")}
SECRETS = {"github-token": secret("github-token", token="s3cr3t", user="bot")}


def pod(**container: Any) -> dict[str, Any]:
    """A pod with one container "main" (plus a sidecar, for containerName references)."""
    main = {"name": "main", "image": "python:3.11", **container}
    sidecar = {"name": "side", "resources": {"limits": {"cpu": "250m"}}}
    return {
        "metadata": {
            "name": "whisper-0",
            "namespace": "ns",
            "uid": "uid-1",
            "labels": {"app": "whisper"},
            "annotations": {"team": "speech"},
        },
        "spec": {"nodeName": "node-a", "containers": [main, sidecar]},
    }


def env_of(p: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, str]:
    return container_env(p, p["spec"]["containers"][0], CONFIGMAPS, SECRETS, extra or {}, allocatable=ALLOCATABLE)


@pytest.mark.parametrize(
    ("text", "defined", "want"),
    [
        ("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2"),
        ("$(MISSING)", {}, "$(MISSING)"),  # unknown references stay as written
        ("$$(A)", {"A": "1"}, "$(A)"),  # $$ escapes
        ("cost: $$5", {}, "cost: $5"),
        ("$A and $", {"A": "1"}, "$A and $"),  # $ without ( is literal, trailing $ too
        ("$(A", {"A": "1"}, "$(A"),  # unterminated
        ("$()", {}, "$()"),
        ("$$$(A)", {"A": "x"}, "$x"),
    ],
)
def test_expansion_follows_kubernetes(text: str, defined: dict[str, str], want: str) -> None:
    assert expand(text, defined.get) == want


def test_env_from_with_prefix_then_env_later_wins() -> None:
    p = pod(
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "github-token"}}],
        env=[{"name": "CFG_MODE", "value": "slow"}, {"name": "ECHO", "value": "$(CFG_LEVEL)/$(user)"}],
    )
    assert env_of(p) == {"CFG_MODE": "slow", "CFG_LEVEL": "3", "token": "s3cr3t", "user": "bot", "ECHO": "3/bot"}


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ([{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)$(C)"}, {"name": "C", "value": "c"}], "x$(C)"),
        ([{"name": "A", "value": "x"}, {"name": "B", "value": "$$(A)"}], "$(A)"),
        ([{"name": "B", "value": "$(B)"}], "$(B)"),  # a variable is not defined before itself
        ([{"name": "B"}], ""),  # neither value nor valueFrom: the empty string
    ],
)
def test_value_expands_against_earlier_variables_only(env: list[dict[str, Any]], want: str) -> None:
    assert env_of(pod(env=env))["B"] == want


@pytest.mark.parametrize(
    ("source", "want"),
    [
        ({"configMapKeyRef": {"name": "settings", "key": "MODE"}}, "fast"),
        ({"secretKeyRef": {"name": "github-token", "key": "token"}}, "s3cr3t"),  # base64 decoded
        ({"fieldRef": {"fieldPath": "metadata.name"}}, "whisper-0"),
        ({"fieldRef": {"fieldPath": "metadata.namespace"}}, "ns"),
        ({"fieldRef": {"fieldPath": "metadata.uid"}}, "uid-1"),
        ({"fieldRef": {"fieldPath": "metadata.labels['app']"}}, "whisper"),
        ({"fieldRef": {"fieldPath": "metadata.annotations['team']"}}, "speech"),
        ({"fieldRef": {"fieldPath": "metadata.labels['absent']"}}, ""),
        ({"fieldRef": {"fieldPath": "spec.nodeName"}}, "node-a"),
        ({"fieldRef": {"fieldPath": "status.podIP"}}, "127.0.0.1"),
        # cpu: ceil(milli / milli(divisor)); memory: ceil(value / value(divisor))
        ({"resourceFieldRef": {"resource": "limits.cpu"}}, "2"),
        ({"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}, "1500"),
        ({"resourceFieldRef": {"resource": "requests.cpu"}}, "2"),  # 1.5 rounds up
        ({"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}, "1024"),
        ({"resourceFieldRef": {"resource": "requests.memory", "divisor": "1G"}}, "1"),  # 500Mi -> ceil
        ({"resourceFieldRef": {"resource": "requests.memory"}}, str(500 * 2**20)),
        ({"resourceFieldRef": {"resource": "limits.cpu", "containerName": "side", "divisor": "1m"}}, "250"),
    ],
)
def test_value_from(source: dict[str, Any], want: str) -> None:
    resources = {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1500m", "memory": "500Mi"}}
    p = pod(env=[{"name": "V", "valueFrom": source}], resources=resources)
    assert env_of(p)["V"] == want


@pytest.mark.parametrize(
    ("resources", "resource", "want"),
    [
        ({}, "limits.cpu", "16"),  # unset limit: the node's allocatable
        ({}, "limits.memory", str(64 * 2**30)),
        ({"limits": {"cpu": "3"}}, "requests.cpu", "3"),  # unset request: the limit (API defaulting)
        ({}, "requests.cpu", "0"),
    ],
)
def test_resource_field_ref_defaults(resources: dict[str, Any], resource: str, want: str) -> None:
    p = pod(env=[{"name": "V", "valueFrom": {"resourceFieldRef": {"resource": resource}}}], resources=resources)
    assert env_of(p)["V"] == want


@pytest.mark.parametrize(
    "source",
    [
        {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}},
        {"configMapKeyRef": {"name": "settings", "key": "absent", "optional": True}},
        {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
        {"secretKeyRef": {"name": "github-token", "key": "absent", "optional": True}},
    ],
)
def test_optional_missing_reference_leaves_the_variable_unset(source: dict[str, Any]) -> None:
    assert "V" not in env_of(pod(env=[{"name": "V", "valueFrom": source}]))


def test_optional_missing_env_from_source_is_skipped() -> None:
    p = pod(envFrom=[{"secretRef": {"name": "absent", "optional": True}}, {"configMapRef": {"name": "settings"}}])
    assert env_of(p) == {"MODE": "fast", "LEVEL": "3"}


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {"env": [{"name": "A", "value": "1"}, {"name": "T", "valueFrom": {"secretKeyRef": {"name": "gh"}}}]},
            'spec.containers[0].env[1].valueFrom.secretKeyRef: secret "gh" not found in namespace "ns"; '
            "create it or set optional: true",
        ),
        (
            {"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "github-token", "key": "pat"}}}]},
            'spec.containers[0].env[0].valueFrom.secretKeyRef: key "pat" not found in secret "github-token" '
            '(namespace "ns"); add it or set optional: true',
        ),
        (
            {"envFrom": [{"configMapRef": {"name": "absent"}}]},
            'spec.containers[0].envFrom[0].configMapRef: configmap "absent" not found in namespace "ns"',
        ),
        (
            {"env": [{"name": "T", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]},
            'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported fieldPath "spec.hostname"',
        ),
    ],
)
def test_missing_reference_names_the_field_path(container: dict[str, Any], message: str) -> None:
    with pytest.raises(EnvError) as err:
        env_of(pod(**container))
    assert str(err.value).startswith(message)
    assert err.value.reason == "CreateContainerConfigError"


def test_secret_string_data_and_undecodable_bytes() -> None:
    raw = {"metadata": {"name": "s"}, "data": {"bin": base64.b64encode(b"\xff\x00").decode()}, "stringData": {"k": "v"}}
    p = pod(envFrom=[{"secretRef": {"name": "s"}}])
    env = container_env(p, p["spec"]["containers"][0], {}, {"s": raw}, {}, allocatable=ALLOCATABLE)
    assert env["k"] == "v"
    assert env["bin"].encode("utf-8", "surrogateescape") == b"\xff\x00"  # byte-exact into the process


def test_extra_is_set_last_and_overrides() -> None:
    p = pod(env=[{"name": "HOSTNAME", "value": "mine"}, {"name": "CUDA_VISIBLE_DEVICES", "value": "all"}])
    env = env_of(p, {"CUDA_VISIBLE_DEVICES": "MIG-1234", "HOSTNAME": "whisper-0", "JOB_COMPLETION_INDEX": "0"})
    assert env == {"HOSTNAME": "whisper-0", "CUDA_VISIBLE_DEVICES": "MIG-1234", "JOB_COMPLETION_INDEX": "0"}


@pytest.mark.parametrize(
    ("command", "args", "want"),
    [
        (["python", "-c", "$(CODE)"], None, ["python", "-c", "print(1)"]),
        (["echo"], ["$(MODEL)", "$$(MODEL)", "$(NOPE)"], ["echo", "whisper", "$(MODEL)", "$(NOPE)"]),
    ],
)
def test_expand_argv(command: list[str], args: list[str] | None, want: list[str]) -> None:
    assert expand_argv(command, args, {"CODE": "print(1)", "MODEL": "whisper"}) == want


@pytest.mark.parametrize("command", [None, []])
def test_no_command_is_an_error(command: list[str] | None) -> None:
    with pytest.raises(EnvError, match="no image entrypoint to fall back on locally: set command"):
        expand_argv(command, ["--serve"], {})
