"""Many clients against one multi-model endpoint whose memory budget holds a fifth of its models.

50 models, each predicting a constant that names it (byoc's artifact format, 4 MiB of ballast
each so memory is measurable); a budget that holds 10 of them (5 per worker); 8 client threads
invoke random models for 30 s (mostly misses: loads and evictions all the time) while another thread unloads and reloads a tenth of them.
Every answer must be the right model's, nothing may be a 5xx, and every worker's resident
memory must stay within its share of the budget throughout, and fall back once all are unloaded.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import requests
import serving_models as sm

import support
from byoc.serving import multimodel

MODELS = 50
CHURNED = range(40, 50)  # unloaded and loaded again while clients invoke them
HOLDS = 10
WORKERS = 2
CLIENTS = 8
SECONDS = 30
BALLAST = 4 << 20
# What a worker's Python grows by besides models (first requests, buffers, allocator slack).
SLACK = 40 << 20


def value_of(i: int) -> float:
    return 1000.0 + i


def worker_rss(server: sm.Server) -> dict[int, int]:
    children = psutil.Process(server.process.pid).children()
    return {child.pid: child.memory_info().rss for child in children}


@pytest.mark.slow
def test_clients_loads_unloads_and_evictions_at_once(tmp_path: Path) -> None:
    urls = {
        f"model-{i}": str(support.save_constant_model(tmp_path / f"m{i}", value_of(i), ballast_bytes=BALLAST))
        for i in range(MODELS)
    }
    one = multimodel.estimated_bytes(Path(urls["model-0"]))
    budget_mb = -(-HOLDS * one // (1 << 20))  # ceil
    share = budget_mb * (1 << 20) // WORKERS
    server = sm.start(
        Path("/nonexistent-ml-root"),
        workers=WORKERS,
        env={"SAGEMAKER_MULTI_MODEL": "true", "BYOC_MULTI_MODEL_MEMORY_MB": str(budget_mb)},
    )
    answers: Counter[str] = Counter()
    failures: list[str] = []
    peaks: dict[int, int] = {}
    stop = threading.Event()
    try:
        # /ping passes once one worker is up, and gunicorn forks the next after a random pause of up
        # to 0.1 s: a baseline taken before then missed the second worker, which then looked like a
        # replacement (seen once in CI).
        support.wait_for(lambda: len(worker_rss(server)) == WORKERS, f"{WORKERS} workers started", 60)
        session = requests.Session()
        for _ in range(4):  # every worker past its first requests before the baseline is taken
            session.post(f"{server.url}/models/none/invoke", data="1\n", timeout=10)
        baseline = worker_rss(server)
        for name, url in urls.items():
            response = session.post(f"{server.url}/models", json={"model_name": name, "url": url}, timeout=60)
            assert response.status_code == 200, response.text

        def client(seed: int) -> None:
            rng = random.Random(seed)
            with requests.Session() as own:
                while not stop.is_set():
                    i = rng.randrange(MODELS)
                    response = own.post(
                        f"{server.url}/models/model-{i}/invoke",
                        data="1.5\n",
                        headers={"Content-Type": "text/csv"},
                        timeout=60,
                    )
                    if response.status_code == 200 and float(response.text) == value_of(i):
                        answers["right"] += 1
                    elif response.status_code == 404 and i in CHURNED:
                        assert response.json()["error"] == "model_not_loaded"
                        answers["404 while unloaded"] += 1
                    else:
                        failures.append(f"model-{i}: {response.status_code} {response.text[:200]}")

        def churn() -> None:
            rng = random.Random(99)
            with requests.Session() as own:
                while not stop.is_set():
                    i = rng.choice(CHURNED)
                    name = f"model-{i}"
                    if rng.random() < 0.5:
                        response = own.delete(f"{server.url}/models/{name}", timeout=60)
                        expected = (200, 404)
                    else:
                        response = own.post(
                            f"{server.url}/models", json={"model_name": name, "url": urls[name]}, timeout=60
                        )
                        expected = (200, 409)
                    answers[f"churn {response.status_code}"] += 1
                    if response.status_code not in expected:
                        failures.append(f"churn {name}: {response.status_code} {response.text[:200]}")

        def watch() -> None:
            while not stop.is_set():
                for pid, rss in worker_rss(server).items():
                    peaks[pid] = max(peaks.get(pid, 0), rss - baseline.get(pid, rss))
                time.sleep(0.2)

        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
        threads += [threading.Thread(target=churn), threading.Thread(target=watch)]
        for thread in threads:
            thread.start()
        time.sleep(SECONDS)
        stop.set()
        for thread in threads:
            thread.join(60)

        # Unload everything: every worker frees its copies, requests or not, within seconds.
        for name in urls:
            session.delete(f"{server.url}/models/{name}", timeout=60)
        deadline = time.monotonic() + 20
        while True:
            after = {pid: rss - baseline.get(pid, rss) for pid, rss in worker_rss(server).items()}
            if max(after.values()) <= SLACK or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        output = server.stop()

    assert failures == [], failures[:10]
    assert answers["right"] > 100 and answers["churn 200"] > 5, answers  # the run did exercise both
    assert set(baseline) == set(peaks), "a worker died or was replaced"
    assert max(peaks.values()) <= share + SLACK, (peaks, share)
    assert max(after.values()) <= SLACK, after
    assert "evicted model" in output
    assert " 500 " not in output and "Traceback" not in output
