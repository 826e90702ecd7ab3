"""Endpoint types through the real ``container/serve``: the classic sample's settings,
asynchronous inference's large payloads, and the serverless one-worker setting."""

from __future__ import annotations

import time

import psutil
import serving_models as sm

import support

MB = 1024 * 1024


def _constant_root(tmp_path, ballast_bytes: int = 0):
    root = tmp_path / "root"
    support.save_constant_model(root / "model", 2.5, ballast_bytes=ballast_bytes)
    return root


def _workers(server: sm.Server, count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(server.process.pid).children()
        if len(children) == count:
            return children
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers")


def _peak_rss(process: psutil.Process) -> int:
    for line in open(f"/proc/{process.pid}/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_the_classic_sample_settings_apply_when_the_sagemaker_names_are_absent(tmp_path):
    root = _constant_root(tmp_path)
    process, port = support.start_serve(
        root, env={"MODEL_SERVER_WORKERS": "1", "MODEL_SERVER_TIMEOUT": "3600"}
    )
    support.wait_for_ping(port, process)
    server = sm.Server(process, port)  # SAGEMAKER_MODEL_SERVER_WORKERS stays unset, unlike sm.start
    try:
        workers = _workers(server, 1)
        parameters = server.get("/execution-parameters").json()
    finally:
        log = server.stop()
    assert len(workers) == 1 and parameters["MaxConcurrentTransforms"] == 1
    assert "MODEL_SERVER_WORKERS=1 used" in log and "MODEL_SERVER_TIMEOUT=3600 used" in log


def test_an_asynchronous_inference_payload_above_100_mb_streams_in_bounded_memory(tmp_path):
    root = _constant_root(tmp_path)
    server = sm.start(
        root, workers=1, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600"}
    )
    row = ("1." + "0" * 1021 + "\n").encode()  # 1 KB rows keep the answer small
    try:
        (worker,) = _workers(server, 1)
        small_rows, large_rows = 30 * MB // len(row), 210 * MB // len(row)
        small = server.invoke(row * small_rows, "text/csv", "text/csv", timeout=600)
        after_small = _peak_rss(worker)  # the per-slice working set has been reached
        large = server.invoke(row * large_rows, "text/csv", "text/csv", timeout=600)
        more = _peak_rss(worker) - after_small
    finally:
        server.stop()
    assert small.status_code == 200 and large.status_code == 200, large.text[:300]
    assert small.text == "2.5\n" * small_rows and large.text == "2.5\n" * large_rows  # every row answered
    # 180 MB more body: were it held whole (or as a frame), the peak would rise by at least that.
    assert more < 60 * MB, f"peak resident memory rose {more / MB:.0f} MB more for a 7x larger body"


def test_serverless_one_worker_keeps_one_copy_of_the_model(tmp_path):
    ballast = 160 * MB
    root = _constant_root(tmp_path, ballast_bytes=ballast)
    server = sm.start(root, workers=1)
    try:
        (worker,) = _workers(server, 1)
        replies = [server.invoke(b"1\n3\n", "text/csv") for _ in range(5)]
        private = worker.memory_full_info().uss
        master = psutil.Process(server.process.pid).memory_info().rss
    finally:
        log = server.stop()
    assert all(r.text == "2.5\n2.5\n" for r in replies)
    assert master > ballast  # the master holds the model ...
    assert private < ballast / 2, (
        f"the worker holds {private / MB:.0f} MB of its own"
    )  # ... the worker shares it
    assert log.count("serving constant regression model") == 1  # loaded once
