"""A pod's sandbox: a directory that stands in for the pod's volumes and its containers' filesystems.

    root/pods/<uid>/volumes/<name>/            one per pod volume
    root/pods/<uid>/rootfs/<container>/<path>  a symlink per volumeMount, to its volume (or subPath)

Volumes: emptyDir is an empty directory (kept across re-creation, like a pod's emptyDir across
container restarts); configMap and secret are projected as files (items/keyToPath honoured,
`mode`/`defaultMode` applied; secrets default to 0600, not Kubernetes' 0644, because the files sit
on a shared host rather than a private tmpfs); hostPath is a symlink to the host path, which must
exist unless its type is DirectoryOrCreate or FileOrCreate.

A container runs with cwd = its rootfs, so a mount at `/data` is found as the relative path
`data/...`. Absolute paths in commands are NOT remapped: there is no container filesystem, and
`/data` in a command means the host's `/data`. Each container gets its own rootfs, because two
containers of a pod may mount different volumes at the same path. readOnly is not enforced.

Every name and path from the spec is checked before anything is written: `..`, absolute item
paths and symlinks that lead out of the sandbox (or out of a volume, for subPath) are rejected.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from flotilla.runtime.env import EnvError, configmap_data, decode_secret_data

CONFIGMAP_DEFAULT_MODE = 0o644
SECRET_DEFAULT_MODE = 0o600
SUPPORTED = ("emptyDir", "configMap", "secret", "hostPath")


class SandboxError(Exception):
    """A volume or mount that cannot be set up; the message names the field path and the fix."""


def _safe_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\0" in value:
        raise SandboxError(f'{where}: "{value}" is not a valid name (no "/", not "." or "..")')
    return value


def _relative(path: Any, where: str) -> PurePosixPath:
    """A relative path without `..` (Kubernetes' rule for items[].path and subPath)."""
    pure = PurePosixPath(str(path))
    if not path or pure.is_absolute() or ".." in pure.parts or "\0" in str(path):
        raise SandboxError(f'{where}: "{path}" must be a relative path that does not contain ".."')
    return pure


def _inside(path: Path, parent: Path) -> bool:
    return path.resolve().is_relative_to(parent.resolve())


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        _rmtree(path)


def _rmtree(path: Path) -> None:
    """rmtree that also removes directories a process made read-only (it never follows symlinks)."""

    def retry(func: Callable[[str], object], failed: str, _exc: object) -> None:
        os.chmod(os.path.dirname(failed), stat.S_IRWXU)
        func(failed)

    shutil.rmtree(path, onerror=retry)


@dataclass(frozen=True)
class _Projection:
    """Files of a configMap/secret volume: relative path -> (content, mode)."""

    files: dict[PurePosixPath, tuple[bytes, int]]
    dir_mode: int


def _projection(
    source: Mapping[str, Any],
    data: Mapping[str, bytes] | None,
    kind: str,
    name: str,
    default_mode: int,
    where: str,
) -> _Projection:
    if data is None:
        if source.get("optional"):
            data = {}
        else:
            raise SandboxError(f'{where}: {kind} "{name}" not found; create it or set optional: true')
    mode = default_mode if source.get("defaultMode") is None else int(source["defaultMode"])
    files: dict[PurePosixPath, tuple[bytes, int]] = {}
    items = source.get("items")
    if items is None:
        for key, value in data.items():
            files[_relative(key, f"{where} key")] = (value, mode)
    else:
        for i, item in enumerate(items):
            key = item.get("key", "")
            if key not in data:
                if source.get("optional"):
                    continue
                raise SandboxError(f'{where}.items[{i}].key: {kind} "{name}" has no key "{key}"')
            item_mode = mode if item.get("mode") is None else int(item["mode"])
            files[_relative(item.get("path"), f"{where}.items[{i}].path")] = (data[key], item_mode)
    return _Projection(files, 0o700 if kind == "secret" else 0o755)


def _write_projection(target: Path, projection: _Projection) -> None:
    _clear(target)  # a projection is rewritten whole: removed keys disappear
    target.mkdir(mode=projection.dir_mode)
    for rel, (content, mode) in projection.files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, content)
            os.fchmod(fd, mode)  # after writing: the mode may be read-only; os.open's mode obeys umask
        finally:
            os.close(fd)


def _host_path(source: Mapping[str, Any], where: str) -> Callable[[Path], None]:
    """Check a hostPath volume now; return the step that links it (and creates it for *OrCreate)."""
    raw = str(source.get("path", ""))
    kind = source.get("type") or ""
    host = Path(raw)
    if not host.is_absolute():
        raise SandboxError(f'{where}.path: "{raw}" must be an absolute path')
    checks = {"Directory": host.is_dir, "File": host.is_file, "": host.exists}
    if kind in ("DirectoryOrCreate", "FileOrCreate"):
        if host.exists() and (kind == "DirectoryOrCreate") != host.is_dir():
            raise SandboxError(f'{where}.path: "{raw}" exists but is not a {kind.removesuffix("OrCreate").lower()}')
    elif not checks.get(kind, host.exists)():
        raise SandboxError(
            f'{where}.path: "{raw}" does not exist on this host (type "{kind}"); create it or set '
            "type: DirectoryOrCreate"
        )

    def link(target: Path) -> None:
        if kind == "DirectoryOrCreate":
            host.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            host.parent.mkdir(parents=True, exist_ok=True)
            host.touch(exist_ok=True)
        _clear(target)
        target.symlink_to(host, target_is_directory=host.is_dir())

    return link


@dataclass(frozen=True)
class Sandbox:
    """The directory `root/pods/<uid>`; `create` materialises volumes, `mount` links them per container."""

    path: Path

    @classmethod
    def at(cls, root: Path, pod_uid: str) -> Sandbox:
        """The sandbox of a pod, whether or not it exists yet (e.g. to remove it)."""
        return cls(Path(root) / "pods" / _safe_name(pod_uid, "metadata.uid"))

    @classmethod
    def create(
        cls,
        root: Path,
        pod_uid: str,
        volumes: list[dict[str, Any]],
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
    ) -> Sandbox:
        """Make the sandbox and its volumes; idempotent (a restarted control plane re-creates it).

        Every volume is checked before any is written, so an error leaves nothing half-made.
        """
        sandbox = cls.at(root, pod_uid)
        steps: list[tuple[str, Callable[[Path], None]]] = []
        seen: set[str] = set()
        for i, volume in enumerate(volumes):
            where = f"spec.volumes[{i}]"
            name = _safe_name(volume.get("name"), f"{where}.name")
            if name in seen:
                raise SandboxError(f'{where}.name: duplicate volume name "{name}"')
            seen.add(name)
            steps.append((name, _volume_step(volume, configmaps, secrets, where)))
        (sandbox.path / "volumes").mkdir(parents=True, exist_ok=True)
        (sandbox.path / "rootfs").mkdir(exist_ok=True)
        for name, step in steps:
            step(sandbox.path / "volumes" / name)
        return sandbox

    def volume(self, name: str) -> Path:
        return self.path / "volumes" / _safe_name(name, "volume name")

    def rootfs(self, container_name: str) -> Path:
        return self.path / "rootfs" / _safe_name(container_name, "container name")

    def mount(self, container: Mapping[str, Any]) -> None:
        """Link each volumeMount at `rootfs/<container>/<mountPath without '/'>` (subPath honoured).

        Outer mounts are linked first, so `/data` exists before `/data/cache` is linked inside it.
        """
        rootfs = self.rootfs(container.get("name", ""))
        rootfs.mkdir(parents=True, exist_ok=True)
        mounts = list(enumerate(container.get("volumeMounts") or []))
        mounts.sort(key=lambda m: len(PurePosixPath(str(m[1].get("mountPath", ""))).parts))
        for i, mount in mounts:
            where = f"volumeMounts[{i}]"
            volume = self.path / "volumes" / _safe_name(mount.get("name"), f"{where}.name")
            if not (volume.exists() or volume.is_symlink()):
                raise SandboxError(f'{where}.name: the pod has no volume "{mount.get("name")}"')
            rel = _relative(str(mount.get("mountPath", "")).lstrip("/"), f"{where}.mountPath")
            source = volume
            if mount.get("subPath"):
                source = volume / _relative(mount["subPath"], f"{where}.subPath")
                if not _inside(source, volume):
                    raise SandboxError(f'{where}.subPath: "{mount["subPath"]}" leads out of volume "{volume.name}"')
                if not source.exists():
                    source.mkdir(parents=True)  # kubelet creates a missing subPath as a directory
            target = rootfs / rel
            if target.parent.resolve() / target.name == source.resolve():
                continue  # a subPath mounted where the outer mount already shows it
            if not _inside(target.parent, self.path):
                raise SandboxError(
                    f'{where}.mountPath: "{mount.get("mountPath")}" leads out of the sandbox (through a '
                    "hostPath mount or a symlink); nest mounts only inside sandbox volumes"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            elif target.is_dir() and not any(target.iterdir()):
                target.rmdir()
            elif target.exists():
                raise SandboxError(f'{where}.mountPath: "{mount.get("mountPath")}" already exists in the sandbox')
            target.symlink_to(source.absolute(), target_is_directory=source.is_dir())

    def workdir(self, container: Mapping[str, Any]) -> Path:
        """The process's cwd: `workingDir` as a path in the rootfs (a mount) if it is there, else as an
        existing absolute host directory, else the container's rootfs."""
        rootfs = self.rootfs(container.get("name", ""))
        working_dir = container.get("workingDir")
        if working_dir:
            pure = PurePosixPath(str(working_dir))
            if ".." not in pure.parts and pure.is_absolute() and len(pure.parts) > 1:
                in_rootfs = rootfs / pure.relative_to("/")
                if in_rootfs.is_dir():
                    return in_rootfs
            if pure.is_absolute() and Path(working_dir).is_dir():
                return Path(working_dir)
        rootfs.mkdir(parents=True, exist_ok=True)
        return rootfs

    def remove(self) -> None:
        """Delete the sandbox (links only: hostPath targets are never followed); idempotent."""
        if self.path.exists():
            _rmtree(self.path)


def _volume_step(
    volume: Mapping[str, Any],
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
    where: str,
) -> Callable[[Path], None]:
    """Validate one volume and return the step that materialises it at its path."""
    if "emptyDir" in volume:

        def empty_dir(target: Path) -> None:
            if target.is_symlink() or target.is_file():
                target.unlink()
            target.mkdir(exist_ok=True)  # an existing emptyDir keeps its contents

        return empty_dir
    try:
        if "configMap" in volume:
            source = volume["configMap"] or {}
            name = str(source.get("name", ""))
            obj = configmaps.get(name)
            data = None if obj is None else configmap_data(obj)
            proj = _projection(source, data, "configmap", name, CONFIGMAP_DEFAULT_MODE, f"{where}.configMap")
            return lambda target: _write_projection(target, proj)
        if "secret" in volume:
            source = volume["secret"] or {}
            name = str(source.get("secretName", ""))
            obj = secrets.get(name)
            data = None if obj is None else decode_secret_data(obj, f"{where}.secret")
            proj = _projection(source, data, "secret", name, SECRET_DEFAULT_MODE, f"{where}.secret")
            return lambda target: _write_projection(target, proj)
    except EnvError as exc:
        raise SandboxError(str(exc)) from None
    if "hostPath" in volume:
        return _host_path(volume["hostPath"] or {}, f"{where}.hostPath")
    kinds = sorted(set(volume) - {"name"})
    raise SandboxError(
        f"{where}: volume type {', '.join(kinds) or '(none)'} is not supported by the local runtime; "
        f"use one of {', '.join(SUPPORTED)}"
    )
