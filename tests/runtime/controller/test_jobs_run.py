"""Jobs run as real processes: completions, indexes, retries, deadlines, suspension, TTL, GC."""

from __future__ import annotations

import time

from .harness import Harness, alive, job, py


def test_indexed_job_runs_each_index_on_its_own_mig_slice(h: Harness) -> None:
    code = "import os; print('index', os.environ['JOB_COMPLETION_INDEX'], os.environ['CUDA_VISIBLE_DEVICES'])"
    h.create(
        job(
            "idx", py(code), limits={"nvidia.com/mig-1g.5gb": 1}, completions=3, parallelism=3, completionMode="Indexed"
        )
    )
    assert h.until(lambda: h.job_condition("idx")) == "Complete:CompletionsReached"
    status = h.get("jobs", "idx")["status"]
    assert status["succeeded"] == 3 and status["completedIndexes"] == "0-2" and status["active"] == 0
    logs = sorted(h.log(p) for p in h.pods("idx"))
    assert [line.split()[:2] for line in logs] == [["index", "0"], ["index", "1"], ["index", "2"]]
    assert all(line.split()[2].startswith("MIG-") for line in logs)
    assert len({line.split()[2] for line in logs}) == 3  # three different slices
    h.until(lambda: not h.list("allocationclaims"), message="claims released")
    assert all(not h.backend.slices(g.uuid) for inv in h.backend.discover() for g in inv.gpus)


def test_completions_without_index_and_parallelism(h: Harness) -> None:
    h.create(job("c", py("print('ok')"), completions=3, parallelism=2))
    assert h.until(lambda: h.job_condition("c")) == "Complete:CompletionsReached"
    assert h.get("jobs", "c")["status"]["succeeded"] == 3
    assert len(h.pods("c")) == 3


def test_failures_are_retried_up_to_backoff_limit(h: Harness) -> None:
    h.create(job("fails", py("import sys; print('boom'); sys.exit(3)"), backoffLimit=2))
    assert h.until(lambda: h.job_condition("fails")) == "Failed:BackoffLimitExceeded"
    pods = h.pods("fails")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Failed" for p in pods)
    term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert h.get("jobs", "fails")["status"]["failed"] == 3


def test_on_failure_restarts_the_container_in_place(h: Harness) -> None:
    marker = h.root / "tried"
    code = (
        f"import os,sys; p={str(marker)!r}; first=not os.path.exists(p); "
        "open(p,'w').close(); sys.exit(1 if first else 0)"
    )
    h.create(job("again", py(code), restart="OnFailure"))
    assert h.until(lambda: h.job_condition("again")) == "Complete:CompletionsReached"
    (pod,) = h.pods("again")
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1 and status["lastState"]["terminated"]["exitCode"] == 1
    assert h.get("jobs", "again")["status"]["failed"] == 1


def test_active_deadline_kills_the_process(h: Harness) -> None:
    h.create(job("slow", py("import time; time.sleep(60)"), activeDeadlineSeconds=3, grace=0))
    pid = _pid_when_running(h, "slow")
    assert h.until(lambda: h.job_condition("slow")) == "Failed:DeadlineExceeded"
    h.until(lambda: not alive(pid), message="process killed")
    h.until(lambda: not h.pods("slow"), message="pods removed")


def test_deleting_a_pod_stops_its_process_group_with_sigterm_then_sigkill(h: Harness) -> None:
    # The container ignores SIGTERM and has a child: both die after the 1 s grace period.
    code = (
        "import signal,subprocess,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
        "print(c.pid, flush=True); time.sleep(60)"
    )
    h.create(job("stubborn", py(code), grace=1))
    pid = _pid_when_running(h, "stubborn")
    child = int(h.until(lambda: h.log(h.pods("stubborn")[0]).strip()))
    pod = h.pods("stubborn")[0]
    h.service.delete(h.kind("pods"), pod["metadata"]["name"], "default")
    started = time.monotonic()
    h.until(lambda: not alive(pid) and not alive(child), message="process group gone")
    assert time.monotonic() - started >= 0.9  # SIGTERM was ignored: killed after the grace period
    h.until(lambda: h.get("pods", pod["metadata"]["name"]) is None, message="pod removed")


def test_suspending_stops_pods_and_resuming_starts_new_ones(h: Harness) -> None:
    h.create(job("sus", py("import time; time.sleep(60)"), grace=0))
    pid = _pid_when_running(h, "sus")
    j = h.get("jobs", "sus")
    h.service.update({**j, "spec": {**j["spec"], "suspend": True}})
    h.until(lambda: not alive(pid) and not h.pods("sus"), message="suspended")
    conditions = {c["type"]: c for c in h.get("jobs", "sus")["status"]["conditions"]}
    assert conditions["Suspended"]["status"] == "True"
    j = h.get("jobs", "sus")
    h.service.update({**j, "spec": {**j["spec"], "suspend": False}})
    new_pid = _pid_when_running(h, "sus")
    assert new_pid != pid
    conditions = {c["type"]: c for c in h.get("jobs", "sus")["status"]["conditions"]}
    assert conditions["Suspended"]["status"] == "False"


def test_ttl_after_finished_deletes_the_job_and_its_pods(h: Harness) -> None:
    h.create(job("ttl", py("print(1)"), ttlSecondsAfterFinished=0))
    h.until(lambda: h.get("jobs", "ttl") is None, message="job deleted")
    h.until(lambda: not h.pods("ttl"), message="pods deleted")


def test_deleting_a_job_deletes_its_pods(h: Harness) -> None:
    h.create(job("gc", py("import time; time.sleep(60)"), grace=0))
    pid = _pid_when_running(h, "gc")
    h.service.delete(h.kind("jobs"), "gc", "default")
    h.until(lambda: not h.pods("gc") and not alive(pid), message="pods collected")


def test_env_from_configmap_and_secret_and_waiting_for_a_missing_secret(h: Harness) -> None:
    h.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"MODEL": "tiny"},
        }
    )
    j = job("env", py("import os; print(os.environ['MODEL'], os.environ['TOKEN'])"))
    j["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODEL"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}},
    ]
    h.create(j)

    def waiting() -> str | None:
        pods = h.pods("env")
        statuses = (pods[0].get("status") or {}).get("containerStatuses") if pods else None
        return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None

    assert h.until(waiting) == "CreateContainerConfigError"
    h.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "tok", "namespace": "default"},
            "stringData": {"token": "s3cret"},
        }
    )
    assert h.until(lambda: h.job_condition("env")) == "Complete:CompletionsReached"
    assert h.log(h.pods("env")[0]).split() == ["tiny", "s3cret"]


def test_unschedulable_pod_says_why_in_kube_scheduler_words(h: Harness) -> None:
    h.create(job("big", py("print(1)"), requests={"cpu": "500"}))
    pod = h.until(lambda: next(iter(h.pods("big")), None))
    cond = h.until(
        lambda: next(
            (c for c in (h.pods("big")[0].get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"),
            None,
        )
    )
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    assert pod["spec"].get("nodeName") is None


def _pid_when_running(h: Harness, name: str) -> int:
    """The container process's pid (not the shim's) once its pod runs."""

    def pid() -> int | None:
        for p in h.pods(name):
            record = h.ctl.kubelet.records(p).get("main")
            if record is not None and (p.get("status") or {}).get("phase") == "Running":
                return h.ctl.kubelet.processes.container_pid(record)
        return None

    return int(h.until(pid, message=f"{name} running"))


def test_init_containers_run_in_order_before_the_app(h: Harness) -> None:
    j = job("init", py("import pathlib; print(pathlib.Path('shared/step').read_text())"))
    spec = j["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "shared", "emptyDir": {}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "shared", "mountPath": "/shared"}]
    mount = [{"name": "shared", "mountPath": "/shared"}]
    spec["initContainers"] = [
        {"name": "one", "image": "x", "command": py("open('shared/step','w').write('one')"), "volumeMounts": mount},
        {"name": "two", "image": "x", "command": py("open('shared/step','a').write('+two')"), "volumeMounts": mount},
    ]
    h.create(j)
    assert h.until(lambda: h.job_condition("init")) == "Complete:CompletionsReached"
    (pod,) = h.pods("init")
    assert h.log(pod).strip() == "one+two"
    inits = pod["status"]["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["exitCode"]) for s in inits] == [("one", 0), ("two", 0)]


def test_a_failing_init_container_fails_the_pod_and_the_app_never_runs(h: Harness) -> None:
    j = job("badinit", py("print('app ran')"), backoffLimit=0)
    j["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "setup", "image": "x", "command": py("raise SystemExit(4)")}
    ]
    h.create(j)
    assert h.until(lambda: h.job_condition("badinit")) == "Failed:BackoffLimitExceeded"
    (pod,) = h.pods("badinit")
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert h.log(pod) == ""
