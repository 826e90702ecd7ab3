"""Single-row cost in CPU time, valid on a loaded machine.

In-process (default): the server's own decode -> predict -> encode for one CSV row, in this
process, no HTTP (the "handler in-process" column of benchmarks/serving.py, but CPU time), with
compiled inference as trained and forced off.

``--server``: CPU time per request of one server worker, the whole request (gunicorn, Flask,
byoc, access log), against the bare ceiling (benchmarks/serving.py's constant Flask app under
byoc's gunicorn settings) measured the same way in the same run.  Every server runs pinned to
core 0 (``taskset -c 0``, one worker) and wrk to core 1 (``-t1 -c8``); the worker's CPU time
(every thread, /proc/PID/task/*/schedstat) is read around each wrk run and divided by the
requests wrk completed.  The servers of every ``--checkout`` (byoc's ``container/serve`` and
the ceiling, each with that checkout's code) stay up and are measured in turn, ``--rounds``
times, so an A/B of two commits sees the same machine; the figures are medians over rounds.
"bare / byoc" is the share of the ceiling a server on a core of its own would reach
(throughput is the reciprocal of CPU time per request there).

``--constant-handler`` adds, per checkout, byoc's server with the model's handler replaced by one
that reads the body and answers a constant CSV line with the model's headers: what byoc's server
path (gunicorn, byoc's worker, the app, the access line) costs without the model's work.  A model's
row minus that row is what its handler costs inside the server, to set beside the handler's CPU
in-process (printed too): the difference is the price of running between other code (caches,
branch predictors), which a loop calling the handler alone does not pay.

Models are trained by the real ``container/train`` on the benchmarks' synthetic data (10 numeric
+ 10 text features), as benchmarks/serving.py trains them; ``--keep DIR`` keeps the trained ML
roots there and reuses them in later runs (``--retrain`` trains again).

``--evict-mb 0,1,4`` (in-process): also with that many MB of other memory read between two rows,
as the server's request path does between two requests; the CPU time of the rows alone.  A
model whose row reads much memory (a forest's trees) costs more the more is read in between.

    .venv/bin/python benchmarks/single_row.py [--models knn,linear,ensemble] [--keep DIR]
    .venv/bin/python benchmarks/single_row.py --server [--checkout /path/to/other/worktree] [--rounds 3]
        [--constant-handler]
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

from benchmarks.batch_cpu import task_cpu_seconds
from benchmarks.harness import Server
from benchmarks.serving import (
    BARE_APP,
    MODELS,
    invoke_in_process,
    load_handler,
    single_row_bodies,
    train_model,
)
from benchmarks.synthetic import synthetic_frame
from byoc.serving.settings import DEFAULT_WORKER_THREADS
from support import clean_environ, free_port

SERVER_CORE, CLIENT_CORE = "0", "1"


def cpu_ms_per_call(run, calls: int, rounds: int = 5) -> float:
    """The median over ``rounds`` of the CPU time (this process) per call, in ms."""
    run()
    per_call = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            run()
        per_call.append((time.process_time() - start) / calls)
    return statistics.median(per_call) * 1e3


def cpu_ms_per_call_evicted(run, calls: int, evict_mb: float, rounds: int = 5) -> float:
    """As :func:`cpu_ms_per_call`, with ``evict_mb`` MB of other memory read before each call
    (not timed): the CPU time (this thread) of the calls alone."""
    import numpy as np

    other = np.ones(max(1, int(evict_mb * 2**20) // 8))
    run()
    per_call = []
    for _ in range(rounds):
        spent = 0
        for _ in range(calls):
            if evict_mb:
                other.sum()
            start = time.thread_time_ns()
            run()
            spent += time.thread_time_ns() - start
        per_call.append(spent / calls)
    return statistics.median(per_call) / 1e6


def in_process(args: argparse.Namespace, base: Path, body: bytes) -> None:
    from threadpoolctl import threadpool_limits

    evictions = [float(mb) for mb in args.evict_mb.split(",")] if args.evict_mb else []
    extra = "".join(f" {mb:g} MB read between rows |" for mb in evictions)
    print(f"| model | compiled inference | handler CPU ms / row | fast path |{extra}")
    print("|---|---|---|---|" + "---|" * len(evictions))
    for name in args.models.split(","):
        root = trained(base, name, args)
        for switch in ("on", "off"):
            model_handler, settings = load_handler(root, BYOC_COMPILED_INFERENCE=switch)
            # One math-library thread, as each server worker after the model is loaded
            # (byoc.serving.server._post_fork): threadpoolctl limits the libraries loaded by then.
            threadpool_limits(1)
            row = functools.partial(invoke_in_process, model_handler, settings, body)
            ms = cpu_ms_per_call(row, args.calls)
            fast = getattr(model_handler.predictor, "fast_path", None)
            evicted = "".join(f" {cpu_ms_per_call_evicted(row, args.calls, mb):.3f} |" for mb in evictions)
            print(f"| {name} | {switch} | {ms:.3f} | {fast} |{evicted}", flush=True)


def trained(base: Path, name: str, args: argparse.Namespace) -> Path:
    hyperparameters, numeric_only = MODELS[name]
    root = base / name.replace(" ", "_")
    if args.retrain and root.exists():
        shutil.rmtree(root)  # train_model reuses any root that has a model
    if not (root / "model" / "model.json").exists():
        train_model(root, args.train_rows, hyperparameters, numeric_only)
    return root


# -- --server ------------------------------------------------------------------------------------
# byoc's ``serve`` (byoc.serving.server.main, as container/serve runs it) with the built-in handler's
# invoke replaced: the body read as the CSV decoder reads it, a constant CSV answer with the headers
# a model's answer carries.  Written against the seams every measured checkout has.
CONSTANT_HANDLER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {container!r})
    from byoc.serving import builtin, server
    from byoc.serving.handler import InferenceResponse
    from byoc.serving.output import CUSTOM_ATTRIBUTES_HEADER

    def invoke(self, request):
        for _ in request.body.line_slices(None):
            pass
        return InferenceResponse(b"no\\n", "text/csv", {{CUSTOM_ATTRIBUTES_HEADER: "output=predicted_label"}})

    builtin.ModelHandler.invoke = invoke
    sys.argv = ["serve"]
    sys.exit(server.main())
""")
CONSTANT = "constant handler"


def pinned_server(checkout: Path, root: Path | None, threads: int, constant: bool = False) -> Server:
    """One worker with ``threads`` threads on SERVER_CORE: ``checkout``'s ``container/serve`` on
    ``root`` (with ``constant``: its handler answering a constant, see CONSTANT_HANDLER), or, without
    a root, the bare ceiling under ``checkout``'s gunicorn settings."""
    port = free_port()
    if root is None:
        code = BARE_APP.format(
            container=str(checkout / "container"),
            port=port,
            workers=1,
            worker_class="gthread",
            threads=threads,
        )
        argv, env = [sys.executable, "-c", code], clean_environ(None)
    else:
        argv = [sys.executable, str(checkout / "container" / "serve")]
        if constant:
            argv = [sys.executable, "-c", CONSTANT_HANDLER.format(container=str(checkout / "container"))]
        env = clean_environ(
            None,
            SAGEMAKER_BASE_DIR=str(root),
            SAGEMAKER_BIND_TO_PORT=str(port),
            SAGEMAKER_MODEL_SERVER_WORKERS="1",
            BYOC_WORKER_THREADS=str(threads),
        )
    return Server(["taskset", "-c", SERVER_CORE, *argv], env, port)


def requests_by_wrk(port: int, body: bytes, duration: int) -> int:
    """POST ``body`` (CSV) for ``duration`` seconds, wrk pinned to CLIENT_CORE; the number of
    requests wrk completed, all answered 200."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode("utf-8"))}\n'
            'wrk.headers["Content-Type"] = "text/csv"\nwrk.headers["Accept"] = "text/csv"\n'
        )
        out = subprocess.run(
            ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", "-c8", f"-d{duration}s", "-s", str(script)]
            + [f"http://127.0.0.1:{port}/invocations"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw error responses:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def worker_ms_per_request(server: Server, body: bytes, duration: int) -> float:
    (pid,) = server.pids()
    before = task_cpu_seconds(pid)
    requests = requests_by_wrk(server.port, body, duration)
    return 1e3 * (task_cpu_seconds(pid) - before) / requests


def handler_in_process_ms(root: Path, body: bytes, calls: int) -> float:
    """The handler's CPU per call in this process (this checkout's code), one math-library thread."""
    from threadpoolctl import threadpool_limits

    model_handler, settings = load_handler(root)
    with threadpool_limits(1):
        return cpu_ms_per_call(functools.partial(invoke_in_process, model_handler, settings, body), calls)


def on_server(args: argparse.Namespace, base: Path, body: bytes) -> None:
    checkouts = [REPO, *args.checkout]
    names = args.models.split(",")
    roots = {name: trained(base, name, args) for name in names}
    servers: dict[tuple[int, str], Server] = {}
    try:
        for k, checkout in enumerate(checkouts):
            servers[k, "bare"] = pinned_server(checkout, None, args.threads)
            if args.constant_handler:
                servers[k, CONSTANT] = pinned_server(checkout, roots[names[0]], args.threads, constant=True)
            for name in names:
                servers[k, name] = pinned_server(checkout, roots[name], args.threads)
        for server in servers.values():  # warm up: imports, caches, the first requests' allocations
            requests_by_wrk(server.port, body, 1)
        samples: dict[tuple[int, str], list[float]] = {key: [] for key in servers}
        for _ in range(args.rounds):
            for key, server in servers.items():
                samples[key].append(worker_ms_per_request(server, body, args.duration))
    finally:
        for server in servers.values():
            server.stop()
    print(
        f"server CPU per single-row CSV request, one worker on core {SERVER_CORE}, wrk -t1 -c8 on core "
        f"{CLIENT_CORE}, {args.threads} threads, {args.duration} s x {args.rounds} rounds, medians "
        "(all rounds in brackets)\n"
    )
    in_process = {name: handler_in_process_ms(roots[name], body, args.calls) for name in names}
    print(
        "| checkout | server | CPU ms / request | bare / this | this - constant handler | handler in-process |"
    )
    print("|---|---|---|---|---|---|")
    for k, checkout in enumerate(checkouts):
        label = describe(checkout)
        bare = statistics.median(samples[k, "bare"])
        constant = statistics.median(samples[k, CONSTANT]) if args.constant_handler else None
        for name in ["bare", *([CONSTANT] if constant else []), *names]:
            ms = statistics.median(samples[k, name])
            rounds = ", ".join(f"{v:.3f}" for v in samples[k, name])
            beyond = f"{ms - constant:.3f}" if constant and name in names else "-"
            alone = f"{in_process[name]:.3f} ({describe(REPO)})" if name in names else "-"
            print(
                f"| {label} | {name} | {ms:.3f} ({rounds}) | {bare / ms:.0%} | {beyond} | {alone} |",
                flush=True,
            )


def describe(checkout: Path) -> str:
    """``checkout``'s directory name with its commit (``-dirty`` when container/ has changes), or
    the name alone for a directory outside git (an exported snapshot)."""
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=checkout
    )
    if out.returncode != 0:
        return checkout.name
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "container"], cwd=checkout).returncode
    return f"{checkout.name}@{out.stdout.strip()}{'-dirty' if dirty else ''}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="decision_tree,linear,knn,ensemble")
    parser.add_argument("--train-rows", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=200, help="calls per timed round (in-process)")
    parser.add_argument(
        "--evict-mb", default="", help="in-process: also with these MB of memory read between rows (0,1,4)"
    )
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the trained ML roots here")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--server", action="store_true", help="CPU per request of a pinned server worker")
    parser.add_argument(
        "--checkout",
        type=Path,
        action="append",
        default=[],
        help="--server: also measure this checkout's servers (another worktree or clone), interleaved",
    )
    parser.add_argument(
        "--constant-handler",
        action="store_true",
        help="--server: also byoc's server with its handler answering a constant (the server path alone)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="--server: rounds over every server")
    parser.add_argument("--duration", type=int, default=5, help="--server: seconds per wrk run")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_WORKER_THREADS, help="--server: threads of every worker"
    )
    args = parser.parse_args()

    body, _ = single_row_bodies(synthetic_frame(2000, seed=2))["csv row"]
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        (on_server if args.server else in_process)(args, base, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
