"""Memory of the real server (all its processes) during and after 100 MB batch bodies.

Batch transform with SplitType=Line and MaxPayloadInMB=100 sends bodies of up to 100 MB: CSV,
JSON Lines, or a JSON document ``{"instances": [...]}``.  The server's total memory (the sum of
every process's proportional set size, sampled while the request runs) must grow by less than
the body, and come back to within 20% of where it was before the request.  Each is answered in
its own format, as batch transform asks (Accept = the body's type).
"""

from __future__ import annotations

import json
import threading
import time

import psutil
import pytest
import serving_models as sm

BATCH_ENV = {
    "SAGEMAKER_BATCH": "True",
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100",
    "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
}
BODY_BYTES = 99 * 1024 * 1024


def total_memory(pid: int) -> int:
    """Proportional set size of the server's master and workers (shared pages counted once)."""
    master = psutil.Process(pid)
    total = 0
    for process in [master, *master.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, total_memory(self.pid))
            self.done.wait(0.02)

    def __enter__(self) -> PeakSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(10)


def _repeat_to(block: bytes, size: int) -> bytes:
    return block * (size // len(block))


def csv_body(size: int) -> bytes:
    return _repeat_to(sm.features("binary").to_csv(index=False, header=False).encode(), size)


def jsonlines_body(size: int) -> bytes:
    records = json.loads(sm.features("binary").to_json(orient="records"))
    return _repeat_to("".join(json.dumps(r) + "\n" for r in records).encode(), size)


def json_body(size: int) -> bytes:
    rows = json.loads(sm.features("binary").to_json(orient="values"))
    block = ",".join(json.dumps(r) for r in rows).encode()
    inner = _repeat_to(block + b",", size - 20)[:-1]
    return b'{"instances": [' + inner + b"]}"


def _labels(answer: bytes, content_type: str) -> list[str]:
    if content_type == "text/csv":
        return answer.decode().splitlines()
    if content_type == "application/json":
        return [p["predicted_label"] for p in json.loads(answer)["predictions"]]
    return [json.loads(line)["predicted_label"] for line in answer.splitlines()]


@pytest.fixture(scope="module")
def batch_server():
    server = sm.start(sm.trained_root("binary"), workers=1, env=BATCH_ENV)
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make_body", "content_type"),
    [(csv_body, "text/csv"), (jsonlines_body, "application/jsonlines"), (json_body, "application/json")],
    ids=["csv", "jsonlines", "json"],
)
def test_a_100_mb_batch_grows_memory_less_than_the_body_and_gives_it_back(
    batch_server, make_body, content_type
):
    body = make_body(BODY_BYTES)
    assert 95 * 1024 * 1024 < len(body) <= 100 * 1024 * 1024
    rows = len(sm.features("binary"))
    expected = batch_server.invoke(
        sm.features("binary").to_csv(index=False, header=False), "text/csv", "text/csv"
    ).text.splitlines()
    for _ in range(2):  # lazy imports and first-use caches are not what is measured
        assert batch_server.invoke(make_body(1_000_000), content_type).status_code == 200
    time.sleep(0.5)
    before = total_memory(batch_server.process.pid)
    with PeakSampler(batch_server.process.pid) as sampler:  # answered in the request's own format
        response = batch_server.invoke(body, content_type, content_type, timeout=600)
    assert response.status_code == 200, response.text[:500]
    labels = _labels(response.content, content_type)
    assert len(labels) % rows == 0 and labels[:rows] == expected and labels[-rows:] == expected
    growth = sampler.peak - before
    assert growth < len(body), f"peak {sampler.peak / 2**20:.0f} MiB, before {before / 2**20:.0f} MiB"
    time.sleep(1.0)
    after = total_memory(batch_server.process.pid)
    assert after <= before * 1.2, f"after {after / 2**20:.0f} MiB, before {before / 2**20:.0f} MiB"
