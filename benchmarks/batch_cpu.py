"""Batch CSV bodies: CPU time of a server worker per request against the same handler in-process.

Wall-clock throughput (benchmarks/serving.py) needs a quiet machine; CPU time does not.  For
each body size this starts ``container/serve`` with one worker (SAGEMAKER_BATCH=true,
MaxPayloadInMB 100), posts the body ``--repeats`` times and reads the worker's CPU time (every
thread's, from /proc/PID/task/*/schedstat, nanoseconds) around each request; after each
request it runs the server's own handler in this process on the same body (decode -> predict
-> encode, no HTTP) and reads this process's CPU time, so the two alternate and a change in
the machine's load touches both alike.  Beside each: minor page faults and voluntary context
switches per request (hand-offs between threads, which a loaded machine turns into waits).
The answers of both must be byte-identical.  Also in each round, for reference: a plain
pandas.read_csv + pipeline.predict of the same body in this process (no output encoding).  This
process runs with the allocator settings a worker runs with (byoc.serving.memory.WORKER_ALLOCATOR,
the definition ``serve`` uses), unless ``--default-allocator``.
With ``--baseline REV`` a second server runs another commit's ``container/`` (unpacked by
``git archive`` into a temporary directory) on the same model and gets the same body in each
round, so two commits compare by worker CPU time in one run; the two servers take turns at going
first (right after the plain pandas run), and "this / baseline" is the median of the rounds'
ratios, each of two requests made back to back (a ratio of two medians swung by ~10% on a loaded
machine: an A/A run of one commit read 1.11); "in-process / worker" likewise is the median of each
round's in-process run over that round's worker request.  Medians over the repeats; models
trained as benchmarks/serving.py trains them (and from its model cache).

    .venv/bin/python benchmarks/batch_cpu.py [--models decision_tree,random_forest] [--batch-mb 1,10]
        [--baseline a2cda56] [--default-allocator]
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

import requests

from benchmarks import serving
from benchmarks.harness import byoc_server, commit, take_worker_allocator
from benchmarks.synthetic import DATA, synthetic_frame


def task_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far (schedstat's first field, in nanoseconds)."""
    return (
        sum(int(task.read_text().split()[0]) for task in Path(f"/proc/{pid}/task").glob("*/schedstat")) / 1e9
    )


def proc_counters(pid: int) -> tuple[int, int]:
    """(minor page faults, voluntary context switches) of every thread of ``pid`` so far."""
    faults = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])
    switches = sum(
        int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").glob("*/status")
        for line in task.read_text().splitlines()
        if line.startswith("voluntary_ctxt_switches")
    )
    return faults, switches


class Counters:
    """CPU time (ms), minor page faults and voluntary context switches, one sample per request."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int]] = []

    def add(self, cpu_seconds: float, faults: int, switches: int) -> None:
        self.samples.append((1e3 * cpu_seconds, faults, switches))

    def medians(self) -> dict[str, float]:
        cpu, faults, switches = zip(*self.samples, strict=True)
        return {
            "cpu_ms": statistics.median(cpu),
            "faults": statistics.median(faults),
            "switches": statistics.median(switches),
        }


class Worker:
    """The one worker of a server started on an ML root for batch CSV bodies: each request's
    answer, and its CPU time, page faults and voluntary switches."""

    def __init__(self, root: Path, serve: Path | None = None) -> None:
        extra = {"serve": serve} if serve is not None else {}
        self.server = byoc_server(
            root, workers=1, SAGEMAKER_BATCH="true", SAGEMAKER_MAX_PAYLOAD_IN_MB="100", **extra
        )
        (self.pid,) = self.server.pids()
        self.session = requests.Session()
        self.counters = Counters()

    def post(self, payload: bytes) -> bytes:
        resp = self.session.post(
            f"http://127.0.0.1:{self.server.port}/invocations",
            data=payload,
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
            timeout=900,
        )
        if resp.status_code != 200:
            raise SystemExit(f"batch request failed: {resp.status_code} {resp.text[:500]}")
        return resp.content

    def measured_post(self, payload: bytes) -> None:
        c0, (f0, s0) = task_cpu_seconds(self.pid), proc_counters(self.pid)
        self.post(payload)
        f1, s1 = proc_counters(self.pid)
        self.counters.add(task_cpu_seconds(self.pid) - c0, f1 - f0, s1 - s0)

    def stop(self) -> None:
        self.session.close()
        self.server.stop()


def in_process(counters: Counters, run) -> None:
    """``run()`` in this process, its CPU time, page faults and voluntary switches into ``counters``."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.process_time()
    run()
    seconds = time.process_time() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    counters.add(seconds, after.ru_minflt - before.ru_minflt, after.ru_nvcsw - before.ru_nvcsw)


def export_serve(revision: str, into: Path) -> Path:
    """``revision``'s ``container/`` unpacked under ``into``; its ``serve`` script."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "container"], cwd=REPO, capture_output=True
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "container" / "serve"


def measure(
    root: Path, payload: bytes, repeats: int, baseline: Path | None = None
) -> dict[str, dict[str, float]]:
    """Medians over ``repeats`` rounds of: one request to this checkout's server, one to the
    ``baseline`` server (another commit's ``serve``) when given, the handler in this process and
    the plain pandas reference: interleaved, so a change in the machine's load touches all alike."""
    model_handler, settings = serving.load_handler(root)
    plain = serving.plain_pandas_predict(root)
    workers = {"worker": Worker(root)}
    try:
        if baseline is not None:
            workers["baseline"] = Worker(root, baseline)
        answers = {name: worker.post(payload) for name, worker in workers.items()}  # warm-up
        local_answer = serving.invoke_in_process(model_handler, settings, payload)
        if answers["worker"] != local_answer:
            raise SystemExit("the server and the handler in-process answered differently")
        if answers.get("baseline", local_answer) != local_answer:
            print("note: the baseline server's answer differs from this checkout's", file=sys.stderr)
        local, reference = Counters(), Counters()
        order = list(workers.values())
        for round_ in range(repeats):
            for worker in order if round_ % 2 == 0 else order[::-1]:
                worker.measured_post(payload)
            in_process(local, lambda: serving.invoke_in_process(model_handler, settings, payload))
            in_process(reference, lambda: plain(payload))
    finally:
        for worker in workers.values():
            worker.stop()
    medians = {name: worker.counters.medians() for name, worker in workers.items()}
    medians["paired"] = {"local": paired_ratio(local, workers["worker"].counters)}
    if baseline is not None:
        medians["paired"]["baseline"] = paired_ratio(workers["worker"].counters, workers["baseline"].counters)
    return {**medians, "local": local.medians(), "plain": reference.medians()}


def paired_ratio(this: Counters, other: Counters) -> float:
    """The median over rounds of this CPU time / other's, each pair measured back to back."""
    return statistics.median(a[0] / b[0] for a, b in zip(this.samples, other.samples, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="decision_tree,random_forest")
    parser.add_argument("--batch-mb", default="1,10")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--train-rows", type=int, default=10000)
    parser.add_argument("--baseline", help="a commit whose server runs beside this checkout's")
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="this process keeps glibc's and Arrow's default allocator settings instead of a worker's "
        "(for comparison: the in-process runs then fault more than the worker)",
    )
    parser.add_argument("--worker-allocator", action="store_true", help=argparse.SUPPRESS)  # the default now
    args = parser.parse_args()
    if not args.default_allocator:
        take_worker_allocator()
    cache = DATA / "models" / f"{serving.training_commit()}-{args.train_rows}"
    sample = synthetic_frame(2000, seed=2)
    with tempfile.TemporaryDirectory(prefix="byoc-baseline-") as tmp:
        baseline = export_serve(args.baseline, Path(tmp)) if args.baseline else None
        against = f"; baseline: the server at {args.baseline}" if args.baseline else ""
        print(f"commit {commit()}; medians of {args.repeats} requests; CPU time of every thread{against}\n")
        extra = " baseline worker CPU | this / baseline (paired) |" if baseline else ""
        print(
            "| body | model | worker CPU / request | handler in-process CPU | in-process / worker | "
            f"plain pandas + predict CPU (reference) | plain / worker |{extra} "
            "page faults (worker / in-process) | voluntary switches (worker / in-process) |"
        )
        print("|---|---|---|---|---|---|---|" + ("---|---|" if baseline else "") + "---|---|")
        for name in args.models.split(","):
            hyperparameters, numeric_only = serving.MODELS[name]
            root = serving.train_model(
                cache / name.replace(" ", "_"), args.train_rows, hyperparameters, numeric_only
            )
            for size in (int(s) for s in args.batch_mb.split(",")):
                m = measure(root, serving.csv_payload(sample, size), args.repeats, baseline)
                worker, local, plain = m["worker"]["cpu_ms"], m["local"]["cpu_ms"], m["plain"]["cpu_ms"]
                versus = (
                    f" {m['baseline']['cpu_ms']:.0f} ms | {m['paired']['baseline']:.3f} |" if baseline else ""
                )
                print(
                    f"| {size} MB | {name} | {worker:.0f} ms | {local:.0f} ms | {m['paired']['local']:.0%} | "
                    f"{plain:.0f} ms | {plain / worker:.0%} |{versus} "
                    f"{m['worker']['faults']:.0f} / {m['local']['faults']:.0f} | "
                    f"{m['worker']['switches']:.0f} / {m['local']['switches']:.0f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
