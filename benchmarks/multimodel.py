"""Multi-model endpoint benchmark: load latency, warm-invoke throughput, memory per model, in one run.

Measured, all on this machine in this run (servers are the real ``container/serve``):

1. load latency by model size: POST /models then DELETE, five times per model, median of the
   POST's wall time seen by the client (one worker): constant models with 0-100 MiB of
   ballast (byoc's artifact format) and models trained by the real ``container/train``;
2. memory per loaded model: a one-worker endpoint loads ten copies of a model under ten names
   and invokes each; the worker's resident growth per copy, against the model's files and the
   registry's estimate (what the memory budget counts);
3. warm-invoke throughput: wrk (8 connections, single-row CSV) against /invocations of a
   single-model server (sync workers) and /models/<name>/invoke of a multi-model endpoint on
   the same model, with as many workers and with one worker (one copy per model: the
   alternative design), as a share of the single-model figure; the servers take turns, five
   rounds, medians.

    .venv/bin/python benchmarks/multimodel.py [--duration 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

from benchmarks.harness import WORKERS, byoc_server, commit
from benchmarks.serving import single_row_bodies, train_model, wrk
from benchmarks.synthetic import synthetic_frame
from support import save_constant_model

MIB = 1 << 20


def mme_server(workers: int):
    return byoc_server(Path("/nonexistent-ml-root"), workers=workers, SAGEMAKER_MULTI_MODEL="true")


def post(session, port: int, method: str, path: str, **kwargs):
    response = session.request(method, f"http://127.0.0.1:{port}{path}", timeout=600, **kwargs)
    if response.status_code != 200:
        raise SystemExit(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return response


def model_files_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rss(pid: int) -> int:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * 4096


def load_latency(models: dict[str, Path], repeats: int = 5) -> list[dict]:
    import requests

    server = mme_server(workers=1)
    rows = []
    try:
        with requests.Session() as session:
            for label, path in models.items():
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    post(
                        session, server.port, "POST", "/models", json={"model_name": label, "url": str(path)}
                    )
                    times.append(time.perf_counter() - start)
                    post(session, server.port, "DELETE", f"/models/{label}")
                rows.append(
                    {
                        "model": label,
                        "files_mib": model_files_bytes(path) / MIB,
                        "load_ms_median": statistics.median(times) * 1000,
                        "load_ms_first": times[0] * 1000,
                    }
                )
    finally:
        server.stop()
    return rows


def memory_per_model(label: str, path: Path, body: bytes, copies: int = 10) -> dict:
    import requests

    from byoc.serving.multimodel import estimated_bytes

    server = mme_server(workers=1)
    try:
        (worker,) = server.pids()
        with requests.Session() as session:
            post(session, server.port, "GET", "/models")
            for _ in range(3):  # the worker's first requests, before the baseline
                session.post(f"http://127.0.0.1:{server.port}/models/none/invoke", data=b"1\n", timeout=10)
            before = rss(worker)
            for i in range(copies):
                post(session, server.port, "POST", "/models", json={"model_name": f"m{i}", "url": str(path)})
                post(
                    session,
                    server.port,
                    "POST",
                    f"/models/m{i}/invoke",
                    data=body,
                    headers={"Content-Type": "text/csv"},
                )
            grown = (rss(worker) - before) / copies
    finally:
        server.stop()
    return {
        "model": label,
        "files_mib": model_files_bytes(path) / MIB,
        "rss_per_model_mib": grown / MIB,
        "estimate_mib": estimated_bytes(path) / MIB,
    }


def throughput(root: Path, body: bytes, duration: int, rounds: int = 5) -> list[dict]:
    """All three servers run at once and take turns, ``rounds`` times: the machine's load drifts
    (it is shared), so each figure is a median over rounds spread across the same minutes."""
    import requests

    servers = {
        f"single-model /invocations, {WORKERS} sync workers": (
            byoc_server(root, workers=WORKERS),
            "/invocations",
        )
    }
    try:
        for workers in (WORKERS, 1):
            server = mme_server(workers)
            servers[f"multi-model /models/m/invoke, {workers} gthread worker(s)"] = (
                server,
                "/models/m/invoke",
            )
            with requests.Session() as session:
                post(
                    session,
                    server.port,
                    "POST",
                    "/models",
                    json={"model_name": "m", "url": str(root / "model")},
                )
        for server, path in servers.values():
            wrk(server.port, body, "text/csv", "text/csv", 1, path=path)  # warm: every worker loads the model
        runs: dict[str, list[dict]] = {label: [] for label in servers}
        for _ in range(rounds):
            for label, (server, path) in servers.items():
                runs[label].append(wrk(server.port, body, "text/csv", "text/csv", duration, path=path))
    finally:
        for server, _ in servers.values():
            server.stop()
    baseline = [run["rps"] for run in next(iter(runs.values()))]
    rows = []
    for label, results in runs.items():
        rows.append(
            {
                "server": label,
                "rps": statistics.median(r["rps"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "share": statistics.median(r["rps"] / b for r, b in zip(results, baseline, strict=True)),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="byoc-bench-mme-"))
    trained = {
        "decision_tree": train_model(work / "dt", 10_000, {"algorithm": "decision_tree", "max_depth": 8}),
        "random_forest 50 trees": train_model(
            work / "rf", 10_000, {"algorithm": "random_forest", "n_estimators": 50}
        ),
    }
    models = {
        f"constant + {mib} MiB": save_constant_model(work / f"c{mib}", 1.0, ballast_bytes=mib * MIB)
        for mib in (0, 1, 10, 100)
    }
    models.update({label: root / "model" for label, root in trained.items()})
    body = single_row_bodies(synthetic_frame(10, seed=1))["csv row"][0]

    results = {
        "commit": commit(),
        "load": load_latency(models),
        "memory": [
            memory_per_model("random_forest 50 trees", models["random_forest 50 trees"], body),
            memory_per_model("constant + 10 MiB", models["constant + 10 MiB"], b"1\n"),
        ],
        "throughput": throughput(trained["decision_tree"], body, args.duration),
    }
    print(f"commit {results['commit']}, {WORKERS} workers\n")
    print("| model | files | load (median of 5) | first load |\n|---|---|---|---|")
    for row in results["load"]:
        print(
            f"| {row['model']} | {row['files_mib']:.2f} MiB | {row['load_ms_median']:.1f} ms | {row['load_ms_first']:.1f} ms |"
        )
    print("\n| model | files | resident per loaded model | budget estimate |\n|---|---|---|---|")
    for row in results["memory"]:
        print(
            f"| {row['model']} | {row['files_mib']:.2f} MiB | {row['rss_per_model_mib']:.2f} MiB | {row['estimate_mib']:.2f} MiB |"
        )
    print("\n| server | requests/s | p50 | p99 | share |\n|---|---|---|---|---|")
    for row in results["throughput"]:
        print(
            f"| {row['server']} | {row['rps']:,.0f} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms | {row['share']:.0%} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
