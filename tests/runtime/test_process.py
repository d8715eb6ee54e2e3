"""The process layer with real short processes: shim, exit codes, logs, stop, re-adoption, sandbox."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from flotilla.runtime.process import ExitStatus, Launch, ProcessRecord, ProcessRuntime, log_tail
from flotilla.runtime.sandbox import Sandbox, SandboxError

T = TypeVar("T")
PATH_ONLY = {"PATH": os.environ.get("PATH", os.defpath)}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[ProcessRuntime]:
    rt = ProcessRuntime(tmp_path / "state")
    try:
        yield rt
    finally:
        rt.close(grace_seconds=0)


def eventually(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll until probe() returns something other than None (or fail at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.02)
    raise AssertionError(f"no result within {timeout}s")


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (orphans may wait for a reaper that never comes)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def python(tmp_path: Path, code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Launch:
    return Launch(
        pod_uid="uid-1",
        container="main",
        argv=[sys.executable, "-c", textwrap.dedent(code), *args],
        env=PATH_ONLY if env is None else env,
        cwd=cwd or tmp_path,
        log_path=tmp_path / "logs" / "main.log",
    )


def wait_exit(rt: ProcessRuntime, record: ProcessRecord) -> ExitStatus:
    return eventually(lambda: rt.poll(record))


# -- running to completion ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "exit_code", "reason"), [(0, 0, "Completed"), (3, 3, "Error")])
def test_exit_code_and_output_in_the_log(
    runtime: ProcessRuntime, tmp_path: Path, code: int, exit_code: int, reason: str
) -> None:
    record = runtime.start(
        python(tmp_path, f"import sys; print('hello', flush=True); print('oops', file=sys.stderr); sys.exit({code})")
    )
    status = wait_exit(runtime, record)
    assert (status.exit_code, status.signal, status.reason) == (exit_code, None, reason)
    assert status.finished_at.endswith("Z")
    assert log_tail(record.log_file, None).splitlines() == ["hello", "oops"]


@pytest.mark.parametrize("locale", [{}, {"LC_CTYPE": "C"}])
def test_environment_is_exactly_the_one_given(runtime: ProcessRuntime, tmp_path: Path, locale: dict[str, str]) -> None:
    env = {**PATH_ONLY, "MODEL": "whisper large", "EMPTY": "", **locale}
    launch = Launch("uid-1", "main", ["env"], env, tmp_path, tmp_path / "env.log")
    assert wait_exit(runtime, runtime.start(launch)).exit_code == 0
    printed = dict(line.split("=", 1) for line in log_tail(launch.log_path).splitlines())
    assert printed == env  # nothing added (no LC_CTYPE from the shim's interpreter, no PYTHON*)


def test_working_directory(runtime: ProcessRuntime, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    record = runtime.start(python(tmp_path, "import os; print(os.getcwd())", cwd=workdir))
    assert wait_exit(runtime, record).exit_code == 0
    assert log_tail(record.log_file).strip() == str(workdir)


@pytest.mark.parametrize(
    ("argv", "cwd", "exit_code", "message"),
    [
        (["no-such-command-xyz"], None, 127, 'exec: "no-such-command-xyz": executable file not found in $PATH'),
        (["./not-executable.sh"], None, 126, 'exec: "./not-executable.sh": Permission denied'),
        (["env"], "missing-dir", 127, "chdir to working directory"),
    ],
)
def test_cannot_run(
    runtime: ProcessRuntime, tmp_path: Path, argv: list[str], cwd: str | None, exit_code: int, message: str
) -> None:
    (tmp_path / "not-executable.sh").write_text("echo hi\n")
    launch = Launch("uid-1", "main", argv, PATH_ONLY, tmp_path / (cwd or ""), tmp_path / "c.log")
    status = wait_exit(runtime, runtime.start(launch))
    assert (status.exit_code, status.reason) == (exit_code, "ContainerCannotRun")
    assert status.message is not None and status.message.startswith(message)
    assert message in log_tail(launch.log_path)


def test_leftover_processes_die_with_the_main_process(runtime: ProcessRuntime, tmp_path: Path) -> None:
    marker = tmp_path / "bg.pid"
    code = """
        import pathlib, subprocess, sys
        bg = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path(sys.argv[1]).write_text(str(bg.pid))
    """
    assert wait_exit(runtime, runtime.start(python(tmp_path, code, str(marker)))).exit_code == 0
    assert not alive(eventually(lambda: read_pid(marker)))  # like a container's teardown


# -- stopping ------------------------------------------------------------------------------------------

IGNORES_TERM = """
    import pathlib, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pathlib.Path(sys.argv[1]).write_text(str(child.pid))
    time.sleep(60)
"""


def test_stop_kills_the_group_after_the_grace_period(runtime: ProcessRuntime, tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    record = runtime.start(python(tmp_path, IGNORES_TERM, str(marker)))
    grandchild = eventually(lambda: read_pid(marker))
    began = time.monotonic()
    runtime.stop(record, grace_seconds=0.3)
    assert 0.3 <= time.monotonic() - began < 1.8
    status = runtime.poll(record)
    assert status is not None and (status.exit_code, status.signal, status.reason) == (137, 9, "Error")
    assert not alive(grandchild)
    assert runtime.running() == []
    runtime.stop(record, grace_seconds=0.3)  # idempotent, and quick once stopped


@pytest.mark.parametrize(
    ("code", "exit_code", "sig"),
    [
        ("import time; open('ready', 'w').close(); time.sleep(60)", 143, 15),  # default action: 128 + 15
        (
            """
            import signal, sys, time
            def term(*_):
                print("term", flush=True)
                sys.exit(0)
            signal.signal(signal.SIGTERM, term)
            open("ready", "w").close()
            time.sleep(60)
            """,
            0,
            None,
        ),
    ],
)
def test_stop_sends_sigterm_once_to_the_main_process(
    runtime: ProcessRuntime, tmp_path: Path, code: str, exit_code: int, sig: int | None
) -> None:
    record = runtime.start(python(tmp_path, code))
    eventually(lambda: (tmp_path / "ready").exists() or None)
    began = time.monotonic()
    runtime.stop(record, grace_seconds=10)
    assert time.monotonic() - began < 5  # did not wait out the grace period
    status = runtime.poll(record)
    assert status is not None and (status.exit_code, status.signal) == (exit_code, sig)
    assert log_tail(record.log_file).count("term") == (1 if exit_code == 0 else 0)


def test_running_and_close(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state")
    sleeper = rt.start(python(tmp_path, "import time; time.sleep(60)"))
    done = rt.start(python(tmp_path, "pass"))
    wait_exit(rt, done)
    assert rt.running() == [sleeper]
    rt.close(grace_seconds=0.2)
    assert rt.running() == []
    status = rt.poll(sleeper)
    assert status is not None and status.exit_code == 143


# -- re-adoption and a lost shim -------------------------------------------------------------------------


def test_a_restarted_control_plane_readopts_the_process(runtime: ProcessRuntime, tmp_path: Path) -> None:
    code = """
        import os, sys, time
        while not os.path.exists("go"):
            time.sleep(0.01)
        sys.exit(7)
    """
    record = runtime.start(python(tmp_path, code))
    stored = json.loads(json.dumps(record.to_dict()))  # what the pod annotation holds

    restarted = ProcessRuntime(tmp_path / "state")  # knows nothing of the shim: it is not its child
    adopted = ProcessRecord.from_dict(stored)
    assert adopted == record
    assert restarted.poll(adopted) is None
    assert restarted.running() == []  # only what this instance started
    (tmp_path / "go").touch()
    status = wait_exit(restarted, adopted)  # the shim is a zombie of the first instance meanwhile
    assert (status.exit_code, status.reason) == (7, "Error")

    other = runtime.start(python(tmp_path, "import time; time.sleep(60)"))
    restarted.stop(ProcessRecord.from_dict(other.to_dict()), grace_seconds=1)
    stopped = restarted.poll(other)
    assert stopped is not None and stopped.exit_code == 143, log_tail(other.log_file)


def test_a_killed_shim_is_an_error_not_running_forever(runtime: ProcessRuntime, tmp_path: Path) -> None:
    record = runtime.start(python(tmp_path, "import time; time.sleep(60)"))
    container = eventually(lambda: runtime.container_pid(record))
    os.kill(record.shim_pid, signal.SIGKILL)
    status = wait_exit(runtime, record)
    assert (status.exit_code, status.reason) == (137, "Error")
    assert status.message is not None and "the shim died" in status.message
    assert not alive(container)  # nothing left running unsupervised
    assert ProcessRuntime(tmp_path / "state").poll(record) == status  # recorded for later polls


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert log_tail(log, 5) == ""
    log.write_bytes(b"".join(f"line {i}\r\n".replace("\r", "").encode() for i in range(100_000)))
    assert log_tail(log, 2) == "line 99998\nline 99999\n"
    assert log_tail(log, 0) == ""
    log.write_bytes(b"a\nprogress 1\rprogress 2\nno newline")
    assert log_tail(log, 2) == "progress 1\rprogress 2\nno newline"
    assert log_tail(log, None).startswith("a\n")


# -- sandbox ---------------------------------------------------------------------------------------------

CONFIGMAPS = {"app-config": {"metadata": {"name": "app-config"}, "data": {"app.yaml": "model: whisper\n", "x": "1"}}}
SECRETS = {"hf": {"metadata": {"name": "hf"}, "data": {"token": base64.b64encode(b"hf_abc").decode()}}}


def volumes(host_dir: Path) -> list[dict[str, Any]]:
    return [
        {"name": "data", "emptyDir": {}},
        {
            "name": "config",
            "configMap": {"name": "app-config", "items": [{"key": "app.yaml", "path": "conf/app.yaml"}]},
        },
        {"name": "token", "secret": {"secretName": "hf"}},
        {"name": "models", "hostPath": {"path": str(host_dir)}},
        {"name": "modes", "configMap": {"name": "app-config", "defaultMode": 0o640}},
    ]


def test_sandbox_volumes_and_mounts_seen_by_a_process(runtime: ProcessRuntime, tmp_path: Path) -> None:
    host = tmp_path / "host-models"
    host.mkdir()
    (host / "weights.bin").write_text("w")
    sandbox = Sandbox.create(tmp_path / "root", "uid-1", volumes(host), CONFIGMAPS, SECRETS)
    token = sandbox.volume("token") / "token"
    assert token.read_bytes() == b"hf_abc" and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE((sandbox.volume("modes") / "x").stat().st_mode) == 0o640
    assert sorted(p.name for p in sandbox.volume("config").rglob("*")) == ["app.yaml", "conf"]  # items only

    container = {
        "name": "main",
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "config", "mountPath": "/etc/app", "subPath": "conf"},
            {"name": "token", "mountPath": "/var/run/secrets/hf"},
            {"name": "models", "mountPath": "/models"},
            {"name": "data", "mountPath": "/data/cache", "subPath": "cache"},  # nested, inside emptyDir
            {"name": "models", "mountPath": "/data/models"},
        ],
    }
    sandbox.mount(container)
    sandbox.mount(container)  # again, as for a container restart
    code = """
        import pathlib
        text = pathlib.Path("etc/app/app.yaml").read_text() + pathlib.Path("var/run/secrets/hf/token").read_text()
        pathlib.Path("data/out.txt").write_text(text + pathlib.Path("models/weights.bin").read_text())
        pathlib.Path("data/cache/c").write_text(pathlib.Path("data/models/weights.bin").read_text())
    """
    record = runtime.start(python(tmp_path, code, cwd=sandbox.workdir(container)))
    assert wait_exit(runtime, record).exit_code == 0, log_tail(record.log_file)
    assert (sandbox.volume("data") / "out.txt").read_text() == "model: whisper\nhf_abcw"
    assert (sandbox.volume("data") / "cache" / "c").exists()

    assert sandbox.workdir({**container, "workingDir": "/data"}) == sandbox.rootfs("main") / "data"
    assert sandbox.workdir({**container, "workingDir": str(host)}) == host
    assert sandbox.workdir({**container, "workingDir": "/no/such/dir"}) == sandbox.rootfs("main")

    again = Sandbox.create(tmp_path / "root", "uid-1", volumes(host), CONFIGMAPS, SECRETS)
    assert (again.volume("data") / "out.txt").exists()  # emptyDir survives re-creation
    again.remove()
    assert not again.path.exists() and (host / "weights.bin").exists()  # hostPath target untouched
    again.remove()


@pytest.mark.parametrize(
    ("uid", "vols", "message"),
    [
        ("../x", [], "metadata.uid"),
        ("uid", [{"name": "..", "emptyDir": {}}], "spec.volumes[1].name"),
        ("uid", [{"name": "c", "configMap": {"name": "app-config", "items": [{"key": "x", "path": "../x"}]}}], ".."),
        ("uid", [{"name": "c", "configMap": {"name": "app-config", "items": [{"key": "x", "path": "/etc/x"}]}}], ".."),
        ("uid", [{"name": "c", "configMap": {"name": "absent"}}], 'configmap "absent" not found'),
        ("uid", [{"name": "c", "configMap": {"name": "app-config", "items": [{"key": "nope", "path": "n"}]}}], "nope"),
        ("uid", [{"name": "s", "secret": {"secretName": "absent"}}], 'secret "absent" not found'),
        ("uid", [{"name": "h", "hostPath": {"path": "/no/such/flotilla/path"}}], "does not exist on this host"),
        ("uid", [{"name": "p", "persistentVolumeClaim": {"claimName": "x"}}], "not supported by the local runtime"),
    ],
)
def test_sandbox_rejects_bad_volumes(tmp_path: Path, uid: str, vols: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(SandboxError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        Sandbox.create(tmp_path, uid, [{"name": "ok", "emptyDir": {}}, *vols] if vols else vols, CONFIGMAPS, SECRETS)
    assert not (tmp_path / "pods").exists() or not any((tmp_path / "pods").rglob("ok"))  # nothing half-made


def test_optional_missing_configmap_is_an_empty_volume(tmp_path: Path) -> None:
    vols = [{"name": "c", "configMap": {"name": "absent", "optional": True}}]
    sandbox = Sandbox.create(tmp_path, "uid", vols, {}, {})
    assert list(sandbox.volume("c").iterdir()) == []


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"name": "data", "mountPath": "/../../escape"}, "mountPath"),
        ({"name": "data", "mountPath": "/"}, "mountPath"),
        ({"name": "data", "mountPath": "/d", "subPath": "../../.."}, "subPath"),
        ({"name": "host", "mountPath": "/h", "subPath": "link-out"}, "leads out of volume"),
        ({"name": "absent", "mountPath": "/d"}, 'no volume "absent"'),
        ({"name": "data", "mountPath": "/h/inner"}, "leads out of the sandbox"),  # through the hostPath mount
    ],
)
def test_mount_rejects_escapes(tmp_path: Path, mount: dict[str, Any], message: str) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "link-out").symlink_to("/etc")
    vols = [{"name": "data", "emptyDir": {}}, {"name": "host", "hostPath": {"path": str(host)}}]
    sandbox = Sandbox.create(tmp_path / "root", "uid", vols, {}, {})
    sandbox.mount({"name": "main", "volumeMounts": [{"name": "host", "mountPath": "/h"}]})
    with pytest.raises(SandboxError, match=message):
        sandbox.mount({"name": "main", "volumeMounts": [mount]})
    assert sorted(p.name for p in host.iterdir()) == ["link-out"]  # nothing written on the host
