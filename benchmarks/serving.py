"""Serving benchmark: byoc's server against the bare ceiling of its own stack, in one run.

Load generator: wrk (C, keep-alive, ``--latency`` for p50/p99), 8 connections by default (``--connections``); ``make bench``
installs it from Debian when missing.  On N >= 2 CPUs the server (gunicorn's master and so its
workers; the container with ``--image``) runs on CPUs 0..N-2 with N-1 workers and wrk, one
thread, alone on the last CPU (``taskset -c``; harness.Layout), so the client never waits for a
core the workers keep busy.  ``--shared-cores`` restores the older set-up (N workers, wrk -t2,
nothing pinned), where one ceiling sample moved 4x between quiet runs.  Measured, all on this
machine in this run:

1. ceiling: a bare Flask app returning a constant, served by byoc's own gunicorn set-up
   (``byoc.serving.server.gunicorn_options`` and its arbiter: byoc's gthread worker subclass,
   its access logger, the same worker count and threads as byoc), not by stock gunicorn; kept
   running and measured again right before each model measurement (``--rounds`` pairs per row; a
   row's share is the median of its pairs' ratios).  It is the baseline of the aim because its
   gunicorn configuration is byoc's, so a share isolates the cost of byoc's app.  Reference rows,
   measured right before every run of the (first setting's, gthread) ceiling so drift hits all
   alike: the same app under stock gunicorn gthread with the same workers, threads and
   keep-alive, (a) with an access log to stdout in gunicorn's default format, (b) without one;
   a table gives each as a share of the ceiling (median of the paired ratios), and each model
   row its share of (b).  byoc's worker and logger cost less CPU per request than (a) and a
   little more than (b) (one worker, 2 threads, loaded machine, 4 rounds: 0.391 ms against 0.435
   and 0.352);
2. byoc single-row CSV requests for every built-in algorithm (trained by the real
   ``container/train`` on synthetic data: 10 numeric + 10 text categorical features; random
   forest and extra trees with 100 trees), with compiled inference as trained, and again with
   BYOC_COMPILED_INFERENCE=off where something was compiled; plus gradient_boosting on the
   numeric columns only (the case treelite compiles).  Beside each: the in-process time of the
   handler for one row (decode -> predict -> encode, no HTTP) and of the final estimator's
   own predict on the encoded row;
3. batch: CSV bodies (SAGEMAKER_BATCH=true, MaxPayloadInMB 100), MB/s of the server against
   the same handler in this process (the same decode -> predict -> encode, no HTTP), and,
   labelled as such, a plain pandas.read_csv + pipeline.predict; this process runs with the
   allocator settings a worker runs with (byoc.serving.memory.WORKER_ALLOCATOR, the definition
   ``serve`` uses: glibc's thresholds, Arrow's purge delay), so the share measures the server,
   not two allocators.  The client is one keep-alive connection writing a prebuilt request in
   one ``sendall`` and reading the answer by its Content-Length (``BatchClient``: ``requests``
   cost ~1.7 ms of client CPU per 1 MB post, counted against the server); after one untimed
   warm-up of each side (answers compared byte for byte) the two run in paired rounds, taking
   turns at going first, for ``--batch-seconds`` per row (at least 5 rounds): MB/s from each
   side's median time, the share the median of the rounds' ratios (quartiles beside it);
4. memory: private memory (USS: Private_Clean + Private_Dirty from /proc/PID/smaps_rollup) of
   each of 4 workers serving the random forest, against the model's own size (RSS growth from
   loading it in a fresh process).

5. with ``--image TAG``: the same single-row and batch measurements against the server inside
   the built image (``docker run --network host --cpuset-cpus``, the model directory mounted
   read-only), each row beside this machine's, against the same ceiling, and a table of each
   row's share in the image against its share here (``--single-rows`` skips batches and memory:
   ``--image TAG --models decision_tree,random_forest --single-rows`` takes about 3 minutes;
   ``--batches`` runs the batch table alone).

Beside every single-row figure: the server's CPU time per request (master and workers, every
thread, /proc/PID/task/*/schedstat; in an image the container's cgroup account), and the
ceiling's as a share of it, which a loaded machine blurs far less than throughput.

``--threads 8,2`` (gthread threads per worker, BYOC_WORKER_THREADS) and ``--worker-classes
gthread,sync`` measure each setting against its own ceiling, interleaved round by round, so a
drift of the machine hits every setting alike.

Models are trained once per training code and size and kept under ``--model-cache`` (default
benchmarks/.data/models/COMMIT-ROWS, COMMIT the last change to container/ or the synthetic data;
git-ignored), so a second run (``--image`` after a plain run, say) measures without training
again; ``--retrain`` trains anew.

    .venv/bin/python benchmarks/serving.py [--duration 5] [--json results.json] [--image byoc-sklearn:TAG]
        [--threads 8,2] [--shared-cores] [--single-rows | --batches]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

from benchmarks.harness import (
    DEFAULT_CONNECTIONS,
    ContainerServer,
    Layout,
    Server,
    byoc_server,
    on_cpus,
    take_worker_allocator,
)
from benchmarks.synthetic import DATA, TARGET, synthetic_frame
from support import clean_environ, free_port, make_ml_root, run_train

BARE_APP = textwrap.dedent("""
    import sys
    from flask import Flask, Response
    sys.path.insert(0, {container!r})
    from byoc.serving.server import gunicorn_options, _gunicorn_application
    from byoc.serving.settings import ServingSettings

    app = Flask("bare")

    @app.route("/ping")
    def ping():
        return Response(status=200)

    @app.route("/invocations", methods=["POST"])
    def invocations():
        return Response("no\\n", mimetype="text/csv")

    settings = ServingSettings(port={port}, workers={workers}, worker_class={worker_class!r}, threads={threads})
    options = gunicorn_options(settings)
    stock = sys.argv[1] if len(sys.argv) > 1 else None  # a REFERENCES key: stock gunicorn, not byoc's set-up
    if stock is None:
        _gunicorn_application(app, options).run()
    else:
        from gunicorn.app.base import BaseApplication

        class Stock(BaseApplication):
            def load_config(self):
                for key in ("bind", "workers", "threads", "keepalive", "timeout"):
                    self.cfg.set(key, options[key])
                self.cfg.set("worker_class", "gthread")
                if stock == "access log":
                    self.cfg.set("accesslog", "-")  # gunicorn's default access_log_format

            def load(self):
                return app

        Stock().run()
""")

# Reference ceilings (BARE_APP's argument -> label): the same app under stock gunicorn gthread, with
# byoc's bind, workers, threads, keep-alive and timeout but gunicorn's own worker, arbiter and logger.
REFERENCES = {
    "access log": "stock gunicorn gthread, access log (default format)",
    "no log": "stock gunicorn gthread, no access log",
}


def train_model(root: Path, rows: int, hyperparameters: dict, numeric_only: bool = False) -> Path:
    """``root`` as the real ``train`` left it; a root trained before (its model.json written last,
    after every other file) is reused as it is."""
    if (root / "model" / "model.json").is_file():
        return root
    frame = synthetic_frame(rows, seed=1)
    if numeric_only:
        frame = numeric_columns(frame)
    make_ml_root(
        root,
        channels={"train": {"train.csv": frame.to_csv(header=False, index=False)}},
        hyperparameters=hyperparameters,
    )
    # One OpenMP thread: on a shared machine gradient boosting's spinning threads otherwise take minutes.
    proc = run_train(root, timeout=3600, env={"OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"train failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return root


def training_commit() -> str:
    """The last commit that changed what training produces here (the package, the data), plus
    ``-dirty`` when those files have uncommitted changes: the key of the model cache."""
    paths = ["container", "benchmarks/synthetic.py"]
    last = subprocess.run(
        ["git", "log", "-1", "--format=%h", "--", *paths], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *paths], cwd=REPO).returncode != 0
    return (last or "unknown") + ("-dirty" if dirty else "")


def numeric_columns(frame):
    return frame[[c for c in frame.columns if c == TARGET or c.startswith("num_")]]


@dataclass(frozen=True)
class Variant:
    """One gunicorn worker setting measured: its class and gthread threads per worker."""

    worker_class: str
    threads: int

    @property
    def label(self) -> str:
        if self.worker_class != "gthread":
            return self.worker_class
        return f"gthread, {self.threads} thread{'s' if self.threads > 1 else ''}"

    def environ(self) -> dict[str, str]:
        return {"BYOC_WORKER_CLASS": self.worker_class, "BYOC_WORKER_THREADS": str(self.threads)}


def variants(worker_classes: str, threads: str) -> list[Variant]:
    """Every class with every thread count (sync has one thread), the first being the baseline."""
    out: list[Variant] = []
    for worker_class in worker_classes.split(","):
        for count in threads.split(","):
            variant = Variant(worker_class, int(count) if worker_class == "gthread" else 1)
            if variant not in out:
                out.append(variant)
    return out


def bare_server(variant: Variant, layout: Layout, stock: str | None = None) -> Server:
    """The ceiling under byoc's gunicorn set-up, or with ``stock`` (a REFERENCES key) under stock gunicorn."""
    port = free_port()
    code = BARE_APP.format(
        container=str(REPO / "container"),
        port=port,
        workers=layout.workers,
        worker_class=variant.worker_class,
        threads=variant.threads,
    )
    argv = [sys.executable, "-c", code, *([stock] if stock else [])]
    return Server(on_cpus(argv, layout.server_cpus), clean_environ(None), port)


def wrk_command(layout: Layout, duration: int) -> list[str]:
    """wrk on the load generator's CPU (``layout``), with its target and script left to add."""
    return on_cpus(
        ["wrk", f"-t{layout.client_threads}", f"-c{layout.connections}", f"-d{duration}s", "--latency"],
        layout.client_cpus,
    )


def wrk(
    port: int,
    body: bytes,
    content_type: str,
    accept: str,
    duration: int,
    path: str = "/invocations",
    layout: Layout | None = None,
) -> dict:
    """requests/s, p50 and p99 from wrk --latency for one POST body, run as ``layout`` says."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body.decode('utf-8'))}\n"
            f'wrk.headers["Content-Type"] = "{content_type}"\n'
            f'wrk.headers["Accept"] = "{accept}"\n'
        )
        out = subprocess.run(
            [
                *wrk_command(layout or Layout.choose(shared=True), duration),
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise SystemExit(f"wrk saw error responses:\n{out}")

    def latency_ms(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
    }


def wrk_with_cpu(server: Server | ContainerServer, body: bytes, duration: int, layout: Layout) -> dict:
    """``wrk`` on a single-row CSV body, with the server's CPU time per request (master, workers,
    every thread; the whole container in an image): a cost that a loaded machine does not hide."""
    before = server.cpu_seconds()
    r = wrk(server.port, body, "text/csv", "text/csv", duration, layout=layout)
    r["cpu_ms"] = 1e3 * (server.cpu_seconds() - before) / r["requests"]
    return r


def single_row_bodies(frame) -> dict[str, tuple[bytes, str]]:
    row = frame.drop(columns=[TARGET]).iloc[[0]]
    record = {f"f{i}": v for i, v in enumerate(row.iloc[0].tolist())}
    return {
        "csv row": (row.to_csv(header=False, index=False).encode(), "text/csv"),
        "json record": (json.dumps(record).encode(), "application/json"),
    }


def csv_payload(frame, size_mb: int) -> bytes:
    """Headerless feature rows repeated up to ``size_mb`` MB (SplitType=Line, MultiRecord)."""
    block = frame.drop(columns=[TARGET]).to_csv(header=False, index=False).encode()
    target = size_mb * 1024 * 1024
    payload = block * (target // len(block) + 1)
    return payload[: payload.rfind(b"\n", 0, target) + 1]


@functools.cache
def _load_handler(root: Path, environ: tuple[tuple[str, str], ...]):
    from byoc.serving import handler
    from byoc.serving.settings import ServingSettings

    settings = ServingSettings.from_environ(
        {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100", **dict(environ)}
    )
    return handler.load(root / "model", settings, environ={}), settings


def load_handler(root: Path, **environ: str):
    """The handler the server runs, loaded in this process (same settings, same code); loaded
    once per model and settings in a run."""
    return _load_handler(root, tuple(sorted(environ.items())))


@functools.cache
def _request_types():
    """byoc's FlaskBody and InferenceRequest, imported once: the import statements ran on every
    :func:`invoke_in_process` call, about 13,000 instructions (two module look-ups with their
    "initializing" checks; 3% of a decision_tree row's handler) the server does not spend."""
    from byoc.serving.app import FlaskBody
    from byoc.serving.handler import InferenceRequest

    return FlaskBody, InferenceRequest


def invoke_in_process(model_handler, settings, payload: bytes) -> bytes:
    """decode -> predict -> encode exactly as POST /invocations does, without HTTP: the body framed
    by its length, as the app frames a Content-Length request (``byoc.serving.app.invoke``).  Left
    unframed, a body of unknown length went to a 4 MB slice buffer (and a second one to see its
    end) where the server reads into a buffer of the body's size: decision_tree in-process CPU,
    one CSV row 290 -> 108 us, a 1 MB body 2.7% less (paired medians, loaded machine)."""
    FlaskBody, InferenceRequest = _request_types()
    body = FlaskBody(io.BytesIO(payload), len(payload), settings.max_payload_bytes, len(payload))
    result = model_handler.invoke(InferenceRequest(body, "text/csv", "text/csv", None, "benchmark"))
    return result.body if isinstance(result.body, bytes) else b"".join(result.body)


def plain_pandas_predict(root: Path):
    """A plain baseline, for reference: a function of a CSV body that reads it with
    pandas.read_csv (numeric columns as float, text as pandas reads it by default) and runs
    pipeline.predict, no output encoding."""
    import pandas as pd

    from byoc import artifact

    model = artifact.load(root / "model")
    numeric = {f.name: "float64" for f in model.features if f.kind == "numeric"}

    def run(payload: bytes) -> None:
        frame = pd.read_csv(io.BytesIO(payload), header=None, names=model.feature_names, dtype=numeric)
        model.estimator.predict(frame)

    return run


def elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.0f} s"


def per_row_ms(root: Path, body: bytes, **environ: str) -> tuple[float, float]:
    """(handler.invoke, final estimator predict) for one row in this process, in ms (median of many)."""
    import statistics

    import pandas as pd

    model_handler, settings = load_handler(root, **environ)
    pipeline = model_handler.predictor.estimator
    frame = pd.read_csv(io.BytesIO(body), header=None, names=model_handler.predictor.model.feature_names)
    encoder, final = pipeline[:-1], pipeline.steps[-1][1]
    X = frame if pipeline.steps[0][1] == "passthrough" else encoder.transform(frame)
    predict = getattr(final, "predict_proba", final.predict)

    def median_ms(run, n: int = 300, budget_s: float = 2.0) -> float:
        """Median of up to ``n`` calls, stopping after ``budget_s`` (slow models)."""
        run()
        times: list[float] = []
        deadline = time.perf_counter() + budget_s
        while len(times) < n and (len(times) < 5 or time.perf_counter() < deadline):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    return median_ms(lambda: invoke_in_process(model_handler, settings, body)), median_ms(lambda: predict(X))


class BatchClient:
    """One keep-alive connection that posts one CSV body again and again: the request (head and
    body) built once and written with one ``sendall``, the answer read by its Content-Length.

    The handler in-process pays for no client, so the server's side should pay for as little of
    one as it can: ``requests.Session.post`` took 2.27 ms of this process's CPU per 1 MB post
    against 0.62 ms this way (medians of 41 alternating posts of decision_tree's 1 MB body to one
    server, whose worker CPU stayed the same: 13.7 and 13.6 ms, loaded machine), spent building
    the request, looking proxies up in the environment, making a file object for the response and
    parsing its headers: before the first byte goes out or after the last comes back, so all of
    it in the measured time."""

    def __init__(self, port: int, payload: bytes, path: str = "/invocations") -> None:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/csv\r\n"
            f"Accept: text/csv\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.request = head.encode("latin-1") + payload
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=900)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self) -> bytes:
        """The answer's body; SystemExit unless it is a 200 with a Content-Length, kept alive."""
        self.sock.sendall(self.request)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv(1 << 16)
        head = data[:end].decode("latin-1").lower()
        length = re.search(r"\r\ncontent-length:[ \t]*(\d+)", head)
        if not head.startswith("http/1.1 200 ") or length is None or "\r\nconnection: close" in head:
            body = data[end + 4 :][:500].decode(errors="replace")
            raise SystemExit(f"batch request failed: {head.splitlines()[0]} {body}")
        body = bytearray(data[end + 4 :])
        want = int(length.group(1))
        while len(body) < want:
            body += self._recv(want - len(body))
        return bytes(body)

    def _recv(self, size: int) -> bytes:
        block = self.sock.recv(size)
        if not block:
            raise SystemExit("batch request failed: the server closed the connection")
        return block

    def close(self) -> None:
        self.sock.close()


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def batch_rounds(
    port: int, root: Path, payload: bytes, budget_s: float, min_rounds: int = 5, max_rounds: int = 100
) -> dict:
    """The server against the same handler in this process on ``payload``, in paired rounds.

    After one untimed warm-up of each (whose answers must be byte-identical), each round times one
    request to the server (:class:`BatchClient`) and one run of the handler in-process, in turns
    at going first, then the plain pandas reference; rounds go on for ``budget_s`` seconds (at
    least ``min_rounds``, at most ``max_rounds``), so both sides get the same number of runs,
    warm-up and machine.  MB/s from each side's median time; the share is the median of the
    rounds' ratios (each pair ran back to back, so drift hits both)."""
    model_handler, settings = load_handler(root)
    plain = plain_pandas_predict(root)
    client = BatchClient(port, payload)
    try:

        def local() -> bytes:
            return invoke_in_process(model_handler, settings, payload)

        if client.post() != local():
            raise SystemExit("the server and the handler in-process answered differently")
        plain(payload)
        served: list[float] = []
        handled: list[float] = []
        reference: list[float] = []
        deadline = time.perf_counter() + budget_s
        while len(served) < min_rounds or (len(served) < max_rounds and time.perf_counter() < deadline):
            if len(served) % 2 == 0:
                served.append(timed(client.post))
                handled.append(timed(local))
            else:
                handled.append(timed(local))
                served.append(timed(client.post))
            reference.append(timed(lambda: plain(payload)))
    finally:
        client.close()
    mb = len(payload) / 1e6
    shares = sorted(h / s for s, h in zip(served, handled, strict=True))
    return {
        "server_mb_s": mb / statistics.median(served),
        "handler_mb_s": mb / statistics.median(handled),
        "pandas_mb_s": mb / statistics.median(reference),
        "share": statistics.median(shares),
        "share_quartiles": statistics.quantiles(shares, n=4) if len(shares) > 1 else shares * 3,
        "rounds": len(served),
    }


def uss_bytes(pid: int) -> int:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    )
    return sum(int(fields[k].split()[0]) * 1024 for k in ("Private_Clean", "Private_Dirty"))


def model_memory_bytes(root: Path) -> int:
    """Resident memory the loaded model adds to a fresh process (current RSS, not peak)."""
    code = (
        f"import sys, psutil; sys.path.insert(0, {str(REPO / 'container')!r}); from byoc import artifact;"
        "import sklearn.ensemble; p = psutil.Process(); before = p.memory_info().rss;"
        f"m = artifact.load({str(root / 'model')!r});"
        "print(p.memory_info().rss - before)"
    )
    return int(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
    )


# name -> (hyperparameters, numeric columns only)
MODELS = {
    "decision_tree": ({"algorithm": "decision_tree"}, False),
    "random_forest": ({"algorithm": "random_forest", "n_estimators": 100}, False),
    "extra_trees": ({"algorithm": "extra_trees", "n_estimators": 100}, False),
    "gradient_boosting": ({"algorithm": "gradient_boosting"}, False),
    "gradient_boosting numeric": ({"algorithm": "gradient_boosting"}, True),
    "linear": ({"algorithm": "linear"}, False),
    "knn": ({"algorithm": "knn"}, False),
    "svm": ({"algorithm": "svm"}, False),
    "ensemble": ({"algorithm": "ensemble"}, False),
    # the AutoML search: its blend or stack of compiled members, served by their row path
    "auto": ({"algorithm": "auto", "max_runtime_seconds": 120}, False),
}


def compiled_slots(root: Path) -> list[str]:
    """What predicts each compiled slot of the model in ``root``, as the table prints it: the
    backend for the final estimator ("onnxruntime"), member and backend for an ensemble's
    ("random_forest (onnxruntime)")."""
    entry = json.loads((root / "model" / "model.json").read_text()).get("compiled") or {}
    return [
        step["backend"]
        if step["slot"] == "model"
        else f"{step['slot'].removeprefix('member:')} ({step['backend']})"
        for step in entry.get("steps", [])
        if step.get("backend") not in (None, "scikit-learn")
    ]


def row(cells: list[str]) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def summarize(pairs: list[tuple[dict, dict]]) -> dict:
    """A row from its (ceiling, model) wrk pairs: medians of the model's runs, and its share of the
    ceiling as the median of the pairs' ratios (each pair ran back to back, so drift hits both)."""
    runs = [m for _, m in pairs]
    shares = sorted(m["rps"] / c["rps"] for c, m in pairs)
    return {
        "rps": statistics.median(m["rps"] for m in runs),
        "p50_ms": statistics.median(m["p50_ms"] for m in runs),
        "p99_ms": statistics.median(m["p99_ms"] for m in runs),
        "p99_runs_ms": [m["p99_ms"] for m in runs],
        "cpu_ms": statistics.median(m["cpu_ms"] for m in runs),
        "cpu_share": statistics.median(c["cpu_ms"] / m["cpu_ms"] for c, m in pairs),
        "share": statistics.median(shares),
        "shares": shares,
    }


def percent_list(values: list[float]) -> str:
    return ", ".join(f"{x:.0%}" for x in values)


def print_image_shares(results: dict, image: str) -> None:
    """Each single-row row's share of the ceiling in the image beside its share on this machine."""
    print(
        f"\n| single-row CSV: share of ceiling (p99; server CPU / request) | this machine | in {image} "
        "| image / this machine: share, CPU / request |"
    )
    print("|---|---|---|---|")
    for key, plain in results.items():
        inside = results.get(key.replace(" compiled=", f" in {image} compiled="))
        if not isinstance(plain, dict) or "share" not in plain or f" in {image}" in key or inside is None:
            continue
        row(
            [
                key,
                f"{plain['share']:.0%} ({plain['p99_ms']:.1f} ms; {plain['cpu_ms']:.3f} ms)",
                f"{inside['share']:.0%} ({inside['p99_ms']:.1f} ms; {inside['cpu_ms']:.3f} ms)",
                f"{inside['share'] / plain['share']:.2f}, {inside['cpu_ms'] / plain['cpu_ms']:.2f}",
            ]
        )


def print_references(
    base: Variant, ceiling: list[dict], references: dict[str, list[dict]], results: dict
) -> None:
    """The ceiling under byoc's gunicorn set-up beside the same app under stock gunicorn (REFERENCES),
    each reference run right before a ceiling run: medians, and each figure as a share of the
    ceiling's, the median of those pairs' ratios."""
    print(
        f"\n| ceiling variant (bare Flask app, constant answer; {base.label}) | requests/s | p99 "
        "| server CPU / request | requests/s, p99, CPU / request: share of byoc-stack ceiling (pairs) |"
    )
    print("|---|---|---|---|---|")
    rows = {"byoc-stack (the ceiling above: byoc's worker class, logger, options)": ceiling}
    rows.update({REFERENCES[key]: runs for key, runs in references.items()})
    out = results["ceiling references"] = {}
    for label, runs in rows.items():
        r = {
            "rps": statistics.median(c["rps"] for c in runs),
            "p99_ms": statistics.median(c["p99_ms"] for c in runs),
            "cpu_ms": statistics.median(c["cpu_ms"] for c in runs),
        }
        for key in ("rps", "p99_ms", "cpu_ms"):
            r[f"{key}_share"] = statistics.median(c[key] / b[key] for c, b in zip(runs, ceiling, strict=True))
        r["runs"] = len(runs)
        out[label] = r
        row(
            [
                label,
                f"{r['rps']:,.0f}",
                f"{r['p99_ms']:.2f} ms",
                f"{r['cpu_ms']:.3f} ms",
                f"{r['rps_share']:.0%}, {r['p99_ms_share']:.0%}, {r['cpu_ms_share']:.0%} ({len(runs)})",
            ]
        )


def main() -> int:
    from byoc.serving.settings import DEFAULT_WORKER_THREADS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="single rows: (ceiling, model) wrk pairs per row and setting, interleaved; the share is "
        "the median of the pairs' ratios",
    )
    parser.add_argument("--train-rows", type=int, default=10000)
    parser.add_argument("--batch-mb", default="1,10")
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=5.0,
        help="batch rows: seconds of paired rounds (server request, handler in-process) per row",
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS)
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--model-cache",
        type=Path,
        help="where trained model roots are kept and reused (default benchmarks/.data/models/COMMIT-ROWS)",
    )
    parser.add_argument("--retrain", action="store_true", help="train every model anew")
    parser.add_argument(
        "--image",
        help="also measure the server inside this built image (docker run --network host "
        "--cpuset-cpus IMAGE serve), single rows and batches, against the same ceiling, and print "
        "each row's share in the image beside its share here",
    )
    parser.add_argument(
        "--worker-classes",
        default="gthread",
        help="gunicorn worker classes to measure single rows with (BYOC_WORKER_CLASS); the first is "
        "byoc's default, the others (e.g. gthread,sync) are compared with it in the same run",
    )
    parser.add_argument(
        "--threads",
        default=str(DEFAULT_WORKER_THREADS),
        help="gthread threads per worker (BYOC_WORKER_THREADS) to measure single rows with, e.g. 8,2: "
        f"each against its own ceiling, interleaved (default {DEFAULT_WORKER_THREADS}, byoc's default)",
    )
    parser.add_argument(
        "--shared-cores",
        action="store_true",
        help="the older set-up: one worker per CPU and wrk -t2 on the same CPUs, nothing pinned",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_CONNECTIONS,
        help="wrk's keep-alive connections (closed loops): past the few that keep the worker busy, each "
        "adds its wait to every request's latency (p50, p99) and nothing to requests/s",
    )
    parser.add_argument(
        "--single-rows", action="store_true", help="only the single-row table (no batches, no memory)"
    )
    parser.add_argument(
        "--batches", action="store_true", help="only the batch table (no single rows, no memory, no ceiling)"
    )
    args = parser.parse_args()
    take_worker_allocator()  # the in-process baselines run as a worker does
    if not args.batches and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does it)")

    layout = Layout.choose(shared=args.shared_cores, connections=args.connections)
    settings = variants(args.worker_classes, args.threads)
    results: dict = {"layout": asdict(layout), "cpus": os.cpu_count()}  # the layout holds the connections
    places: list[str | None] = [None] + ([args.image] if args.image else [])  # None: this machine
    sample = synthetic_frame(2000, seed=2)
    run_started = time.perf_counter()
    cache = args.model_cache or DATA / "models" / f"{training_commit()}-{args.train_rows}"
    if args.retrain and cache.exists():
        shutil.rmtree(cache)
    roots = {}
    for name in args.models.split(","):
        hyperparameters, numeric_only = MODELS[name]
        started = time.perf_counter()
        roots[name] = train_model(
            cache / name.replace(" ", "_"), args.train_rows, hyperparameters, numeric_only
        )
        print(
            f"{name}: ready in {time.perf_counter() - started:.0f} s ({roots[name]}); "
            f"compiled: {compiled_slots(roots[name]) or 'nothing'}",
            flush=True,
        )
    if (
        layout.pinned
    ):  # this process's own work (in-process baselines, batch client) stays off the server's CPUs
        os.sched_setaffinity(0, layout.client_cpus)
    if args.batches:
        measure_batches(args, layout, roots, places, sample, results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    print(
        f"\n{' '.join(wrk_command(layout, args.duration))} -s post.lua URL; {layout.describe()}; "
        f"{' / '.join(v.label for v in settings)}; {args.rounds} rounds; {args.train_rows} training rows\n"
    )
    row(
        [
            "server (single-row CSV)",
            "predicts with",
            "requests/s",
            "p50",
            "p99",
            "share of ceiling (pairs)",
            "server CPU / request (ceiling's / this)",
            "handler in-process",
            "final predict",
            "share of stock no-log ceiling (pairs)",
        ]
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    ceiling_body = single_row_bodies(sample)["csv row"][0]
    bares: dict[Variant, Server] = {}
    ceilings: dict[Variant, list[dict]] = {v: [] for v in settings}
    base = settings[0]
    # The stock gunicorn references, measured right before every run of the baseline's ceiling (so
    # references[k][i] and ceilings[base][i] ran back to back); with a gthread baseline only.
    stocks: dict[str, Server] = {}
    references: dict[str, list[dict]] = {k: [] for k in REFERENCES} if base.worker_class == "gthread" else {}

    def measure(server: Server | ContainerServer, body: bytes) -> dict:
        return wrk_with_cpu(server, body, args.duration, layout)

    def measure_ceiling(variant: Variant) -> dict:
        if variant == base:
            for key, runs in references.items():
                runs.append(measure(stocks[key], ceiling_body))
        ceilings[variant].append(measure(bares[variant], ceiling_body))
        return ceilings[variant][-1]

    try:
        for key in references:
            stocks[key] = bare_server(base, layout, stock=key)
        for variant in settings:
            bares[variant] = bare_server(variant, layout)
            measure_ceiling(variant)  # a warm-up, kept
        for name, root in roots.items():
            frame = numeric_columns(sample) if MODELS[name][1] else sample
            body = single_row_bodies(frame)["csv row"][0]
            slots = compiled_slots(root)
            modes = [("on", "compiled: " + ", ".join(slots) if slots else "scikit-learn")]
            if slots:
                modes.append(("off", "scikit-learn (BYOC_COMPILED_INFERENCE=off)"))
            for (mode, label), image in [(m, i) for m in modes for i in places]:
                servers: dict[Variant, Server | ContainerServer] = {}
                pairs: dict[Variant, list[tuple[dict, dict]]] = {v: [] for v in settings}
                stock_pairs: list[tuple[dict, dict]] = []  # (stock no-log ceiling, baseline's model run)
                try:
                    for variant in settings:
                        servers[variant] = byoc_server(
                            root,
                            workers=layout.workers,
                            image=image,
                            cpus=layout.server_cpus,
                            BYOC_COMPILED_INFERENCE=mode,
                            **variant.environ(),
                        )
                    for _ in range(args.rounds):  # every setting's pair in each round
                        for variant in settings:
                            ceiling = measure_ceiling(variant)
                            pairs[variant].append((ceiling, measure(servers[variant], body)))
                            if variant == base and references:
                                stock_pairs.append((references["no log"][-1], pairs[variant][-1][1]))
                finally:
                    for server in servers.values():
                        server.stop()
                handler_ms, final_ms = per_row_ms(root, body, BYOC_COMPILED_INFERENCE=mode)
                where = f" in {image}" if image else ""
                for variant in settings:
                    r = summarize(pairs[variant])
                    r["handler_ms"], r["final_ms"] = handler_ms, final_ms
                    stock_cell = "-"
                    if variant == base and stock_pairs:
                        r["stock_no_log_shares"] = sorted(m["rps"] / c["rps"] for c, m in stock_pairs)
                        r["stock_no_log_share"] = statistics.median(r["stock_no_log_shares"])
                        stock_cell = (
                            f"{r['stock_no_log_share']:.0%} ({percent_list(r['stock_no_log_shares'])})"
                        )
                    prefix = "" if variant == settings[0] else f"{variant.label} "
                    results[f"{prefix}{name}{where} compiled={mode}"] = r
                    row(
                        [
                            f"byoc {name}{where}, {variant.label}",
                            label,
                            f"{r['rps']:,.0f}",
                            f"{r['p50_ms']:.2f} ms",
                            f"{r['p99_ms']:.2f} ms",
                            f"{r['share']:.0%} ({percent_list(r['shares'])})",
                            f"{r['cpu_ms']:.3f} ms ({r['cpu_share']:.0%})",
                            f"{handler_ms:.3f} ms",
                            f"{final_ms:.3f} ms",
                            stock_cell,
                        ]
                    )
    finally:
        for bare in [*bares.values(), *stocks.values()]:
            bare.stop()
    for variant in settings:
        runs = ceilings[variant]
        prefix = "" if variant == settings[0] else f"{variant.label} "
        results[f"{prefix}ceiling"] = {
            "rps": statistics.median(c["rps"] for c in runs),
            "p50_ms": statistics.median(c["p50_ms"] for c in runs),
            "p99_ms": statistics.median(c["p99_ms"] for c in runs),
            "cpu_ms": statistics.median(c["cpu_ms"] for c in runs),
        }
        results[f"{prefix}ceiling_runs"] = [c["rps"] for c in runs]
        ceiling = results[f"{prefix}ceiling"]
        stock_cell = "-"
        if variant == base and references:
            shares = sorted(c["rps"] / s["rps"] for s, c in zip(references["no log"], runs, strict=True))
            ceiling["stock_no_log_share"] = statistics.median(shares)
            stock_cell = f"{ceiling['stock_no_log_share']:.0%} ({percent_list(shares)})"
        row(
            [
                f"bare Flask + gunicorn (constant), {variant.label}: median of {len(runs)} runs "
                f"({min(c['rps'] for c in runs):,.0f}-{max(c['rps'] for c in runs):,.0f})",
                "-",
                f"{ceiling['rps']:,.0f}",
                f"{ceiling['p50_ms']:.2f} ms",
                f"{ceiling['p99_ms']:.2f} ms",
                "100%",
                f"{ceiling['cpu_ms']:.3f} ms",
                "-",
                "-",
                stock_cell,
            ]
        )
    if references:
        print_references(base, ceilings[base], references, results)
    if args.image:
        print_image_shares(results, args.image)

    print(f"\n(single rows done after {elapsed(run_started)})")
    if not args.single_rows:
        measure_batches(args, layout, roots, places, sample, results)
        measure_memory(layout, roots, sample, results)
    print(f"\naims, this run (whole run: {elapsed(run_started)}):")
    for line in aim_verdicts(results):
        print(f"- {line}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


SHARE_AIM, P99_AIM_MS, BATCH_AIM, MEMORY_AIM = 0.60, 10.0, 1.0, 0.30


def aim_verdicts(results: dict) -> list[str]:
    """Which rows of this run meet the serving aims and which miss them, one line per aim: every
    model served as trained (``compiled=on``) at >= 60% of the ceiling with p99 < 10 ms, every
    batch >= the same handler in-process, an added worker < 30% of the model's size."""

    def verdict(aim: str, judged: list[tuple[str, bool]]) -> str:
        met = [text for text, ok in judged if ok]
        missed = [text for text, ok in judged if not ok]
        parts = [f"met by {', '.join(met)}"] if met else []
        parts += [f"MISSED by {', '.join(missed)}"] if missed else []
        return f"{aim}: {'; '.join(parts) or 'not measured'}"

    single = [
        (
            f"{key.removesuffix(' compiled=on')} ({r['share']:.0%}, p99 {r['p99_ms']:.1f} ms)",
            r["share"] >= SHARE_AIM and r["p99_ms"] < P99_AIM_MS,
        )
        for key, r in results.items()
        if key.endswith(" compiled=on") and key.split(" ")[0] in MODELS
    ]
    batches = [
        (f"{key.removeprefix('batch ')} ({r['share']:.0%})", r["share"] >= BATCH_AIM)
        for key, r in results.items()
        if key.startswith("batch ")
    ]
    lines = [
        verdict(
            f"single rows as trained, >= {SHARE_AIM:.0%} of the ceiling with p99 < {P99_AIM_MS:g} ms", single
        ),
        verdict("batch >= the same handler in-process (median of the rounds' ratios)", batches),
    ]
    if "memory" in results:
        worst = results["memory"]["worst_share"]
        ok = worst < MEMORY_AIM
        lines.append(
            f"an added worker < {MEMORY_AIM:.0%} of the model's size: {'met' if ok else 'MISSED'} ({worst:.0%})"
        )
    return lines


def measure_batches(
    args: argparse.Namespace, layout: Layout, roots: dict, places: list, sample, results: dict
) -> None:
    """Batch bodies through the server against the same handler in this process."""
    print(
        f"\nbatch rounds: the server (one keep-alive connection, the request prebuilt) and the same handler "
        f"in-process, alternately, for {args.batch_seconds:g} s per row (at least 5 rounds); MB/s from each "
        "side's median, share = median of the rounds' ratios (quartiles beside it)"
    )
    print(
        "\n| batch CSV body | model | byoc server | same handler in-process | share (quartiles; rounds) "
        "| plain pandas + predict (reference) |"
    )
    print("|---|---|---|---|---|---|")
    for name, image in [(n, i) for n in ("decision_tree", "random_forest") if n in roots for i in places]:
        root = roots[name]
        server = byoc_server(
            root,
            workers=layout.workers,
            image=image,
            cpus=layout.server_cpus,
            SAGEMAKER_BATCH="true",
            SAGEMAKER_MAX_PAYLOAD_IN_MB="100",
        )
        where = f" in {image}" if image else ""
        try:
            for size in (int(s) for s in args.batch_mb.split(",")):
                m = batch_rounds(server.port, root, csv_payload(sample, size), args.batch_seconds)
                results[f"batch {name}{where} {size} MB"] = m
                low, _, high = m["share_quartiles"]
                row(
                    [
                        f"{size} MB",
                        f"{name}{where}",
                        f"{m['server_mb_s']:.1f} MB/s",
                        f"{m['handler_mb_s']:.1f} MB/s",
                        f"{m['share']:.0%} ({low:.0%}-{high:.0%}; {m['rounds']})",
                        f"{m['pandas_mb_s']:.1f} MB/s",
                    ]
                )
        finally:
            server.stop()


def measure_memory(layout: Layout, roots: dict, sample, results: dict) -> None:
    """Private memory of each of 4 workers serving the random forest, against the model's size."""
    if "random_forest" not in roots:
        return
    forest = roots["random_forest"]
    model_bytes = model_memory_bytes(forest)
    server = byoc_server(forest, workers=4, cpus=layout.server_cpus)
    try:
        import requests

        with requests.Session() as session:  # touch every worker's copy-on-write pages
            for _ in range(200):
                session.post(
                    f"http://127.0.0.1:{server.port}/invocations",
                    data=single_row_bodies(sample)["csv row"][0],
                    headers={"Content-Type": "text/csv"},
                    timeout=30,
                )
        per_worker = [uss_bytes(pid) for pid in server.pids()]
    finally:
        server.stop()
    worst = max(per_worker)
    results["memory"] = {
        "model_bytes": model_bytes,
        "worker_uss": per_worker,
        "worst_share": worst / model_bytes,
    }
    print(
        f"\nmemory: random_forest (100 trees) takes {model_bytes / 1e6:.0f} MB loaded; "
        f"private memory per worker (4 workers): "
        f"{', '.join(f'{u / 1e6:.0f} MB' for u in per_worker)}; "
        f"worst = {worst / model_bytes:.0%} of the model"
    )


if __name__ == "__main__":
    sys.exit(main())
