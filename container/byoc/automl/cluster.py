"""``algorithm=auto`` on several hosts: Dask distributed scores the candidates on every host.

SageMaker starts the same container on each host of the job (resourceconfig.json lists them,
sorted: algo-1, algo-2, ...).  The first host runs a Dask scheduler and a Dask worker as plain
processes, reads the data, runs the search as the Dask client and writes the model, the
leaderboard and the report; every other host runs only a Dask worker connected to the first
host's scheduler.  Before the scheduler closes, the first host records how its job ended on it
(Dask's scheduler metadata) and waits for the other hosts to read it: each of them then exits 0
when the first host saved the model, and fails with the first host's cause when it failed.

Each worker scores one candidate at a time with the same :func:`byoc.automl.search.evaluate`
as a single host, so what to score next, the cost model and the deadlines stay in
:class:`byoc.automl.search.Search`; :class:`DaskRunner` only carries candidates out and
results back.  Only the first host reads the channels: the search's context (features,
target, splits) goes to every worker once, with Dask's ``scatter``.  The channels must
therefore be ``FullyReplicated`` (SageMaker's default): with ``ShardedByS3Key`` the first host
would hold only its shard, and the model would silently be trained on part of the data.

Settings (environment variables, e.g. the estimator's ``environment=``): the scheduler's port,
each worker's port (0: any free port) and how long a host waits for the others.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from byoc.automl import search
from byoc.automl.candidates import Candidate
from byoc.errors import ConfigError, JobStopped, UserError

if TYPE_CHECKING:
    from distributed import Client, Future

    from byoc.environment import TrainingEnvironment
    from byoc.job import Progress

log = logging.getLogger(__name__)

SCHEDULER_PORT_VARIABLE = "BYOC_DASK_SCHEDULER_PORT"
WORKER_PORT_VARIABLE = "BYOC_DASK_WORKER_PORT"
TIMEOUT_VARIABLE = "BYOC_DASK_CONNECT_TIMEOUT"
DEFAULT_SCHEDULER_PORT = 8786  # Dask's own default
DEFAULT_WORKER_PORT = 0  # any free port: the worker tells the scheduler which one
DEFAULT_TIMEOUT_SECONDS = 300.0
_NODE = [sys.executable, "-m", "byoc.automl.dask_node"]  # Dask's commands without their HTTP server
POLL_SECONDS = 0.2
WORKERS_END_SECONDS = 10.0  # how long the first host waits for the others' workers to end
CHECK_HOSTS_SECONDS = 1.0
OUTCOME_READ_SECONDS = 10.0  # how long the first host waits for the others to read how its job ended
LOST_HOST_SECONDS = 5.0  # after a failed scatter: how long to wait for the scheduler to drop a host
CLOSE_SECONDS = 10.0  # how long the first host's Dask client may take to close
OUTCOME_KEY = ["byoc", "outcome"]  # the scheduler's metadata: how the first host's job ended
WATCHING_KEY = ["byoc", "watching"]  # host -> the id of the Dask client reading it there
PR_SET_PDEATHSIG = 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the scheduler listens and how long hosts wait for each other."""

    scheduler_port: int = DEFAULT_SCHEDULER_PORT
    worker_port: int = DEFAULT_WORKER_PORT
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            scheduler_port=int(_number(environ, SCHEDULER_PORT_VARIABLE, DEFAULT_SCHEDULER_PORT, port=True)),
            worker_port=int(_number(environ, WORKER_PORT_VARIABLE, DEFAULT_WORKER_PORT, port=True)),
            timeout=_number(environ, TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_SECONDS),
        )


def _number(environ: Mapping[str, str], name: str, default: float, *, port: bool = False) -> float:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw) if port else float(raw)
    except ValueError:
        kind = "a port number" if port else "a number of seconds"
        raise ConfigError(f"{name}={raw!r} is not {kind}", code="bad_setting") from None
    if port and not 0 <= value <= 65535:
        raise ConfigError(f"{name}={raw!r} is not a port number (0-65535)", code="bad_setting")
    if not port and not value > 0:
        raise ConfigError(f"{name}={raw!r} must be more than 0 seconds", code="bad_setting")
    return value


@dataclasses.dataclass
class Outcome:
    """How the first host's job ended, for the other hosts: no failure (the model was saved), or
    the cause ``output/failure`` leads with, the exit code and the error code."""

    failure: str | None = None
    exit_code: int = 0
    code: str = ""

    def fail(self, cause: str, exit_code: int, code: str) -> None:
        self.failure, self.exit_code, self.code = cause, exit_code, code

    def record(self, host: str) -> dict[str, Any]:
        return {"host": host, "failure": self.failure, "exit_code": self.exit_code, "code": self.code}


class FirstHostFailed(UserError):
    """On a host other than the first: the first host's job failed, so this one fails with its
    cause and exit code (SageMaker may show any failed host's ``output/failure``)."""

    code = "first_host_failed"

    def __init__(self, record: Mapping[str, Any], this_host: str) -> None:
        super().__init__(
            f"the first host {record['host']} failed: {record['failure']}",
            details=(
                f"the first host's error code: {record['code']}, exit code {record['exit_code']}; host "
                f"{this_host} only scored candidates for it (algorithm=auto on several hosts): the first "
                "host's output/failure and log hold the details"
            ),
        )
        self.exit_code = int(record["exit_code"]) or 1


def is_first_host(env: TrainingEnvironment) -> bool:
    return env.current_host == env.hosts[0]


def check_channels(env: TrainingEnvironment) -> None:
    """Every host must see all the data: only the first host reads it (see the module docstring)."""
    for name, channel in env.channels.items():
        kind = channel.s3_distribution_type or "FullyReplicated"
        if kind != "FullyReplicated":
            raise ConfigError(
                f"channel '{name}' is {kind}, but algorithm=auto on {len(env.hosts)} hosts needs "
                "every channel FullyReplicated: the first host reads all the data and sends it to "
                "the other hosts' Dask workers; set distribution='FullyReplicated' on the "
                "TrainingInput (SageMaker's default)",
                code="sharded_channel",
            )


# -- processes -----------------------------------------------------------------------------------


def _child_setup() -> Callable[[], None]:
    """``preexec_fn`` for the Dask processes: the stop signals unblocked (the job shell blocks
    them in every thread, and a child inherits the mask), and killed when this process dies."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls it

    def setup() -> None:
        from byoc.job import STOP_SIGNALS

        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return setup


def _start(command: list[str]) -> subprocess.Popen:
    env = dict(
        os.environ,
        DASK_LOGGING__DISTRIBUTED="warning",
        # No active memory manager policy: its default (ReduceReplicas, every 2 s) keeps one copy
        # of the search's context, scattered to every host; Dask then places candidates on the
        # host holding it (work stealing moves some later), and a lost holder takes the context
        # along ("lose scattered data, which can't be recovered"): its candidates are cancelled.
        DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__POLICIES="[]",
        PYTHONUNBUFFERED="1",
    )
    return subprocess.Popen(command, env=env, preexec_fn=_child_setup())


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _worker_command(address: str, host: str, settings: Settings) -> list[str]:
    return [
        *_NODE,
        "worker",
        address,
        "--name",
        host,
        "--host",
        host,
        "--worker-port",
        str(settings.worker_port),
        "--nthreads",
        "1",  # one candidate at a time per host, as on a single host (it uses the cores itself)
        "--no-nanny",
        "--no-dashboard",
        "--memory-limit",
        "0",  # no pausing or spilling: the host's memory is the job's, as on a single host
        "--death-timeout",
        str(settings.timeout),
        "--preload",
        "byoc.automl.search",  # scikit-learn and pandas imported before the worker joins, not on its first task
    ]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _other_workers(scheduler: str, this_host: str) -> list[tuple[str, int]]:
    """The other hosts' Dask workers (host, port) the scheduler knows; none if it cannot say."""
    from distributed import Client
    from distributed.comm import get_address_host_port

    try:
        with Client(scheduler, timeout=5, set_as_default=False) as client:
            workers = client.scheduler_info()["workers"]
        return [get_address_host_port(a) for a, w in workers.items() if str(w.get("name")) != this_host]
    except Exception:  # the scheduler is gone or busy: nothing to wait for
        log.debug("could not list the Dask workers", exc_info=True)
        return []


def _wait_for_workers_to_end(workers: Sequence[tuple[str, int]]) -> None:
    """Until the other hosts' Dask workers no longer listen (at most WORKERS_END_SECONDS), then
    long enough for each host's loop to see it and log that the job is done.

    Why the first host waits: SageMaker SDK local mode (docker compose) stops every container
    as soon as one exits, so without it the other hosts could be stopped before they ended on
    their own and said so; on SageMaker it costs the job about a second.
    """
    deadline = time.monotonic() + WORKERS_END_SECONDS
    remaining = list(workers)
    while remaining and time.monotonic() < deadline:
        remaining = [(host, port) for host, port in remaining if _accepts(host, port)]
        if remaining:
            time.sleep(POLL_SECONDS)
    if remaining:
        log.warning(
            "auto: the Dask worker(s) at %s still listen %g s after the scheduler closed",
            ", ".join(f"{host}:{port}" for host, port in remaining),
            WORKERS_END_SECONDS,
        )
    elif workers:
        log.info("auto: the other hosts' Dask workers have ended")
        time.sleep(5 * POLL_SECONDS)  # each host polls its worker every POLL_SECONDS


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    *,
    who: str,
    stop: threading.Event | None = None,
    budget: float | None = None,
) -> None:
    """Until ``host:port`` accepts a TCP connection (names may resolve late at start-up); at most
    ``timeout`` seconds, or the job's ``budget`` (max_runtime_seconds) when that is shorter."""
    wait = _connect_wait(timeout, budget)
    deadline = time.monotonic() + wait
    last = "no attempt"
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as exc:
            last = exc.strerror or str(exc)
        if (stop is not None and stop.is_set()) or time.monotonic() >= deadline:
            raise _unreachable(who, host, port, timeout, last, budget)
        time.sleep(POLL_SECONDS)


def _connect_wait(timeout: float, budget: float | None) -> float:
    """How long a host waits for the first host's scheduler: BYOC_DASK_CONNECT_TIMEOUT, but never
    past the job's budget.  A scheduler that is not up by then belongs to a first host that failed
    before it listened (or never started), and a search starting later would end past the budget
    anyway: waiting Dask's 300 s held a 30 s job for ten times its budget."""
    return timeout if budget is None else min(timeout, budget)


def _unreachable(
    who: str, host: str, port: int, timeout: float, why: str, budget: float | None = None
) -> ConfigError:
    wait = _connect_wait(timeout, budget)
    bounded = wait < timeout
    return ConfigError(
        f"host {who} could not reach the Dask scheduler on host {host} port {port} within "
        f"{wait:g} s ({why})"
        + (
            f", the job's max_runtime_seconds={budget:g} (shorter than {TIMEOUT_VARIABLE}={timeout:g}): "
            "a scheduler starting later would leave the search no time"
            if bounded
            else ""
        )
        + "; the first host of the job runs it (algorithm=auto on several hosts), so when it failed "
        "before its scheduler listened, its output/failure and log say why. Check that every host runs "
        f"this image with the same hyperparameters and can reach {host}:{port} ({SCHEDULER_PORT_VARIABLE})"
        + ("" if bounded else f", or raise {TIMEOUT_VARIABLE}"),
        code="scheduler_unreachable",
    )


@contextlib.contextmanager
def scheduler(env: TrainingEnvironment) -> Iterator[Outcome]:
    """On the first host, for the whole job: the Dask scheduler and this host's worker.

    Started before the data is read, so the other hosts connect while this one reads; closed
    when this host's job has ended (model saved, or failed), so the other hosts end after it:
    SDK local mode stops every container as soon as one exits.  The job marks a failure on the
    :class:`Outcome` it is given (an exception without one is recorded as it is); before the
    scheduler closes, the other hosts read it there (:func:`_announce`).
    """
    settings = Settings.from_environ(env.environ)
    check_channels(env)
    first = env.hosts[0]
    log.info(
        "auto on %d hosts (%s): starting the Dask scheduler on %s port %d",
        len(env.hosts),
        ", ".join(env.hosts),
        first,
        settings.scheduler_port,
    )
    folder = Path(tempfile.mkdtemp(prefix="byoc-dask-"))
    started = folder / "scheduler.json"  # written by the scheduler once it listens on its port
    processes = [
        _start(
            [
                *_NODE,
                "scheduler",
                "--port",
                str(settings.scheduler_port),
                "--no-dashboard",
                "--scheduler-file",
                str(started),
            ]
        )
    ]
    outcome = Outcome()
    listening = False
    others_until = time.monotonic() + settings.timeout
    try:
        _wait_for_scheduler(processes[0], started, first, settings)
        listening = True
        others_until = time.monotonic() + settings.timeout  # a host reaching it later has failed already
        wait_for_port(first, settings.scheduler_port, settings.timeout, who=env.current_host)
        processes.append(_start(_worker_command(address(env, settings), env.current_host, settings)))
        yield outcome
    except BaseException as exc:
        if outcome.failure is None:  # the job marks its own failures (training.train): not one of them
            if isinstance(exc, UserError):
                outcome.fail(" ".join(exc.message.split()), 1, exc.code)
            else:
                outcome.fail(_error_text(exc, None), 2, "internal_error")
        raise
    finally:
        # (not another process on a port in use: a Dask client waits for its answer past any timeout)
        if listening:
            _announce(address(env, settings), outcome, env, others_until)
        others = _other_workers(address(env, settings), env.current_host) if listening else []
        log.info("auto: closing the Dask cluster (the other hosts' workers end with it)")
        for proc in processes:  # the scheduler first: every worker, this host's too, then ends
            _stop(proc)
        shutil.rmtree(folder, ignore_errors=True)
        _wait_for_workers_to_end(others)


def _announce(where: str, outcome: Outcome, env: TrainingEnvironment, others_until: float) -> None:
    """Record how this (the first) host's job ended on the scheduler, then wait, at most
    OUTCOME_READ_SECONDS, until the other hosts have read it.

    Each other host reads it with a Dask client of its own, registered under WATCHING_KEY and
    closed once it has read (:class:`_Watcher`).  So this waits for each host whose client is
    still connected (a host that died took its client along) and, after a failure, for each host
    whose client has not registered yet, while it may still come (a job failing on its data ends
    here seconds after the start, before the others have imported Dask): without it, the other
    hosts saw the scheduler close and exited 0, "the job is done", after the first had failed.
    """
    from distributed import Client

    def client_ids(dask_scheduler: Any) -> list[str]:  # run by the scheduler (sent by value)
        return list(dask_scheduler.clients)

    others = [h for h in env.hosts if h != env.current_host]
    deadline = time.monotonic() + OUTCOME_READ_SECONDS
    waiting: list[str] = []
    try:
        with Client(where, timeout=5, set_as_default=False) as client:
            client.set_metadata(OUTCOME_KEY, outcome.record(env.current_host))
            while True:
                watching = client.get_metadata(WATCHING_KEY, default={})
                connected = set(client.run_on_scheduler(client_ids))
                now = time.monotonic()
                waiting = [
                    h
                    for h in others
                    if watching.get(h) in connected
                    or (h not in watching and outcome.failure is not None and now < others_until)
                ]
                if not waiting or now >= deadline:
                    break
                time.sleep(POLL_SECONDS)
    except Exception:  # the other hosts then see the scheduler close without it, and say so
        log.warning("auto: could not tell the other hosts how the job ended", exc_info=True)
        return
    if waiting:
        log.warning(
            "auto: host(s) %s had not read how the job ended %g s after it was recorded; closing the "
            "Dask cluster",
            ", ".join(waiting),
            OUTCOME_READ_SECONDS,
        )
    elif others:
        log.info("auto: every other host has read how the job ended")


def _wait_for_scheduler(proc: subprocess.Popen, started: Path, host: str, settings: Settings) -> None:
    """Until the scheduler process listens (it writes ``started``); its end before that fails the
    job at once.  Waiting for the port alone took another process listening there (the port in
    use) for the scheduler, whose own start had failed: the job then hung, past the connect
    timeout and past a SIGTERM, on a client that never got an answer."""
    deadline = time.monotonic() + settings.timeout
    while not started.exists():
        if proc.poll() is not None:
            raise ConfigError(
                f"the Dask scheduler could not start on host {host} port {settings.scheduler_port} "
                f"(it ended with exit code {proc.returncode}; its log above says why, e.g. 'Address "
                f"already in use': another process listens on that port): set {SCHEDULER_PORT_VARIABLE} "
                "to a free port (algorithm=auto on several hosts)",
                code="scheduler_failed",
            )
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"the Dask scheduler did not start on host {host} port {settings.scheduler_port} within "
                f"{settings.timeout:g} s; raise {TIMEOUT_VARIABLE}",
                code="scheduler_failed",
            )
        time.sleep(POLL_SECONDS)


def address(env: TrainingEnvironment, settings: Settings) -> str:
    return f"tcp://{env.hosts[0]}:{settings.scheduler_port}"


class _Watcher(threading.Thread):
    """On a host other than the first: a Dask client that reads how the first host's job ended
    (see :func:`_announce`) and closes once it has, which tells the first host it was read.

    A thread of its own: a Dask client connecting to a port where something other than the
    scheduler listens waits for an answer past any timeout; the host's loop must not.
    """

    def __init__(self, where: str, host: str, timeout: float) -> None:
        super().__init__(name="byoc-outcome-watcher", daemon=True)
        self.where, self.host, self.timeout = where, host, timeout
        self.outcome: dict[str, Any] | None = None
        self.error = ""
        self.connected = threading.Event()  # registered with the scheduler
        self.done = threading.Event()
        self.quit = threading.Event()

    def run(self) -> None:
        from distributed import Client

        # A scheduler gone mid-read is this host's own message (run_worker), not the traceback Dask's
        # client logs while it tries to reconnect (this process has no other Dask client)
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
        try:
            client = Client(self.where, timeout=self.timeout, set_as_default=False)
        except Exception as exc:  # the scheduler closed before this host connected
            self.error = f"{type(exc).__name__}: {exc}"
            log.debug("connecting to read how the first host's job ended", exc_info=True)
            self.done.set()
            return
        try:
            client.set_metadata([*WATCHING_KEY, self.host], client.id)
            self.connected.set()
            while self.outcome is None and not self.quit.is_set():
                scheduler = client.scheduler
                if scheduler is None:  # the client was closed
                    break
                # a bounded wait (Client.get_metadata takes none): a closed scheduler is not waited for
                self.outcome = client.sync(
                    scheduler.get_metadata, keys=OUTCOME_KEY, default=None, callback_timeout=5
                )
                self.quit.wait(POLL_SECONDS)
        except Exception as exc:  # the scheduler closed (or cannot be reached) before the outcome came
            self.error = f"{type(exc).__name__}: {exc}"
            log.debug("reading how the first host's job ended", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=2)  # the first host waits for this
            self.done.set()


def run_worker(env: TrainingEnvironment, progress: Progress, budget: float | None = None) -> None:
    """On every host but the first: a Dask worker until the first host's job has ended.  It waits
    for the first host's scheduler at most ``budget`` seconds (max_runtime_seconds), or
    BYOC_DASK_CONNECT_TIMEOUT when that is shorter.

    Writes no model.  When the first host's job failed, this one fails with its cause and exit
    code (:class:`FirstHostFailed`); when it succeeded, or when this host cannot tell (the
    scheduler closed before this host read how the job ended: the first host was killed, or
    could not wait), it exits 0, as SageMaker marks the job failed when any host fails: the first
    host's exit code tells.  A stop signal ends the worker and the job (exit 0): the first host,
    stopped too, saves the best model so far.
    """
    settings = Settings.from_environ(env.environ)
    check_channels(env)
    first = env.hosts[0]
    stop = threading.Event()
    progress.soft_stop = stop
    progress.soft_stop_action = "ending this host's Dask worker (the first host saves the model)"
    progress.stop_grace = env.stop_grace_seconds
    progress.phase = f"waiting for the Dask scheduler on {first} port {settings.scheduler_port}"
    log.info(
        "auto on %d hosts: host %s is a Dask worker for the scheduler on %s port %d (the first host "
        "reads the data and writes the model)",
        len(env.hosts),
        env.current_host,
        first,
        settings.scheduler_port,
    )
    wait_for_port(
        first, settings.scheduler_port, settings.timeout, who=env.current_host, stop=stop, budget=budget
    )
    progress.phase = "scoring candidates for the first host (Dask worker)"
    connect_wait = _connect_wait(settings.timeout, budget)
    watcher = _Watcher(address(env, settings), env.current_host, connect_wait)
    watcher.start()
    worker = _start(_worker_command(address(env, settings), env.current_host, settings))
    connect_by = time.monotonic() + connect_wait

    def unreachable() -> bool:
        """The port answered, but no Dask scheduler did: the first host's did not start."""
        return not watcher.connected.is_set() and (watcher.done.is_set() or time.monotonic() >= connect_by)

    def done() -> bool:
        return stop.is_set() or _failed(watcher.outcome) or unreachable()

    ended_itself = False
    try:
        while worker.poll() is None and not done():
            time.sleep(POLL_SECONDS)
        ended_itself = worker.poll() is not None
    finally:
        if worker.poll() is None and done():  # no graceful close: the first host is done with it
            worker.kill()  # (it waited 8-10 s for the candidate's thread); its forked child dies with it
        _stop(worker)
    if ended_itself and worker.returncode in (-signal.SIGTERM, -signal.SIGINT):
        stop.wait(1.0)  # a stop sent to the process group reaches the worker too: the job's stop, then
    if stop.is_set():
        watcher.quit.set()
        log.warning("host %s: stopped; the first host saves the best model so far", env.current_host)
        return
    if ended_itself and worker.returncode < 0:  # the cause here, whatever the first host makes of it
        watcher.quit.set()
        raise _worker_killed(env.current_host, -worker.returncode, watcher.outcome)
    if watcher.outcome is None and watcher.connected.is_set():  # the worker ended first
        watcher.done.wait(OUTCOME_READ_SECONDS)  # the outcome may be on its way
    outcome = watcher.outcome
    if outcome is not None and outcome.get("failure"):
        raise FirstHostFailed(outcome, env.current_host)
    if not watcher.connected.is_set():
        why = watcher.error or "it accepts connections, but no Dask scheduler answered there"
        raise _unreachable(env.current_host, first, settings.scheduler_port, settings.timeout, why, budget)
    if outcome is None:
        watcher.quit.set()
        log.warning(
            "host %s: the scheduler on %s closed before this host could read how the job ended (%s): "
            "the first host may have been killed or failed; its log and exit code say whether the job "
            "saved a model. This host writes no model and exits 0 (SageMaker fails the job when the "
            "first host failed)",
            env.current_host,
            first,
            f"the last read: {watcher.error}" if watcher.error else "none was recorded",
        )
        return
    log.info(
        "host %s: the scheduler on %s closed (the job is done); this host writes no model",
        env.current_host,
        first,
    )


def _worker_killed(host: str, signum: int, outcome: Mapping[str, Any] | None) -> UserError:
    """This host's Dask worker ended by signal ``signum`` (not by this host): SIGKILL is how the
    kernel's OOM killer ends a process, the instance's size and not a fault of byoc (exit 1,
    out_of_memory, as a MemoryError in training is); another signal came from outside the job."""
    from byoc import outofmemory
    from byoc.errors import ResourceError

    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = "an unknown signal"
    killed = f"the Dask worker of host {host} was killed by signal {signum} ({name})"
    first = (
        f"; the first host {outcome['host']} failed after it: {outcome['failure']}"
        if _failed(outcome) and outcome is not None
        else ""
    )
    details = (
        f"host {host} scored candidates for the first host (algorithm=auto on several hosts); the first host "
        f"goes on with the remaining hosts{first}"
    )
    if signum == signal.SIGKILL:
        return ResourceError(
            f"{killed}, most likely by the kernel's OOM killer (out of memory): this container has "
            f"{outofmemory.memory_figure()}; every host holds the whole training data and fits one "
            f"candidate at a time with it: {outofmemory.TRAINING_FIXES}",
            details=details,
        )
    return UserError(
        f"{killed}, not by this host (which ends its worker only when the job is done or stopped): "
        "something else on the instance sent it; run the job again",
        code="worker_killed",
        details=details,
    )


def _failed(outcome: Mapping[str, Any] | None) -> bool:
    return outcome is not None and bool(outcome.get("failure"))


# -- the first host: the search's runner ---------------------------------------------------------


def spread(env: TrainingEnvironment) -> Callable[[search.Context], contextlib.AbstractContextManager[Any]]:
    """The runner factory :func:`byoc.automl.job.run` takes: a Dask client for the search."""
    settings = Settings.from_environ(env.environ)
    where = address(env, settings)

    @contextlib.contextmanager
    def runner(ctx: search.Context) -> Iterator[DaskRunner]:
        from distributed import Client

        try:
            client = Client(where, timeout=settings.timeout, set_as_default=False)
        except Exception as exc:  # its own scheduler, started by this host: it ended or does not answer
            raise _scheduler_lost(env, settings, "connecting to it", exc) from exc
        try:
            try:
                _wait_for_workers(client, env, settings, ctx.stop)
            except (UserError, JobStopped):
                raise
            except Exception as exc:
                raise _scheduler_lost(env, settings, "waiting for the other hosts' workers", exc) from exc
            yield DaskRunner(client, ctx, slots=len(env.hosts), hosts=env.hosts, here=env.current_host)
        finally:
            try:  # bounded: a client whose scheduler is gone may wait for it; the search is over anyway
                client.close(timeout=CLOSE_SECONDS)
            except Exception:
                log.warning("auto: the Dask client did not close cleanly", exc_info=True)

    return runner


def _scheduler_lost(env: TrainingEnvironment, settings: Settings, doing: str, exc: Exception) -> UserError:
    """The first host's own Dask scheduler failed it before any candidate was handed out."""
    return UserError(
        f"the Dask scheduler on host {env.hosts[0]} port {settings.scheduler_port} failed while {doing} "
        f"({_error_text(exc, 300)}): it runs on the first host of the job "
        "(algorithm=auto on several hosts), so its process ended or stopped answering (its log above says "
        "why, e.g. killed for lack of memory); run the job again",
        code="scheduler_lost",
    )


def _wait_for_workers(
    client: Client, env: TrainingEnvironment, settings: Settings, stop: threading.Event
) -> None:
    """Until every host's worker has joined; a stop signal meanwhile ends the job at once
    (nothing to save yet) rather than after the grace period."""
    deadline = time.monotonic() + settings.timeout
    waiting = False
    while True:
        joined = {str(w.get("name")) for w in client.scheduler_info()["workers"].values()}
        missing = [h for h in env.hosts if h not in joined]
        if not missing:
            log.info("auto: Dask workers joined from every host (%s)", ", ".join(env.hosts))
            return
        if stop.is_set():
            raise JobStopped(
                f"the Dask worker of host(s) {', '.join(missing)} had not joined the scheduler yet, and no "
                "candidate had been scored"
            )
        if not waiting:
            waiting = True
            log.info(
                "auto: waiting up to %g s for the Dask worker of host(s) %s to join",
                settings.timeout,
                ", ".join(missing),
            )
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"the Dask worker of host(s) {', '.join(missing)} did not join the scheduler on "
                f"host {env.hosts[0]} port {settings.scheduler_port} within {settings.timeout:g} s "
                f"(joined: {', '.join(sorted(joined)) or 'none'}); every host of the job must run "
                f"this image with algorithm=auto and reach {env.hosts[0]}:{settings.scheduler_port}, "
                f"or raise {TIMEOUT_VARIABLE}",
                code="workers_missing",
            )
        time.sleep(POLL_SECONDS)


def score_remotely(
    candidate: Candidate,
    ctx: search.Context,
    deadline_in: float,
    hard_deadline_in: float,
    elapsed: float,
    keep_model_below: float,
) -> search.Result:
    """:func:`~byoc.automl.search.evaluate` on a Dask worker.

    Monotonic clocks are per host: the deadlines travel as seconds from now and are anchored
    again here.  As on one host, the candidate is scored in a forked child killed at the search
    deadline (:mod:`byoc.automl.isolated`), so an abandoned candidate stops using the host's CPU.
    """
    from distributed import get_worker

    from byoc.automl import isolated

    now = time.monotonic()
    here = dataclasses.replace(ctx, started=now - elapsed, hard_deadline=now + hard_deadline_in)
    result = isolated.evaluate(candidate, here, now + deadline_in, now + deadline_in, keep_model_below)
    result.host = str(get_worker().name)
    return result


SENDING = "while the search's context was sent to it"


class HostLost(Exception):
    """A call to the cluster abandoned: a host it waited for left (or the job's time ran out)."""


def _context_key(ctx: search.Context) -> str:
    return f"{type(ctx).__name__}-{uuid.uuid4().hex}"  # as Dask names it (scatter with hash=False)


def _error_text(exc: BaseException, limit: int | None = 200) -> str:
    """``Type: message`` on one line (Dask's errors span lines), the message cut at ``limit``."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:limit]}"


def _release_key(dask_scheduler: Any, key: str, client: str) -> None:  # run by the scheduler (sent by value)
    if key in dask_scheduler.tasks and client in dask_scheduler.clients:
        dask_scheduler.client_releases_keys(keys=[key], client=client)


class DaskRunner:
    """Candidates out to the Dask workers (one per host, one candidate each), results back.

    A host that dies (its worker leaves the scheduler) is logged and leaves the search with one
    slot less; Dask itself runs the candidate it was scoring again on another host, and a
    candidate whose hosts all died (Dask's ``KilledWorker``) is recorded as failed with the cause.
    A host lost while the search's context is sent out is logged so too, and the context sent to
    the hosts that remain; when the cluster cannot take it (or a candidate) at all, the rest of
    the search runs on this host (``here``) alone, one candidate at a time, as on a single host.
    """

    def __init__(
        self, client: Client, ctx: search.Context, slots: int, hosts: Sequence[str] = (), here: str = ""
    ) -> None:
        from distributed import as_completed

        self.client = client
        self.ctx = ctx
        self.slots = slots
        self._hosts = set(hosts)
        self._here = here
        self._alone: search.InProcess | None = None  # the cluster failed: this host scores the rest
        self._checked = time.monotonic()
        self._deadlines: dict[str, float] = {}
        self._keep_below: dict[str, float] = {}
        self._retried: set[str] = set()
        self._running: dict[Any, Candidate] = {}
        self._finished = as_completed(loop=client.loop)
        self._stopped: list[search.Result] = []
        self._context = self._send_context()

    def _send_context(self, broadcast: bool = True) -> Future | None:
        """The search's context on every live host's worker, as a future for the tasks; None when no
        host could take it (the search then runs on this host alone).

        First with Dask's broadcast scatter.  A host lost meanwhile makes it fail (the scheduler
        still listed it and sent it the data: a CommClosedError, or the key of a removed worker) or
        never end (Dask's replicate retries a lost worker for ever, holding a lock every other
        broadcast waits for): the context is then sent again under a new key (the old one released,
        which ends that replicate) to each remaining host in turn, without replication."""
        if broadcast:
            name = _context_key(self.ctx)
            try:
                return self._scatter(name)
            except Exception as exc:
                log.debug("scattering the search's context to every host", exc_info=True)
                error = _error_text(exc)
                if not isinstance(exc, HostLost) and not self._wait_for_lost_host(f"{SENDING} ({error})"):
                    log.warning(
                        "auto: the search's context could not be sent to every host at once (%s)", error
                    )
                self._release(name)
        name = _context_key(self.ctx)
        sent: Future | None = None
        for worker in sorted((self._live_workers() or {}).items()):
            if self._past_deadline():
                break
            try:
                sent = self._scatter(name, worker)
            except Exception as exc:  # that host's worker left (or cannot take it): the others may
                log.debug("scattering the search's context to %s", worker[0], exc_info=True)
                log.warning(
                    "auto: the search's context could not be sent to host %s (%s)",
                    worker[0],
                    _error_text(exc),
                )
                self._check_hosts(SENDING)
        if sent is None:
            self._release(name)
            self._go_alone("the search's context could not be sent to any host's Dask worker")
        return sent

    def _scatter(self, name: str, worker: tuple[str, str] | None = None) -> Future:
        """The context as ``name`` to every host (Dask's broadcast) or to ``worker`` (host, address),
        in a thread of its own while this one watches the hosts: the loss of a host it sends to, a
        stop or the budget's end abandons it (HostLost), as it may never end."""
        waits_for = set(self._hosts) if worker is None else {worker[0]}
        options: dict[str, Any] = {"broadcast": True} if worker is None else {"workers": [worker[1]]}
        sent: list[Future] = []
        failed: list[Exception] = []
        done = threading.Event()

        def run() -> None:
            try:
                sent.append(self.client.scatter({name: self.ctx}, **options)[name])
            except Exception as exc:  # raised by the waiting thread
                log.debug("scattering %s", name, exc_info=True)
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="byoc-dask-scatter", daemon=True).start()
        while not done.wait(POLL_SECONDS):
            if time.monotonic() - self._checked > CHECK_HOSTS_SECONDS:
                self._check_hosts(SENDING)
            if waits_for - self._hosts:
                raise HostLost(
                    f"lost host(s) {', '.join(sorted(waits_for - self._hosts))} while it waited for them"
                )
            if self._past_deadline():
                raise HostLost(
                    "the job was asked to stop, or its time budget ran out, before the scatter ended"
                )
        if failed:
            raise failed[0]
        return sent[0]

    def _release(self, key: str) -> None:
        """The scheduler forgets ``key`` (a scatter left it wanted by this client with no future)."""
        try:
            self.client.run_on_scheduler(_release_key, key=key, client=self.client.id)
        except Exception:
            log.debug("releasing %s", key, exc_info=True)

    def _wait_for_lost_host(self, why: str) -> bool:
        """Whether the scheduler drops a host within LOST_HOST_SECONDS of a failed call (logged
        with ``why``): the call failed because that host's worker left."""
        until = min(time.monotonic() + LOST_HOST_SECONDS, self.ctx.hard_deadline)
        before = len(self._hosts)
        while True:
            self._check_hosts(why)
            if len(self._hosts) < before:
                return True
            if time.monotonic() >= until or self.ctx.stop.is_set():
                return False
            time.sleep(POLL_SECONDS)

    def _past_deadline(self) -> bool:
        return self.ctx.stop.is_set() or time.monotonic() >= self.ctx.hard_deadline

    def _go_alone(self, why: str) -> None:
        """The rest of the search on this host, in process (the cluster failed it: ``why``)."""
        if self._alone is None:
            log.warning(
                "auto: %s; the search goes on on the first host %s alone", why, self._here or "(this host)"
            )
            self._alone = search.InProcess(self.ctx, self._here)
            self.slots = 1

    def submit(self, candidate: Candidate, deadline: float, keep_model_below: float) -> None:
        self._deadlines[candidate.name] = deadline
        self._keep_below[candidate.name] = keep_model_below
        if self._alone is None and self._context is not None:
            now = time.monotonic()
            try:
                future = self.client.submit(
                    score_remotely,
                    candidate,
                    self._context,
                    deadline - now,
                    self.ctx.hard_deadline - now,
                    now - self.ctx.started,
                    keep_model_below,
                    pure=False,
                )
            except Exception as exc:  # the client closed: its scheduler is gone
                log.debug("submitting %s", candidate.name, exc_info=True)
                self._go_alone(
                    f"{candidate.name} could not be handed to the Dask scheduler ({type(exc).__name__}: {exc})"
                )
            else:
                self._running[future] = candidate
                self._finished.add(future)
                return
        assert self._alone is not None
        self._alone.submit(candidate, deadline, keep_model_below)

    def pending(self) -> int:
        alone = self._alone.pending() if self._alone is not None else 0
        return len(self._running) + len(self._stopped) + alone

    def next_result(self) -> search.Result:
        while True:
            if self._alone is not None and self._alone.pending():
                return self._alone.next_result()
            while not self._stopped and not self._finished.has_ready():
                if self.ctx.stop.is_set() or time.monotonic() > self.ctx.hard_deadline:
                    self._stop_all()
                    break
                if time.monotonic() - self._checked > CHECK_HOSTS_SECONDS:
                    self._check_hosts()
                time.sleep(POLL_SECONDS)
            if self._stopped:
                return self._stopped.pop(0)
            future = next(self._finished)
            candidate = self._running.pop(future)
            try:
                return future.result()
            except Exception as exc:  # a lost host fails one candidate at most, never the search
                log.debug("candidate %s failed on the cluster", candidate, exc_info=True)
                if self._retry(candidate, exc):
                    continue
                return search.Result(
                    candidate,
                    search.FAILED,
                    finished_at=self.ctx.elapsed(),
                    message=f"the host(s) scoring it were lost ({type(exc).__name__}: {exc})"[:500],
                )

    def _retry(self, candidate: Candidate, exc: Exception) -> bool:
        """Score ``candidate`` once more after its host was lost (Dask's ``KilledWorker``, or the
        task cancelled with the data the lost host held): the search's context is sent again to
        the hosts left when none of them holds it any more."""
        if candidate.name in self._retried or not self._hosts or self.ctx.stop.is_set():
            return False
        self._retried.add(candidate.name)
        self._check_hosts()
        try:
            if self._alone is None and not self._context_held():
                self._context = self._send_context(broadcast=False)  # None: this host scores it alone
            self.submit(candidate, self._deadlines[candidate.name], self._keep_below[candidate.name])
        except Exception as again:  # the cluster cannot take it: the candidate is recorded as failed
            log.warning(
                "auto: could not score %s again (%s: %s)", candidate.name, type(again).__name__, again
            )
            log.debug("retry of %s", candidate.name, exc_info=True)
            return False
        log.warning(
            "auto: %s was lost with its host (%s: %s); scoring it again on %s",
            candidate.name,
            type(exc).__name__,
            str(exc)[:200],
            ", ".join(sorted(self._hosts)) if self._alone is None else f"{self._here} alone",
        )
        return True

    def _context_held(self) -> bool:
        """Whether a live host still holds the search's context: a future Dask cancelled or
        lost with its host (its status no longer "finished") cannot be sent with a task."""
        if self._context is None or self._context.status != "finished":
            return False
        try:
            return bool(self.client.who_has([self._context]).get(self._context.key))
        except Exception:  # not known: send it again
            log.debug("could not ask who holds the search's context", exc_info=True)
            return False

    def _live_workers(self) -> dict[str, str] | None:
        """The scheduler's workers, host name -> address; None when it cannot say."""
        try:
            scheduler = self.client.scheduler
            if scheduler is None:
                return None
            # bounded: a scheduler gone is retried for Dask's connect timeout (30 s) on every poll
            identity = self.client.sync(scheduler.identity, n_workers=-1, callback_timeout=LOST_HOST_SECONDS)
            return {str(w.get("name")): address for address, w in identity["workers"].items()}
        except Exception:  # the scheduler is on this host: if it cannot answer, the next poll will tell
            log.debug("could not ask the Dask scheduler for its workers", exc_info=True)
            return None

    def _check_hosts(self, why: str = "") -> None:
        """Notice hosts whose worker left: fewer slots, and a warning naming them (and ``why``:
        what failed with them)."""
        self._checked = time.monotonic()
        live = self._live_workers()
        if live is None:
            return
        lost = self._hosts - set(live)
        if lost:
            self._hosts -= lost
            if self._alone is None:
                self.slots = max(len(self._hosts), 1)
            log.warning(
                "auto: lost host(s) %s (their Dask worker left the scheduler%s); the search goes on with %s, "
                "and a candidate that was running there is scored again on the remaining host(s)",
                ", ".join(sorted(lost)),
                f" {why}" if why else "",
                ", ".join(sorted(self._hosts)) or "no host",
            )

    def _stop_all(self) -> None:
        """A stop request or the budget's end: running candidates are abandoned, not awaited."""
        why = "the job was asked to stop" if self.ctx.stop.is_set() else "the time budget ran out"
        for future, candidate in self._running.items():
            try:
                future.cancel()
            except Exception:  # the client closed with its scheduler: nothing left to cancel there
                log.debug("cancelling %s", candidate.name, exc_info=True)
            self._stopped.append(
                search.Result(
                    candidate, search.STOPPED, finished_at=self.ctx.elapsed(), message=f"stopped: {why}"
                )
            )
        self._running.clear()
        self._finished.clear()
