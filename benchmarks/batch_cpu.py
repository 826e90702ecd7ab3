"""Batch CSV bodies: CPU time of a server worker per request against the same handler in-process.

Wall-clock throughput (benchmarks/serving.py) needs a quiet machine; CPU time does not.  For
each body size this starts ``container/serve`` with one worker (SAGEMAKER_BATCH=true,
MaxPayloadInMB 100), posts the body ``--repeats`` times and reads the worker's CPU time (every
thread's, from /proc/PID/task/*/schedstat, nanoseconds) around each request; after each
request it runs the server's own handler in this process on the same body (decode -> predict
-> encode, no HTTP) and reads this process's CPU time, so the two alternate and a change in
the machine's load touches both alike.  Beside each: minor page faults and voluntary context
switches per request (hand-offs between threads, which a loaded machine turns into waits).
The answers of both must be byte-identical.  Medians over the repeats; models trained as
benchmarks/serving.py trains them (and from its model cache).

    .venv/bin/python benchmarks/batch_cpu.py [--models decision_tree,random_forest] [--batch-mb 1,10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

import requests

from benchmarks import serving
from benchmarks.harness import byoc_server, commit
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


def measure(root: Path, payload: bytes, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """(worker, in-process) medians over ``repeats`` pairs, one server request then the handler
    in this process: interleaved, so a change in the machine's load touches both alike."""
    model_handler, settings = serving.load_handler(root)
    server = byoc_server(root, workers=1, SAGEMAKER_BATCH="true", SAGEMAKER_MAX_PAYLOAD_IN_MB="100")
    worker, local = Counters(), Counters()
    try:
        (pid,) = server.pids()
        with requests.Session() as session:

            def post() -> bytes:
                resp = session.post(
                    f"http://127.0.0.1:{server.port}/invocations",
                    data=payload,
                    headers={"Content-Type": "text/csv", "Accept": "text/csv"},
                    timeout=900,
                )
                if resp.status_code != 200:
                    raise SystemExit(f"batch request failed: {resp.status_code} {resp.text[:500]}")
                return resp.content

            served_answer = post()  # the first request warms the worker up
            local_answer = serving.invoke_in_process(model_handler, settings, payload)
            if served_answer != local_answer:
                raise SystemExit("the server and the handler in-process answered differently")
            for _ in range(repeats):
                c0, (f0, s0) = task_cpu_seconds(pid), proc_counters(pid)
                post()
                f1, s1 = proc_counters(pid)
                worker.add(task_cpu_seconds(pid) - c0, f1 - f0, s1 - s0)
                before = resource.getrusage(resource.RUSAGE_SELF)
                start = time.process_time()
                serving.invoke_in_process(model_handler, settings, payload)
                seconds = time.process_time() - start
                after = resource.getrusage(resource.RUSAGE_SELF)
                local.add(seconds, after.ru_minflt - before.ru_minflt, after.ru_nvcsw - before.ru_nvcsw)
    finally:
        server.stop()
    return worker.medians(), local.medians()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="decision_tree,random_forest")
    parser.add_argument("--batch-mb", default="1,10")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--train-rows", type=int, default=10000)
    args = parser.parse_args()
    cache = DATA / "models" / f"{serving.training_commit()}-{args.train_rows}"
    sample = synthetic_frame(2000, seed=2)
    print(f"commit {commit()}; medians of {args.repeats} requests; CPU time of every thread\n")
    print(
        "| body | model | worker CPU / request | handler in-process CPU | in-process / worker | page faults (worker / in-process) | voluntary switches (worker / in-process) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        hyperparameters, numeric_only = serving.MODELS[name]
        root = serving.train_model(
            cache / name.replace(" ", "_"), args.train_rows, hyperparameters, numeric_only
        )
        for size in (int(s) for s in args.batch_mb.split(",")):
            payload = serving.csv_payload(sample, size)
            worker, local = measure(root, payload, args.repeats)
            print(
                f"| {size} MB | {name} | {worker['cpu_ms']:.0f} ms | {local['cpu_ms']:.0f} ms | "
                f"{local['cpu_ms'] / worker['cpu_ms']:.0%} | {worker['faults']:.0f} / {local['faults']:.0f} | "
                f"{worker['switches']:.0f} / {local['switches']:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
