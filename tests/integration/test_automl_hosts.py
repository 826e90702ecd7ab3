"""algorithm=auto on several hosts through the real `train`: two processes, each with its own ML
root laid out as SageMaker lays out each host's, share the search over Dask distributed.

The two hosts are "127.0.0.1" and "localhost": both names reach this machine's loopback without
touching /etc/hosts, and sorted, "127.0.0.1" comes first (it runs the scheduler and writes the
model).  The ports come from the settings, so parallel test runs do not collide.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import serving_models

from byoc.automl import cluster, search
from byoc.environment import MLPaths, TrainingEnvironment
from byoc.errors import UserError
from support import (
    clean_environ,
    csv_bytes,
    free_port,
    iris_frame,
    make_ml_root,
    model_dir_entries,
    processes_of,
    read_failure,
    read_until,
    run_train,
    start_train,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.slow

HOSTS = ("127.0.0.1", "localhost")


def _stop_left_running(*procs: subprocess.Popen) -> None:
    """After a test's hosts: stop each ``train`` still running (a failed assertion left it)."""
    for proc in procs:
        if proc.poll() is None:
            stop_process(proc)


def _host_root(
    base: Path, current_host: str, frame: pd.DataFrame | None = None, hosts=HOSTS, **hyperparameters
) -> Path:
    frame = iris_frame() if frame is None else frame
    return make_ml_root(
        base / current_host,
        channels={"train": {"iris.csv": csv_bytes(frame, target="target", header=True)}},
        hyperparameters={"algorithm": "auto", "target": "target", **hyperparameters},
        content_types={"train": "text/csv"},
        hosts=hosts,
        current_host=current_host,
    )


def test_two_hosts_share_the_search_and_the_first_writes_the_model(tmp_path):
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "60"}
    params = {
        "max_runtime_seconds": 240,
        "max_candidates": 3,
    }  # ends after 3: the budget is an upper bound for a busy machine
    first, second = (_host_root(tmp_path, host, **params) for host in HOSTS)
    worker = start_train(second, env=settings)
    try:
        leader = run_train(first, env=settings, timeout=600)
        worker_out = worker.communicate(timeout=120)[0]
    finally:
        if worker.poll() is None:
            stop_process(worker)
    out = leader.stdout + leader.stderr
    assert leader.returncode == 0, out
    assert worker.returncode == 0, worker_out
    assert read_failure(first) is None and read_failure(second) is None
    # the first host waited for the other host's worker to end before it exited (local mode stops
    # every container as soon as one exits), and the other host saw the scheduler close
    assert "auto: the other hosts' Dask workers have ended" in out, out
    assert "the scheduler on 127.0.0.1 closed (the job is done)" in worker_out, worker_out

    # every finished candidate names its host, and both hosts scored some
    ran_on = dict(re.findall(r"auto candidate \d+: (\S+): .* on (\S+); elapsed", out))
    assert set(ran_on.values()) == set(HOSTS), out
    board = list(csv.DictReader(io.StringIO((first / "output/data/leaderboard.csv").read_text())))
    assert {row["host"] for row in board if row["candidate_status"] == "Completed"} == set(HOSTS)
    searched = [row for row in board if row["family"] != "stack"]  # the stack is fitted on the first host
    assert {row["candidate_name"]: row["host"] for row in searched if row["host"]} == ran_on

    # the first host writes the model; the second writes nothing and says why it is done
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(first))
    assert model_dir_entries(second) == []
    assert not (second / "output" / "data" / "leaderboard.csv").exists()
    assert "the scheduler on 127.0.0.1 closed (the job is done)" in worker_out

    server = serving_models.start(first)
    try:
        rows = iris_frame().drop(columns=["target"]).iloc[[0, 60, 120]]
        response = server.invoke(
            rows.to_csv(index=False, header=False), "text/csv", "application/json", timeout=30
        )
        assert response.status_code == 200, response.text
        labels = [p["predicted_label"] for p in response.json()["predictions"]]
        assert labels == ["setosa", "versicolor", "virginica"]
    finally:
        server.stop()


def _two_host_cluster(tmp_path):
    """Both hosts' environments and a search context to scatter (the data: the search's other
    parts are not used by the tests that take it)."""
    environ = clean_environ(BYOC_DASK_SCHEDULER_PORT=str(free_port()), BYOC_DASK_CONNECT_TIMEOUT="60")
    first, second = (
        TrainingEnvironment.from_files(MLPaths(_host_root(tmp_path, host)), environ=environ) for host in HOSTS
    )
    frame = iris_frame()
    now = time.monotonic()
    ctx = search.Context(
        X=frame.drop(columns=["target"]),
        y=np.zeros(len(frame)),
        problem_type="regression",
        features=[],
        n_classes=0,
        objective=None,
        plan=None,
        seed=0,
        n_jobs=1,
        started=now,
        hard_deadline=now + 120,
        stop=threading.Event(),
    )
    return first, second, cluster.Settings.from_environ(environ), ctx


def test_the_search_context_stays_on_every_host(tmp_path):
    """The search's context is scattered to every host, so that Dask can score a lost host's
    candidate again elsewhere.  Dask's active memory manager, by default, keeps one copy of such
    data (its ReduceReplicas policy, every 2 s): candidates then go to the host holding it, and
    when that host is lost, the context goes with it and the candidates waiting are cancelled."""
    first, second, settings, ctx = _two_host_cluster(tmp_path)
    with cluster.scheduler(first):
        other = cluster._start(cluster._worker_command(cluster.address(second, settings), HOSTS[1], settings))
        try:
            with cluster.spread(first)(ctx) as runner:
                runner.client.amm.run_once()  # what the scheduler would do every 2 s
                names = {a: str(w["name"]) for a, w in runner.client.scheduler_info()["workers"].items()}
                held = runner.client.who_has([runner._context])[runner._context.key]
        finally:
            cluster._stop(other)
    assert {names[address] for address in held} == set(HOSTS)


def test_the_dask_processes_listen_only_on_their_own_ports(tmp_path):
    """No HTTP server: every Dask scheduler and worker opened one, --no-dashboard or not (the
    scheduler on port 8787 of every interface, serving /json/identity.json and the workers' logs
    and call stacks under /info; each worker /health and /metrics on a free port), unauthenticated.
    What listens is the scheduler's port and each worker's own, where the tasks travel."""
    first, second, settings, ctx = _two_host_cluster(tmp_path)
    with cluster.scheduler(first):
        other = cluster._start(cluster._worker_command(cluster.address(second, settings), HOSTS[1], settings))
        try:
            with cluster.spread(first)(ctx) as runner:  # every host's worker has joined
                workers = {str(w["name"]): a for a, w in runner.client.scheduler_info()["workers"].items()}
                listening = {
                    connection.laddr.port
                    for process in psutil.Process().children(recursive=True)
                    for connection in process.net_connections(kind="tcp")
                    if connection.status == psutil.CONN_LISTEN
                }
        finally:
            cluster._stop(other)
    assert set(workers) == set(HOSTS)
    dask_ports = {settings.scheduler_port} | {int(a.rsplit(":", 1)[1]) for a in workers.values()}
    assert listening == dask_ports, sorted(listening - dask_ports)


def test_a_scheduler_port_in_use_fails_the_job_naming_the_port(tmp_path):
    """Another process listening on the first host's scheduler port: the scheduler could not
    start, the job took that process for it and hung on a Dask client that got no answer, past
    BYOC_DASK_CONNECT_TIMEOUT and past a SIGTERM."""
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", 0))
        squatter.listen(8)
        port = squatter.getsockname()[1]
        root = _host_root(tmp_path, HOSTS[0], max_runtime_seconds=30)
        result = run_train(
            root, env={"BYOC_DASK_SCHEDULER_PORT": str(port), "BYOC_DASK_CONNECT_TIMEOUT": "30"}, timeout=120
        )
    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    assert failure is not None
    assert failure.startswith(f"the Dask scheduler could not start on host 127.0.0.1 port {port} "), failure
    assert "BYOC_DASK_SCHEDULER_PORT" in failure
    assert model_dir_entries(root) == []
    wait_for(lambda: not processes_of(root), "every process of the first host ending", timeout=10)


def test_a_host_that_cannot_reach_the_scheduler_fails_naming_host_and_port(tmp_path):
    port = free_port()  # nobody listens there: the first host never started
    root = _host_root(tmp_path, "localhost", max_runtime_seconds=30)
    # run_train's own timeout (60 s) would fail the test if the wait ignored the 3 s setting
    result = run_train(
        root, env={"BYOC_DASK_SCHEDULER_PORT": str(port), "BYOC_DASK_CONNECT_TIMEOUT": "3"}, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    assert failure is not None
    assert failure.startswith(
        f"host localhost could not reach the Dask scheduler on host 127.0.0.1 port {port} within 3 s"
    ), failure
    assert model_dir_entries(root) == []


def test_a_host_waits_for_the_scheduler_no_longer_than_the_jobs_budget(tmp_path):
    """The first host failed before its scheduler listened: the other host waited Dask's connect
    timeout (300 s by default) whatever max_runtime_seconds said, a 10 s job holding it 5 minutes."""
    port = free_port()  # nobody listens there: the first host never started its scheduler
    root = _host_root(tmp_path, "localhost", max_runtime_seconds=10)
    # BYOC_DASK_CONNECT_TIMEOUT unset (300 s): run_train's own timeout fails the test if the budget is ignored
    result = run_train(root, env={"BYOC_DASK_SCHEDULER_PORT": str(port)}, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    assert failure is not None
    assert failure.startswith(
        f"host localhost could not reach the Dask scheduler on host 127.0.0.1 port {port} within 10 s "
        "(Connection refused), the job's max_runtime_seconds=10 (shorter than BYOC_DASK_CONNECT_TIMEOUT=300)"
    ), failure
    assert "error code: scheduler_unreachable" in failure
    assert model_dir_entries(root) == []


def test_sigterm_on_the_first_host_saves_the_best_so_far_and_closes_the_cluster(tmp_path):
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "60"}
    first, second = (_host_root(tmp_path, host, max_runtime_seconds=600) for host in HOSTS)
    worker = start_train(second, env=settings)
    leader = start_train(first, env=settings)  # the default grace (100 s): a busy machine refits slowly
    try:
        seen = read_until(leader, r"auto candidate 1: .*=")
        leader.send_signal(15)
        out = seen + leader.communicate(timeout=200)[0]
        worker_out = worker.communicate(timeout=120)[0]
    finally:
        _stop_left_running(leader, worker)
    assert leader.returncode == 0, out
    assert "ending early and saving the best model so far" in out
    model = (first / "model" / "model.json").read_text()
    assert '"stopped_early": true' in model
    assert worker.returncode == 0, worker_out
    assert "the scheduler on 127.0.0.1 closed (the job is done)" in worker_out
    assert model_dir_entries(second) == [] and read_failure(second) is None


def test_sigterm_on_every_host_mid_search_saves_on_the_first_and_leaves_no_process(tmp_path):
    """SageMaker stops a job by sending SIGTERM to every host's container at once: the first
    host saves the best model so far within the grace period (exit 0, served), the other host
    exits 0 within it too, and no process of either host (forked candidate, Dask scheduler or
    worker) is left behind."""
    grace = 30
    settings = {
        "BYOC_DASK_SCHEDULER_PORT": str(free_port()),
        "BYOC_DASK_CONNECT_TIMEOUT": "60",
        "BYOC_STOP_GRACE_SECONDS": str(grace),
    }
    first, second = (_host_root(tmp_path, host, max_runtime_seconds=600) for host in HOSTS)
    worker = start_train(second, env=settings)
    leader = start_train(first, env=settings)
    try:
        seen = read_until(leader, r"auto candidate 1: .*=")
        for proc in (leader, worker):
            proc.send_signal(15)
        signalled = time.monotonic()
        out = seen + leader.communicate(timeout=grace * 3)[0]
        leader_after = time.monotonic() - signalled
        worker_out = worker.communicate(timeout=grace * 3)[0]
        worker_after = time.monotonic() - signalled
    finally:
        _stop_left_running(leader, worker)
    assert leader.returncode == 0, out
    assert worker.returncode == 0, worker_out
    for host, after in (("first", leader_after), ("second", worker_after)):
        assert after <= grace * 1.1, f"the {host} host ended {after:.1f} s after SIGTERM (grace {grace} s)"
    assert "ending early and saving the best model so far" in out
    assert (
        "SIGTERM received while scoring candidates for the first host (Dask worker): ending this host's "
        in (worker_out)
    )
    assert "host localhost: stopped; the first host saves the best model so far" in worker_out
    assert '"stopped_early": true' in (first / "model" / "model.json").read_text()
    assert read_failure(first) is None and read_failure(second) is None
    assert model_dir_entries(second) == []
    for root in (first, second):
        wait_for(
            lambda root=root: not processes_of(root),
            f"every process of {root.name} ending",
            timeout=10,
            detail=lambda root=root: "\n".join(processes_of(root)),
        )
    server = serving_models.start(first)
    try:
        response = server.invoke(
            iris_frame().drop(columns=["target"]).head(3).to_csv(index=False, header=False),
            "text/csv",
            "application/json",
            timeout=30,
        )
        assert response.status_code == 200, response.text
    finally:
        server.stop()


def test_sigterm_while_the_first_host_waits_for_the_others_stops_at_once_without_a_model(tmp_path):
    """Nothing scored yet: the first host exits 143 with the cause at once, not at the grace
    period's end (100 s here, past the wait below) nor after the hosts' connect timeout."""
    settings = {
        "BYOC_DASK_SCHEDULER_PORT": str(free_port()),
        "BYOC_DASK_CONNECT_TIMEOUT": "300",
        "BYOC_STOP_GRACE_SECONDS": "100",
    }
    first = _host_root(tmp_path, HOSTS[0], max_runtime_seconds=600)  # the other host never starts
    leader = start_train(first, env=settings)
    try:
        seen = read_until(leader, r"auto: waiting up to 300 s for the Dask worker of host\(s\) .*localhost")
        leader.send_signal(15)
        out = seen + leader.communicate(timeout=60)[0]
    finally:
        if leader.poll() is None:
            stop_process(leader)
    assert leader.returncode == 143, out
    cause = read_failure(first).splitlines()[0]
    assert cause.startswith(
        "Training job stopped by a stop signal (StopTrainingJob or spot interruption) while waiting for "
        "every host's Dask worker to join"
    ), cause
    # this host's own worker may not have joined either on a busy machine
    joined = r": the Dask worker of host\(s\) (127\.0\.0\.1, )?localhost had not joined the scheduler yet"
    assert re.search(joined, cause), cause
    assert model_dir_entries(first) == []
    wait_for(lambda: not processes_of(first), "every process of the first host ending", timeout=10)


def test_a_lost_worker_host_leaves_the_first_host_to_finish_the_job(tmp_path):
    """The second host dies mid-search (its train process killed, its Dask worker with it): the
    first host notices, scores the rest itself and saves the model — no hang, no fault."""
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "60"}
    # The search ends after 5 candidates; the budget only bounds a machine so busy that a
    # candidate takes a minute: at 240 s such a machine ran out of budget before the first host
    # could finish a candidate after the loss (the budget stopped it, as it should).
    budget = 600
    params = {"max_runtime_seconds": budget, "max_candidates": 5}
    first, second = (_host_root(tmp_path, host, **params) for host in HOSTS)
    worker = start_train(second, env=settings)
    leader = start_train(first, env=settings)
    try:
        seen = read_until(leader, r"auto candidate \d+: .* on localhost; elapsed")
        worker.kill()
        worker.wait(timeout=30)
        rest = leader.communicate(timeout=budget + 60)[0]  # the job ends by its budget, then saves
    finally:
        _stop_left_running(leader, worker)
    out = seen + rest
    assert re.search(r"auto candidate \d+: .* on localhost; elapsed", seen), out
    assert leader.returncode == 0, out
    assert read_failure(first) is None
    assert "auto: lost host(s) localhost" in rest, out
    # the search went on without the lost host: candidates finished on the first host after it
    assert re.search(r"auto candidate \d+: \S+: \w+=[-0-9.]+ .* on 127\.0\.0\.1; elapsed", rest), out
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(first))
    board = list(csv.DictReader(io.StringIO((first / "output/data/leaderboard.csv").read_text())))
    assert {row["host"] for row in board if row["candidate_status"] == "Completed"} == set(HOSTS)


def _run_two_hosts(tmp_path, budget: float, settings, frame=None, hosts=HOSTS, patch=None):
    """Both hosts' `train` to their end (the second started first, as a host may be): their roots,
    outputs and exit codes, and how long after the first start each ended (``patch``: Python the
    first host runs first, see :func:`support.train_command`)."""
    params = {"max_runtime_seconds": budget, "max_candidates": 2}
    first, second = (_host_root(tmp_path, host, frame, hosts, **params) for host in HOSTS)
    started = time.monotonic()
    worker = start_train(second, env=settings)
    leader = start_train(first, env=settings, patch=patch)
    outs: dict[str, str] = {}
    ended: dict[str, float] = {}

    def read(name: str, proc: subprocess.Popen) -> None:  # both pipes at once: a full one holds a host up
        outs[name] = proc.communicate(timeout=180)[0]
        ended[name] = time.monotonic() - started

    readers = [threading.Thread(target=read, args=item) for item in (("first", leader), ("second", worker))]
    try:
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    finally:
        _stop_left_running(leader, worker)
    return first, second, leader, worker, outs, ended


@pytest.mark.parametrize("case", ["single_class", "workers_missing"])
def test_a_failed_first_host_fails_every_host_with_its_cause(tmp_path, case):
    """The first host's job fails (its data: one class; or a third host that never joins): the other
    host failed with it (exit 1, output/failure leading with the first host's cause), within the
    budget, instead of logging "the job is done" and exiting 0 tens of seconds later."""
    budget = 30
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "10"}
    if case == "single_class":
        frame, hosts = iris_frame().head(30).assign(target="setosa"), HOSTS
    else:  # a host the job lists that never starts
        frame, hosts = None, (*HOSTS, "missing-host")
    first, second, leader, worker, outs, ended = _run_two_hosts(tmp_path, budget, settings, frame, hosts)
    assert leader.returncode == 1, outs["first"]
    assert worker.returncode == 1, outs["second"]
    cause = read_failure(first).splitlines()[0]
    assert case in read_failure(first)  # its error code
    failure = read_failure(second)
    assert failure is not None, outs["second"]
    assert failure.splitlines()[0] == f"the first host 127.0.0.1 failed: {cause}", failure
    assert f"the first host's error code: {case}, exit code 1" in failure
    assert "(the job is done)" not in outs["second"]
    for host, after in ended.items():
        assert after <= budget * 1.1, (
            f"the {host} host ended {after:.1f} s after the start (budget {budget} s)"
        )
    assert model_dir_entries(first) == [] and model_dir_entries(second) == []
    for root in (first, second):
        wait_for(lambda root=root: not processes_of(root), f"every process of {root.name} ending", timeout=10)


def test_hosts_of_a_job_that_succeeds_exit_0(tmp_path):
    """The counterpart on a small budget: the first host saves the model and the other host, having
    read that, exits 0 without a failure file.  Its two candidates end the search long before the
    budget on an idle machine; 60 s leaves them room when the machine is loaded (at 30 s, with five
    wall seconds per CPU second, both were stopped and the job rightly failed)."""
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "30"}
    first, second, leader, worker, outs, _ = _run_two_hosts(tmp_path, 60, settings)
    assert leader.returncode == 0, outs["first"]
    assert worker.returncode == 0, outs["second"]
    assert read_failure(first) is None and read_failure(second) is None
    assert "auto: every other host has read how the job ended" in outs["first"]
    assert "host localhost: the scheduler on 127.0.0.1 closed (the job is done)" in outs["second"]
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(first))
    assert model_dir_entries(second) == []


def test_a_host_that_lost_the_scheduler_without_the_outcome_says_so_and_exits_0(tmp_path):
    """The first host is killed mid-search (SIGKILL, as the kernel's OOM killer does): its scheduler
    dies with it, before it could record how the job ended.  The other host cannot tell; it says
    so, without claiming the job is done, and exits 0: SageMaker fails the job on the first host's
    exit code, and a failure here would fail a job whose model was saved when only the read raced
    the scheduler's close."""
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "30"}
    first, second = (_host_root(tmp_path, host, max_runtime_seconds=40) for host in HOSTS)
    worker = start_train(second, env=settings)
    leader = start_train(first, env=settings)
    try:
        read_until(leader, r"auto: Dask workers joined from every host")
        leader.kill()
        leader.wait(timeout=30)
        worker_out = worker.communicate(timeout=120)[0]
    finally:
        _stop_left_running(leader, worker)
    assert worker.returncode == 0, worker_out
    assert (
        "host localhost: the scheduler on 127.0.0.1 closed before this host could read how the job ended"
        in (worker_out)
    )
    assert "(the job is done)" not in worker_out
    assert read_failure(second) is None and model_dir_entries(second) == []
    wait_for(lambda: not processes_of(second), "every process of the second host ending", timeout=10)


def test_a_worker_host_whose_dask_worker_is_killed_fails_naming_the_signal_and_memory(tmp_path):
    """The second host's Dask worker killed by SIGKILL, as the kernel's OOM killer does: the host
    exited 2 with 'Internal error ... RuntimeError: ... killed by signal 9. This is a bug in byoc'.
    It now fails (exit 1, out_of_memory) leading with the signal, the likely cause and the fix; the
    first host goes on without it and saves the model."""
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "30"}
    first, second = (_host_root(tmp_path, host, max_runtime_seconds=40, max_candidates=4) for host in HOSTS)
    worker = start_train(second, env=settings)
    leader = start_train(first, env=settings)
    try:
        read_until(leader, r"auto: Dask workers joined from every host")
        (dask,) = [line for line in processes_of(second) if "byoc.automl.dask_node worker" in line]
        os.kill(int(dask.split()[0]), signal.SIGKILL)
        worker_out = worker.communicate(timeout=60)[0]
        leader.communicate(timeout=120)
    finally:
        _stop_left_running(leader, worker)
    assert worker.returncode == 1, worker_out
    failure = read_failure(second)
    assert failure is not None, worker_out
    assert failure.startswith(
        "the Dask worker of host localhost was killed by signal 9 (SIGKILL), most likely by the kernel's "
        "OOM killer (out of memory): this container has "
    ), failure
    assert "use an instance type with more memory" in failure.splitlines()[0]
    assert "error code: out_of_memory" in failure and "Internal error" not in failure
    assert model_dir_entries(second) == []
    wait_for(lambda: not processes_of(second), "every process of the second host ending", timeout=10)


def test_a_first_host_whose_scheduler_could_not_start_fails_the_other_host(tmp_path):
    """Another process holds the scheduler's port: the first host fails at once (scheduler_failed);
    the other host reaches that port, where no Dask scheduler answers, and fails within the
    connect timeout instead of exiting 0 once its Dask worker gave up."""
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", 0))
        squatter.listen(8)
        settings = {
            "BYOC_DASK_SCHEDULER_PORT": str(squatter.getsockname()[1]),
            "BYOC_DASK_CONNECT_TIMEOUT": "8",
        }
        first, second, leader, worker, outs, _ = _run_two_hosts(tmp_path, 30, settings)
    assert leader.returncode == 1, outs["first"]
    assert worker.returncode == 1, outs["second"]
    assert "error code: scheduler_failed" in read_failure(first)
    failure = read_failure(second)
    assert failure.startswith(
        f"host localhost could not reach the Dask scheduler on host 127.0.0.1 port {settings['BYOC_DASK_SCHEDULER_PORT']} "
        "within 8 s (it accepts connections, but no Dask scheduler answered there)"
    ), failure
    assert "(the job is done)" not in outs["second"]


# Run by the first host before its search's context is scattered: the other host's Dask worker is
# frozen (SIGSTOP: the scheduler still lists it as running, so the scatter is sent to it and
# cannot finish), then killed (SIGKILL, as the OOM killer does) while the scatter waits on it.
_KILL_BEFORE_SCATTER = """
import os, signal, sys, threading
from pathlib import Path
sys.path.insert(0, {tests!r})
import distributed
from support import processes_of

_scatter = distributed.Client.scatter

def scatter(self, *args, **kwargs):
    if not getattr(scatter, "done", False):
        scatter.done = True
        (line,) = [p for p in processes_of(Path({root!r})) if "byoc.automl.dask_node worker" in p]
        pid = int(line.split()[0])
        os.kill(pid, signal.SIGSTOP)
        print("test: froze the Dask worker of localhost before the scatter", flush=True)
        threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()
    return _scatter(self, *args, **kwargs)

distributed.Client.scatter = scatter
"""


def test_a_worker_host_lost_while_the_context_is_scattered_leaves_the_first_host_to_finish(tmp_path):
    """The second host's Dask worker dies while the first host scatters the search's context to
    the workers (just after "Dask workers joined from every host"): the first host failed with
    exit 2, 'Internal error ... CommClosedError ... ConnectionPool.scatter'.  It now names the lost
    host and why, sends the context to the hosts that remain and saves the model within budget."""
    budget = 40
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "30"}
    tests, second_root = Path(__file__).resolve().parents[1], tmp_path / HOSTS[1]  # as _host_root lays it out
    patch = _KILL_BEFORE_SCATTER.format(tests=str(tests), root=str(second_root))
    first, second, leader, worker, outs, ended = _run_two_hosts(tmp_path, budget, settings, patch=patch)
    out, worker_out = outs["first"], outs["second"]
    assert second == second_root
    assert "test: froze the Dask worker of localhost before the scatter" in out, out
    assert leader.returncode == 0, out
    assert "Internal error" not in out and read_failure(first) is None, out
    assert re.search(r"auto: lost host\(s\) localhost .*search's context", out), out
    assert re.search(r"auto candidate \d+: \S+: \w+=[-0-9.]+ .* on 127\.0\.0\.1; elapsed", out), out
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(first))
    assert worker.returncode == 1, worker_out  # its Dask worker was killed: it says so (out_of_memory)
    assert "killed by signal 9 (SIGKILL)" in read_failure(second)
    assert ended["first"] <= budget * 1.1, f"the first host ended {ended['first']:.1f} s after the start"


def test_a_cluster_that_takes_no_context_leaves_the_first_host_to_search_alone(tmp_path):
    """Every scatter of the search's context fails (no host's worker takes it, none is lost): the
    first host says so and searches alone, as on a single host, and saves the model; the other
    host, never used, ends with the job (exit 0)."""
    budget = 40
    settings = {"BYOC_DASK_SCHEDULER_PORT": str(free_port()), "BYOC_DASK_CONNECT_TIMEOUT": "30"}
    patch = (
        "import distributed\n"
        "def scatter(self, *args, **kwargs):\n"
        "    raise OSError('test: no worker takes data')\n"
        "distributed.Client.scatter = scatter\n"
    )
    first, second, leader, worker, outs, ended = _run_two_hosts(tmp_path, budget, settings, patch=patch)
    out, worker_out = outs["first"], outs["second"]
    assert leader.returncode == 0, out
    assert "Internal error" not in out and read_failure(first) is None, out
    assert "the search's context could not be sent to every host at once (OSError: test: no worker" in out
    assert (
        "auto: the search's context could not be sent to any host's Dask worker; the search goes on on "
        "the first host 127.0.0.1 alone"
    ) in out, out
    ran_on = re.findall(r"auto candidate \d+: \S+: \w+=[-0-9.]+ .* on (\S+); elapsed", out)
    assert ran_on and set(ran_on) == {"127.0.0.1"}, out
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(first))
    assert worker.returncode == 0, worker_out
    assert read_failure(second) is None
    assert ended["first"] <= budget * 1.1, f"the first host ended {ended['first']:.1f} s after the start"


def test_a_first_host_whose_scheduler_does_not_answer_fails_naming_host_and_port(tmp_path):
    """The first host's own Dask scheduler gone when its search connects (no process listens on its
    port): a UserError naming the host and the port (scheduler_lost), not an internal error."""
    environ = clean_environ(BYOC_DASK_SCHEDULER_PORT=str(free_port()), BYOC_DASK_CONNECT_TIMEOUT="2")
    first = TrainingEnvironment.from_files(MLPaths(_host_root(tmp_path, HOSTS[0])), environ=environ)
    *_, ctx = _two_host_cluster(tmp_path / "context")
    with pytest.raises(UserError) as caught, cluster.spread(first)(ctx):
        pass
    assert caught.value.code == "scheduler_lost"
    assert caught.value.message.startswith(
        f"the Dask scheduler on host 127.0.0.1 port {environ['BYOC_DASK_SCHEDULER_PORT']} failed while "
        "connecting to it ("
    ), caught.value.message
