"""What the benchmark scripts share: the real ``container/serve`` processes they measure, and the
commit they measured.  Process start-up, /ping and shutdown come from tests/support.py, as in the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from support import REPO, SERVE, clean_environ, free_port, terminate, wait_for_ping

WORKERS = os.cpu_count() or 1


DEFAULT_CONNECTIONS = 8  # wrk's connections unless --connections says otherwise (README's tables: 8)


@dataclass(frozen=True)
class Layout:
    """Which CPUs the measured server and the load generator run on.

    Pinned (the default on >= 2 CPUs): the server -- gunicorn's master and so its workers, or the
    container -- on every CPU but the last, one worker per CPU, and the load generator alone on the
    last one.  Sharing the cores, wrk's threads waited for the CPUs the workers kept busy: responses
    sat unread, the kernel's tail-loss probes fired after ~200 ms, and one ceiling sample moved 4x
    between quiet runs.  ``shared`` keeps that older set-up for comparison."""

    server_cpus: tuple[int, ...] | None  # None: not pinned
    client_cpus: tuple[int, ...] | None
    workers: int
    client_threads: int
    connections: int = DEFAULT_CONNECTIONS  # wrk's keep-alive connections, each a closed loop

    @classmethod
    def choose(cls, shared: bool = False, connections: int = DEFAULT_CONNECTIONS) -> Layout:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        if shared or len(cpus) < 2:
            return cls(None, None, len(cpus), 2, connections)
        return cls(cpus[:-1], cpus[-1:], len(cpus) - 1, 1, connections)

    @property
    def pinned(self) -> bool:
        return self.server_cpus is not None

    def describe(self) -> str:
        if not self.pinned:
            return f"{self.workers} workers; server and load generator share {self.workers} CPUs (not pinned)"
        return (
            f"server (gunicorn master, {self.workers} worker(s)) on CPU {cpu_list(self.server_cpus)}, "
            f"load generator alone on CPU {cpu_list(self.client_cpus)}"
        )


def cpu_list(cpus: Sequence[int] | None) -> str:
    """``cpus`` as taskset -c and docker --cpuset-cpus write them."""
    return ",".join(str(c) for c in cpus or ())


def on_cpus(argv: list[str], cpus: Sequence[int] | None) -> list[str]:
    """``argv`` run on ``cpus`` only (taskset; its children inherit the mask), or as it is."""
    return ["taskset", "-c", cpu_list(cpus), *argv] if cpus else argv


class Server:
    """A server process whose log goes to a file (a pipe nobody drains would block it)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int) -> None:
        self.log = tempfile.TemporaryFile()
        self.port = port
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(REPO))
        try:
            wait_for_ping(port, self.proc, timeout=120)
        except BaseException:  # a server that never answered must not outlive the benchmark
            self.stop()
            raise

    def pids(self) -> list[int]:
        """The server's workers (gunicorn's children)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def cpu_seconds(self) -> float:
        """CPU time so far of the master and its workers, every thread."""
        from benchmarks.batch_cpu import task_cpu_seconds  # batch_cpu imports serving, which imports this

        return sum(task_cpu_seconds(pid) for pid in [self.proc.pid, *self.pids()])

    def stop(self) -> None:
        terminate(self.proc, timeout=40)
        self.log.close()


class ContainerServer:
    """``docker run --network host IMAGE serve`` on an ML root's model directory (read-only), as
    SageMaker runs the image; stopped with ``docker stop`` (SIGTERM, then SIGKILL)."""

    def __init__(
        self, image: str, root: Path, env: dict[str, str], port: int, cpus: Sequence[int] | None = None
    ) -> None:
        self.port = port
        flags = [f"--env={key}={value}" for key, value in env.items()]
        mount = [
            "-v",
            f"{root.resolve() / 'model'}:/opt/ml/model:ro",
        ]  # docker takes a relative one for a volume name
        pin = [f"--cpuset-cpus={cpu_list(cpus)}"] if cpus else []
        started = subprocess.run(
            ["docker", "run", "-d", "--rm", "--network", "host", *pin, *mount, *flags, image, "serve"],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise SystemExit(f"docker run {image} failed: {started.stderr.strip()}")
        self.container = started.stdout.strip()
        try:
            wait_for_ping(port, timeout=180)
        except BaseException:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        """CPU time so far of every process in the container (its cgroup's account, v1 or v2)."""
        for path, scale in (
            (f"/sys/fs/cgroup/cpuacct/docker/{self.container}/cpuacct.usage", 1e9),
            (f"/sys/fs/cgroup/system.slice/docker-{self.container}.scope/cpu.stat", 1e6),
        ):
            if Path(path).is_file():
                text = Path(path).read_text()
                return int(text.split()[1] if text.startswith("usage_usec") else text) / scale
        raise SystemExit(f"no CPU account found for container {self.container[:12]} (cgroup v1 or v2)")

    def stop(self) -> None:
        subprocess.run(["docker", "stop", "-t", "30", self.container], capture_output=True, check=False)


def byoc_server(
    root: Path,
    workers: int = WORKERS,
    image: str | None = None,
    cpus: Sequence[int] | None = None,
    serve: Path = SERVE,
    **extra: str,
) -> Server | ContainerServer:
    """``container/serve`` (or another checkout's ``serve``) on ``root`` (an ML root) with
    ``workers`` workers and ``extra`` settings; inside the built ``image`` when one is named; on
    ``cpus`` only when given."""
    port = free_port()
    if image is not None:
        settings = {"SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
        return ContainerServer(image, root, {**settings, **extra}, port, cpus)
    env = clean_environ(
        None,
        SAGEMAKER_BASE_DIR=str(root),
        SAGEMAKER_BIND_TO_PORT=str(port),
        SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
        **extra,
    )
    return Server(on_cpus([sys.executable, str(serve)], cpus), env, port)


def take_worker_allocator(execv: Callable[[str, Sequence[str]], object] = os.execv) -> None:
    """This process's allocators set as a server's worker sets them (``WORKER_ALLOCATOR``, the
    definition ``serve`` uses), so a handler run in-process is compared with the worker on equal
    terms: glibc's thresholds here, and the environment Arrow's allocator reads when pyarrow loads,
    so a process that loaded it without those variables starts again (same command) with them."""
    from byoc.serving.memory import WORKER_ALLOCATOR

    if WORKER_ALLOCATOR.set_environment(os.environ) and "pyarrow" in sys.modules:
        sys.stdout.flush()
        execv(sys.executable, sys.orig_argv)
    WORKER_ALLOCATOR.apply()


def commit() -> str:
    """The checkout's short commit, printed beside the figures."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return out.stdout.strip() or "unknown"
