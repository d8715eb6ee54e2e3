"""A container's environment and argv, computed the way kubelet computes them.

Order (kubelet's makeEnvironmentVariables): every `envFrom` source in order (ConfigMap or Secret,
each key prefixed with `prefix`), then every `env` entry in order; a later name replaces an earlier
one. An `env[].value` is expanded with `$(VAR)` against the variables defined before it (including
those from envFrom); `valueFrom` reads a ConfigMap or Secret key, a pod field (fieldRef) or a
container resource (resourceFieldRef). Runtime-provided variables (`extra`: HOSTNAME,
CUDA_VISIBLE_DEVICES, JOB_COMPLETION_INDEX, ...) are set last and win.

A reference to a missing ConfigMap, Secret or key that is not `optional: true` raises EnvError;
the controller reports it as the container's waiting reason `CreateContainerConfigError`, as
kubelet does, with a message that names the field path.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flotilla.api.quantity import Quantity, QuantityError

LOCAL_POD_IP = "127.0.0.1"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"

_LABEL_OR_ANNOTATION = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(Exception):
    """A container's environment or argv cannot be built; the message names the field and the fix."""

    reason = CREATE_CONTAINER_CONFIG_ERROR


# -- $(VAR) expansion ------------------------------------------------------------------------------


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion).

    `$(NAME)` becomes the value of NAME, or stays `$(NAME)` when NAME is undefined; `$$` becomes `$`
    (so `$$(NAME)` is the literal `$(NAME)`); a `$` before any other character, an unterminated
    `$(` and a trailing `$` are kept as written.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2 : close]
                value = lookup(name)
                out.append(f"$({name})" if value is None else value)
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def expand_argv(command: Sequence[str] | None, args: Sequence[str] | None, env: Mapping[str, str]) -> list[str]:
    """`command + args`, each word `$(VAR)`-expanded against the container's environment.

    Kubernetes falls back to the image's ENTRYPOINT/CMD when `command` is unset; a local process
    has no image, so a container without `command` cannot run.
    """
    if not command:
        raise EnvError(
            "the container has no command and there is no image entrypoint to fall back on locally: set command "
            "(args follow it; the image name is only recorded)"
        )
    return [expand(word, env.get) for word in [*command, *(args or [])]]


# -- ConfigMap and Secret data ---------------------------------------------------------------------


def decode_secret_data(secret: Mapping[str, Any], where: str) -> dict[str, bytes]:
    """A Secret's values as bytes: `data` is base64 (RFC 4648, padded); `stringData` is plain text
    and wins over `data` for the same key, as the API server merges it on write."""
    out: dict[str, bytes] = {}
    name = (secret.get("metadata") or {}).get("name", "")
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EnvError(f'{where}: secret "{name}" key "{key}" is not valid base64 ({exc})') from None
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = str(value).encode()
    return out


def configmap_data(configmap: Mapping[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's values as bytes: `data` (UTF-8 text) and `binaryData` (base64)."""
    out = {key: str(value).encode() for key, value in (configmap.get("data") or {}).items()}
    for key, value in (configmap.get("binaryData") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as exc:
            name = (configmap.get("metadata") or {}).get("name", "")
            raise EnvError(f'configmap "{name}" binaryData key "{key}" is not valid base64 ({exc})') from None
    return out


def _text(raw: bytes) -> str:
    # Environment values are bytes on POSIX; surrogateescape keeps non-UTF-8 secrets byte-exact
    # through os.environ/subprocess (which encode with the same error handler).
    return raw.decode("utf-8", "surrogateescape")


class _Sources:
    """The ConfigMaps and Secrets of the pod's namespace, with kubelet's not-found rules."""

    def __init__(self, namespace: str, configmaps: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, Any]):
        self.namespace = namespace
        self.configmaps = configmaps
        self.secrets = secrets

    def source(self, kind: str, name: str | None, optional: bool, where: str) -> dict[str, str] | None:
        """All keys of a ConfigMap (`kind="configmap"`) or Secret; None when missing and optional."""
        objects = self.configmaps if kind == "configmap" else self.secrets
        obj = objects.get(name or "")
        if obj is None:
            if optional:
                return None
            raise EnvError(
                f'{where}: {kind} "{name or ""}" not found in namespace "{self.namespace}"; '
                "create it or set optional: true"
            )
        if kind == "configmap":  # kubelet reads only `data` for environment variables, never binaryData
            return {key: str(value) for key, value in (obj.get("data") or {}).items()}
        return {key: _text(value) for key, value in decode_secret_data(obj, where).items()}

    def key(self, kind: str, ref: Mapping[str, Any], where: str) -> str | None:
        """One key of a ConfigMap or Secret (a configMapKeyRef/secretKeyRef); None when optional and missing."""
        optional = bool(ref.get("optional"))
        values = self.source(kind, ref.get("name"), optional, where)
        if values is None:
            return None
        key = ref.get("key", "")
        if key not in values:
            if optional:
                return None
            raise EnvError(
                f'{where}: key "{key}" not found in {kind} "{ref.get("name", "")}" '
                f'(namespace "{self.namespace}"); add it or set optional: true'
            )
        return values[key]


# -- fieldRef and resourceFieldRef -----------------------------------------------------------------


def _field_value(pod: Mapping[str, Any], field_path: str, where: str) -> str:
    """The downward-API fields kubelet allows in environment variables."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    pod_ip = str((pod.get("status") or {}).get("podIP") or LOCAL_POD_IP)
    simple: dict[str, str] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        # Local processes share the host's network namespace; each pod gets a loopback address of
        # its own (127.1.x.y), so replicas can listen on the same port, as pods do on a cluster.
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": LOCAL_POD_IP,
        "status.hostIPs": LOCAL_POD_IP,
    }
    if field_path in simple:
        return str(simple[field_path])
    match = _LABEL_OR_ANNOTATION.match(field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    supported = ", ".join([*simple, "metadata.labels['<key>']", "metadata.annotations['<key>']"])
    raise EnvError(f'{where}.fieldPath: unsupported fieldPath "{field_path}"; supported: {supported}')


def host_allocatable() -> dict[str, str]:
    """This machine's cpu and memory: what kubelet substitutes for an unset limit (node allocatable)."""
    out = {"cpu": str(os.cpu_count() or 1)}
    with contextlib.suppress(ValueError, OSError):  # every POSIX host has these
        out["memory"] = str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return out


def _resource_value(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    ref: Mapping[str, Any],
    allocatable: Mapping[str, Any],
    where: str,
) -> str:
    """kubelet's ExtractContainerResourceValue.

    cpu: ceil(milliValue(quantity) / milliValue(divisor)); anything else (memory,
    ephemeral-storage, hugepages-*): ceil(value(quantity) / value(divisor)), value rounded up to an
    integer first. An unset limit is the node's allocatable; an unset request is the limit when
    one is set (API defaulting), else 0.
    """
    target = container
    if ref.get("containerName"):
        spec = pod.get("spec") or {}
        candidates = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        named = [c for c in candidates if c.get("name") == ref["containerName"]]
        if not named:
            raise EnvError(f'{where}.containerName: no container "{ref["containerName"]}" in the pod')
        target = named[0]
    field = str(ref.get("resource", ""))
    kind, _, resource = field.partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise EnvError(f'{where}.resource: unsupported resource "{field}"; use limits.<name> or requests.<name>')
    resources = target.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    raw: Any
    if kind == "limits":
        raw = limits.get(resource, allocatable.get(resource))
    else:
        raw = requests.get(resource, limits.get(resource))
    try:
        quantity = Quantity.parse(raw if raw is not None else 0)
        raw_divisor: Any = ref.get("divisor")
        divisor = Quantity.parse(raw_divisor if raw_divisor is not None else 1)
    except QuantityError as exc:
        raise EnvError(f"{where}: {exc}") from None
    if divisor.value <= 0:
        raise EnvError(f'{where}.divisor: must be positive, got "{divisor}"')
    if resource == "cpu":
        numerator, denominator = quantity.milli_value(), divisor.milli_value()
    else:
        numerator, denominator = quantity.as_int(), divisor.as_int()
    return str(-(-numerator // denominator))


# -- the environment -------------------------------------------------------------------------------


def _container_path(pod: Mapping[str, Any], container: Mapping[str, Any]) -> str:
    """`spec.containers[i]` (or initContainers) for error messages."""
    spec = pod.get("spec") or {}
    fields = ("containers", "initContainers", "ephemeralContainers")
    for field in fields:
        for i, c in enumerate(spec.get(field) or []):
            if c is container:
                return f"spec.{field}[{i}]"
    for field in fields:
        for i, c in enumerate(spec.get(field) or []):
            if c.get("name") == container.get("name"):
                return f"spec.{field}[{i}]"
    return f"spec.containers[{container.get('name', '')}]"


def _env_name_ok(name: str) -> bool:
    # What an environment can hold at all; the API server validates names more strictly.
    return bool(name) and "=" not in name and "\0" not in name


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
    extra: Mapping[str, str],
    *,
    allocatable: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The container's environment, in kubelet's order: envFrom, env (later wins), then `extra`.

    `configmaps`/`secrets` map names to objects of the pod's namespace. `allocatable` is the node's
    resources (for resourceFieldRef on an unset limit); the default is this machine's.
    """
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    sources = _Sources(namespace, configmaps, secrets)
    base = _container_path(pod, container)
    env: dict[str, str] = {}

    for i, src in enumerate(container.get("envFrom") or []):
        for kind, field in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = src.get(field)
            if ref is None:
                continue
            where = f"{base}.envFrom[{i}].{field}"
            values = sources.source(kind, ref.get("name"), bool(ref.get("optional")), where)
            for key, text in (values or {}).items():
                name = (src.get("prefix") or "") + key
                if _env_name_ok(name):  # kubelet skips invalid names (and records an event)
                    env[name] = text

    resolved_allocatable = host_allocatable() if allocatable is None else allocatable
    for i, var in enumerate(container.get("env") or []):
        name = var.get("name", "")
        where = f"{base}.env[{i}]"
        value: str | None
        if var.get("value"):
            value = expand(str(var["value"]), env.get)
        elif var.get("valueFrom"):
            value = _value_from(pod, container, var["valueFrom"], sources, resolved_allocatable, f"{where}.valueFrom")
            if value is None:  # optional and missing: kubelet leaves the variable unset
                continue
        else:
            value = ""
        env[name] = value

    env.update(extra)
    return env


def _value_from(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    source: Mapping[str, Any],
    sources: _Sources,
    allocatable: Mapping[str, Any],
    where: str,
) -> str | None:
    if source.get("configMapKeyRef") is not None:
        return sources.key("configmap", source["configMapKeyRef"], f"{where}.configMapKeyRef")
    if source.get("secretKeyRef") is not None:
        return sources.key("secret", source["secretKeyRef"], f"{where}.secretKeyRef")
    if source.get("fieldRef") is not None:
        return _field_value(pod, str(source["fieldRef"].get("fieldPath", "")), f"{where}.fieldRef")
    if source.get("resourceFieldRef") is not None:
        ref = source["resourceFieldRef"]
        return _resource_value(pod, container, ref, allocatable, f"{where}.resourceFieldRef")
    raise EnvError(f"{where}: set one of configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef")
