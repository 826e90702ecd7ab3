"""Serving benchmark: byoc's server against the bare ceiling of its own stack, in one run.

Load generator: wrk (C, keep-alive, ``--latency`` for p50/p99), 8 connections, 2 threads;
``make bench`` installs it from Debian when missing.  It shares the machine's cores with the
server, equally for every row.  Measured, all on this machine in this run:

1. ceiling: a bare Flask app returning a constant, under gunicorn with the same worker count
   and worker class byoc uses (``byoc.serving.server.gunicorn_options``);
2. byoc with a decision_tree and a gradient_boosting model (trained by the real
   ``container/train`` on synthetic data: 10 numeric + 10 text categorical features), single-row
   CSV and single-record JSON bodies;
3. batch: 1 MB, 10 MB and 100 MB CSV bodies (SAGEMAKER_BATCH=true, MaxPayloadInMB 100), MB/s,
   against reading the same CSV with pandas and predicting in-process;
4. memory: private memory (USS: Private_Clean + Private_Dirty from /proc/PID/smaps_rollup) of
   each worker of a server holding a large random forest, against the model's own size (RSS
   growth from loading it in a fresh process).

    .venv/bin/python benchmarks/serving.py [--duration 10] [--json results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "container"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from benchmarks.synthetic import TARGET, synthetic_frame
from support import SERVE, clean_environ, free_port, make_ml_root, run_train, wait_for_ping

CONNECTIONS = 8
WORKERS = os.cpu_count() or 1

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

    options = gunicorn_options(ServingSettings(port={port}, workers={workers}, worker_class={worker_class!r}))
    _gunicorn_application(app, options).run()
""")


def train_model(root: Path, rows: int, hyperparameters: dict) -> Path:
    frame = synthetic_frame(rows, seed=1)
    make_ml_root(
        root,
        channels={"train": {"train.csv": frame.to_csv(header=False, index=False)}},
        hyperparameters=hyperparameters,
    )
    proc = run_train(root, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"train failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return root


class Server:
    """A server process whose log goes to a file (a pipe nobody drains would block it)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int) -> None:
        self.log = tempfile.TemporaryFile()
        self.port = port
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(REPO))
        wait_for_ping(port, timeout=120)

    def pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def byoc_server(root: Path, workers: int = WORKERS, **extra: str) -> Server:
    port = free_port()
    env = clean_environ(
        None,
        SAGEMAKER_BASE_DIR=str(root),
        SAGEMAKER_BIND_TO_PORT=str(port),
        SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
        **extra,
    )
    return Server([sys.executable, str(SERVE)], env, port)


def bare_server(worker_class: str) -> Server:
    port = free_port()
    code = BARE_APP.format(
        container=str(REPO / "container"), port=port, workers=WORKERS, worker_class=worker_class
    )
    return Server([sys.executable, "-c", code], clean_environ(None), port)


def wrk(
    port: int, body: bytes, content_type: str, accept: str, duration: int, path: str = "/invocations"
) -> dict:
    """requests/s, p50 and p99 from wrk --latency for one POST body."""
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
                "wrk",
                "-t2",
                f"-c{CONNECTIONS}",
                f"-d{duration}s",
                "--latency",
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
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
    }


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


def in_process_mb_s(root: Path, payload: bytes, repeats: int) -> float:
    """The batch baseline: pandas reads the CSV, the pipeline predicts, in this process."""
    import pandas as pd

    from byoc import artifact

    model = artifact.load(root / "model")
    names = model.feature_names
    kinds = {f.name: (float if f.kind == "numeric" else object) for f in model.features}
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        frame = pd.read_csv(io.BytesIO(payload), header=None, names=names, dtype=kinds)
        model.estimator.predict(frame)
        best = min(best, time.perf_counter() - start)
    return len(payload) / 1e6 / best


def post_mb_s(port: int, payload: bytes, repeats: int, path: str = "/invocations") -> float:
    import requests

    best = float("inf")
    with requests.Session() as session:
        for _ in range(repeats):
            start = time.perf_counter()
            resp = session.post(
                f"http://127.0.0.1:{port}/invocations",
                data=payload,
                timeout=900,
                headers={"Content-Type": "text/csv", "Accept": "text/csv"},
            )
            best = min(best, time.perf_counter() - start)
            if resp.status_code != 200:
                raise SystemExit(f"batch request failed: {resp.status_code} {resp.text[:500]}")
    return len(payload) / 1e6 / best


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--batch-mb", default="1,10,100")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--worker-classes",
        default="gthread,sync",
        help="gunicorn worker classes to measure single rows with (BYOC_WORKER_CLASS); the first is "
        "byoc's default, the others are compared with it in the same run",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does it)")

    results: dict = {"workers": WORKERS, "connections": CONNECTIONS, "cpus": os.cpu_count()}
    sample = synthetic_frame(2000, seed=2)
    bodies = single_row_bodies(sample)
    with tempfile.TemporaryDirectory() as tmp:
        roots = {
            "decision_tree": train_model(Path(tmp) / "tree", 20000, {"algorithm": "decision_tree"}),
            "gradient_boosting": train_model(Path(tmp) / "gb", 20000, {"algorithm": "gradient_boosting"}),
        }
        classes = args.worker_classes.split(",")
        print(
            f"wrk -t2 -c{CONNECTIONS} -d{args.duration}s --latency; {WORKERS} workers; "
            f"{os.cpu_count()} CPUs shared by server and load generator\n"
        )
        print("| server | workers | body | requests/s | p50 | p99 | share of ceiling | vs first class |")
        print("|---|---|---|---|---|---|---|---|")
        for worker_class in classes:
            prefix = "" if worker_class == classes[0] else f"{worker_class} "
            bare = bare_server(worker_class)
            try:
                ceiling = wrk(bare.port, bodies["csv row"][0], "text/csv", "text/csv", args.duration)
            finally:
                bare.stop()
            results[f"{prefix}ceiling"] = ceiling
            print(
                f"| bare Flask + gunicorn (constant) | {worker_class} | csv row | {ceiling['rps']:,.0f} | "
                f"{ceiling['p50_ms']:.2f} ms | {ceiling['p99_ms']:.2f} ms | 100% | "
                f"{ceiling['rps'] / results['ceiling']['rps']:.2f}x |",
                flush=True,
            )
            for name, root in roots.items():
                server = byoc_server(root, BYOC_WORKER_CLASS=worker_class)
                try:
                    for label, (body, ctype) in bodies.items():
                        r = wrk(server.port, body, ctype, ctype, args.duration)
                        r["share"] = r["rps"] / ceiling["rps"]
                        results[f"{prefix}{name} {label}"] = r
                        first = results[f"{name} {label}"]["rps"]
                        print(
                            f"| byoc {name} | {worker_class} | {label} | {r['rps']:,.0f} | "
                            f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['share']:.0%} | "
                            f"{r['rps'] / first:.2f}x |",
                            flush=True,
                        )
                finally:
                    server.stop()

        print("\n| batch CSV body | byoc server | pandas + predict in-process | share |")
        print("|---|---|---|---|")
        root = roots["decision_tree"]
        server = byoc_server(root, SAGEMAKER_BATCH="true", SAGEMAKER_MAX_PAYLOAD_IN_MB="100")
        try:
            for size in (int(s) for s in args.batch_mb.split(",")):
                payload = csv_payload(sample, size)
                repeats = 3 if size < 100 else 2
                served = post_mb_s(server.port, payload, repeats)
                local = in_process_mb_s(root, payload, repeats)
                results[f"batch {size} MB"] = {
                    "server_mb_s": served,
                    "in_process_mb_s": local,
                    "share": served / local,
                }
                print(
                    f"| {size} MB | {served:.1f} MB/s | {local:.1f} MB/s | {served / local:.0%} |", flush=True
                )
        finally:
            server.stop()

        big = train_model(Path(tmp) / "forest", 20000, {"algorithm": "random_forest", "n_estimators": 150})
        model_bytes = model_memory_bytes(big)
        server = byoc_server(big, workers=4)
        try:
            import requests

            with requests.Session() as session:  # touch every worker's copy-on-write pages
                for _ in range(200):
                    session.post(
                        f"http://127.0.0.1:{server.port}/invocations",
                        data=bodies["csv row"][0],
                        headers={"Content-Type": "text/csv"},
                        timeout=30,
                    )
            workers = server.pids()
            per_worker = [uss_bytes(pid) for pid in workers]
        finally:
            server.stop()
        worst = max(per_worker)
        results["memory"] = {
            "model_bytes": model_bytes,
            "worker_uss": per_worker,
            "worst_share": worst / model_bytes,
        }
        print(
            f"\nmemory: random_forest (150 trees) takes {model_bytes / 1e6:.0f} MB loaded; "
            f"private memory per worker (4 workers): "
            f"{', '.join(f'{u / 1e6:.0f} MB' for u in per_worker)}; "
            f"worst = {worst / model_bytes:.0%} of the model"
        )
    print(
        "\ntargets: decision_tree csv row >= 60% of ceiling, p99 < 20 ms; batch >= 50% of in-process; "
        "added worker < 30% of model size"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
