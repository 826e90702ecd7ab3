"""``container/serve`` as a process: start-up failures, port, logging, SIGTERM, killed workers, faults."""

from __future__ import annotations

import functools
import json
import signal
import socket
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import requests
import serving_models as sm

import support

ROW = "40,1000.5,admin,cellular\n"


run_serve = sm.run_serve


def test_missing_model_stops_serve_at_once_naming_the_file(tmp_path):
    (tmp_path / "model").mkdir()
    result = run_serve(tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(tmp_path / "model" / "model.json") in lines[0]


def test_corrupt_model_stops_serve_naming_the_file_and_checksum(tmp_path):
    root = sm.copy_root("binary", tmp_path / "root")
    joblib_file = root / "model" / "model.joblib"
    data = bytearray(joblib_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    joblib_file.write_bytes(bytes(data))
    result = run_serve(root)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(joblib_file) in lines[0] and "sha256" in lines[0]


@pytest.mark.parametrize("culprit", ["model.json", "model.joblib", "."])
def test_a_model_file_the_serving_user_cannot_read_stops_serve_naming_it_and_the_fix(tmp_path, culprit):
    """model.tar.gz keeps its files' modes: another uid's 0600 file, or a directory this uid
    cannot search, is one line naming it and what to change, not a PermissionError traceback."""
    root = sm.copy_root("binary", tmp_path / "root")
    target = (root / "model" / culprit).resolve()
    line = _the_one_line_serving_without_access_to(root, target)
    assert "run the container as root" in line


def _the_one_line_serving_without_access_to(root: Path, target: Path) -> str:
    """serve of ``root`` as another uid with ``target`` (mode 0) out of its reach: it stops with
    one line, no traceback, naming ``target`` and the uid it must be readable by."""
    target.chmod(0)
    try:
        result = run_serve(root, unprivileged=True)
    finally:
        target.chmod(0o755)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"serve: cannot start: {target}: Permission denied"), lines[0]
    assert "readable by uid" in lines[0], lines[0]
    return lines[0]


def test_a_model_joblib_linking_out_of_the_model_directory_stops_serve_naming_the_link(tmp_path):
    """A model.joblib that is a symbolic link to another model's (model.json copied beside it, so
    its sha256 matched) was served as this model; serve stops with one line naming the link and the
    fix, as a multi-model load refuses it."""
    other = support.save_constant_model(tmp_path / "other", 4.0)
    model = tmp_path / "root" / "model"
    model.mkdir(parents=True)
    (model / "model.json").write_bytes((other / "model.json").read_bytes())
    (model / "model.joblib").symlink_to(other / "model.joblib")
    result = run_serve(tmp_path / "root")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    link, target = model / "model.joblib", (other / "model.joblib").resolve()
    assert lines[0].startswith(
        f"serve: cannot start: {link} is a symbolic link to {target}, outside the model directory"
    ), lines[0]
    assert "tar --dereference" in lines[0], lines[0]


def _unpack_under_a_folder(archive: Path, dest: Path, folders: dict[str, Path]) -> None:
    """``tar -czf model.tar.gz <folder>`` of each model in ``folders``, unpacked into ``dest`` as
    SageMaker unpacks model.tar.gz into /opt/ml/model."""
    with tarfile.open(archive, "w:gz") as tar:
        for arcname, model in folders.items():
            tar.add(model, arcname=arcname)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def test_a_model_tar_gz_packed_with_its_top_level_folder_serves_the_model_there(tmp_path):
    """``tar -czf model.tar.gz model`` unpacked by SageMaker into /opt/ml/model: serve finds the
    model in model/model/, says so, and answers as from the flat layout."""
    trained = sm.trained_root("binary") / "model"
    root = tmp_path / "root"
    _unpack_under_a_folder(tmp_path / "model.tar.gz", root / "model", {"model": trained})
    nested, flat = sm.start(root, workers=1), sm.start(sm.trained_root("binary"), workers=1)
    try:
        answer, expected = (
            nested.invoke(ROW, accept="application/json"),
            flat.invoke(ROW, accept="application/json"),
        )
    finally:
        output = nested.stop()
        flat.stop()
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected.json()
    assert f"model found in {root / 'model' / 'model'}, not at the top of {root / 'model'}" in output


def test_a_top_level_folder_the_serving_user_cannot_list_is_named_not_taken_for_another_programs_model(
    tmp_path,
):
    """``tar -czf model.tar.gz model`` of a 0700 folder, served as another uid: the folder holding
    model.json could not be listed, so the search passed it by in silence, and serve said the
    directory "holds model: a model your own training script saved is served by a model_fn"."""
    trained = sm.trained_root("binary") / "model"
    root = tmp_path / "root"
    _unpack_under_a_folder(tmp_path / "model.tar.gz", root / "model", {"model": trained})
    line = _the_one_line_serving_without_access_to(root, root / "model" / "model")
    assert "model_fn" not in line


def test_a_model_tar_gz_of_several_model_folders_stops_serve_naming_them(tmp_path):
    trained = sm.trained_root("binary") / "model"
    root = tmp_path / "root"
    _unpack_under_a_folder(tmp_path / "model.tar.gz", root / "model", {"a": trained, "b": trained})
    result = run_serve(root)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"no model.json at its top but 2 folders holding one ({root / 'model' / 'a'}, " in lines[0]


def test_bad_server_setting_stops_serve_naming_the_variable(tmp_path):
    result = run_serve(sm.trained_root("regression"), SAGEMAKER_INFERENCE_OUTPUT="probabilities")
    assert result.returncode != 0
    assert "SAGEMAKER_INFERENCE_OUTPUT" in result.stderr
    result = run_serve(sm.trained_root("regression"), SAGEMAKER_MODEL_SERVER_WORKERS="many")
    assert result.returncode != 0 and "SAGEMAKER_MODEL_SERVER_WORKERS" in result.stderr


def test_a_port_another_process_holds_stops_serve_before_the_model_loads_naming_the_variable():
    """A port already listened on made gunicorn retry for 5 s and end with "Can't connect to
    ('0.0.0.0', N)" after the model had loaded and its line said it served on that port: no
    ``serve: cannot start`` line, nothing naming SAGEMAKER_BIND_TO_PORT."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process, _ = support.start_serve(sm.trained_root("binary"), port=port)
        output = process.communicate(timeout=120)[0]
    assert process.returncode == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    expected = f"serve: cannot start: port {port} (SAGEMAKER_BIND_TO_PORT) is in use"
    assert lines[0].startswith(expected), lines[0]
    assert "serving decision_tree" not in output  # refused before the model loaded


SLOW_MODEL_FN = """\
import pathlib, time

def model_fn(model_dir):
    pathlib.Path(model_dir, "..", "loading").write_text("")
    time.sleep(300)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_the_model_loads_is_one_line_and_a_clean_exit(tmp_path, signum):
    """SIGTERM before gunicorn's master took the signals ended serve by the signal (rc -15) with
    no line saying why; Ctrl-C printed a KeyboardInterrupt traceback."""
    support.save_constant_model(tmp_path / "model", 1.0)
    support.write_tree(tmp_path / "model" / "code", {"inference.py": SLOW_MODEL_FN})
    process, _ = support.start_serve(tmp_path)
    try:
        support.wait_for(
            lambda: (tmp_path / "loading").exists() or process.poll() is not None, "model_fn running", 120
        )
        process.send_signal(signum)
        output = process.communicate(timeout=60)[0]
    finally:
        support.terminate(process)
    assert process.returncode == 0, (process.returncode, output)
    assert output.strip().splitlines()[-1] == (
        f"serve: stopped by {signal.Signals(signum).name} while loading the model"
    ), output
    assert "Traceback" not in output, output


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_binds_to_sagemaker_bind_to_port_loads_once_and_keeps_ping_out_of_the_log():
    port = support.free_port()
    process, _ = support.start_serve(
        sm.trained_root("binary"), port=port, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    )
    try:
        support.wait_for_ping(port, process)
        assert _listening_ports(process.pid) == {("0.0.0.0", port)}
        support.wait_for(lambda: len(psutil.Process(process.pid).children()) == 2, "two workers booting")
        session = requests.Session()
        for _ in range(3):
            assert session.get(f"http://127.0.0.1:{port}/ping").status_code == 200
        assert (
            session.post(
                f"http://127.0.0.1:{port}/invocations", data=ROW, headers={"Content-Type": "text/csv"}
            ).status_code
            == 200
        )
        session.close()  # an idle keep-alive connection must not be what the stop waits for
    finally:
        output = support.stop_process(process)
    assert process.returncode == 0
    assert output.count("serving decision_tree binary_classification model") == 1  # loaded in the master only
    assert "fast single-row path" in output  # the block path reproduced the pipeline on probe rows
    assert "POST /invocations" in output
    assert "/ping" not in output


def _log_at(level: str) -> tuple[int, str]:
    """serve's exit code and output at ``level`` after GET /ping and one CSV row."""
    port = support.free_port()
    process, _ = support.start_serve(
        sm.trained_root("binary"),
        port=port,
        env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SAGEMAKER_CONTAINER_LOG_LEVEL": level},
    )
    try:
        support.wait_for_ping(port, process)
        requests.get(f"http://127.0.0.1:{port}/ping", timeout=5)
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations", data=ROW, headers={"Content-Type": "text/csv"}, timeout=30
        )
        assert answer.status_code == 200
    finally:
        output = support.stop_process(process)
    return process.returncode, output


def test_debug_log_level_shows_ping():
    _, output = _log_at("10")
    assert "GET /ping" in output


def test_warning_log_level_keeps_info_lines_out_of_the_log():
    """README: SAGEMAKER_CONTAINER_LOG_LEVEL sets the log level. At WARNING the model load's INFO
    lines (set before the model loaded) and an access line per request (gunicorn logs them at
    INFO whatever its level) were still written."""
    returncode, output = _log_at("WARNING")
    assert returncode == 0, output
    assert " INFO " not in output and "[INFO]" not in output, output
    assert "POST /invocations" not in output, output


def test_sigterm_finishes_the_in_flight_request_and_exits_0():
    server = sm.start(sm.trained_root("binary"), workers=1)
    try:
        with sm.SlowPost(server.url, (ROW * 50).encode(), (ROW * 50).encode()) as post:
            post.sent_first.wait(30)
            worker = psutil.Process(server.process.pid).children()[0]
            support.wait_for(
                lambda: any(c.status == psutil.CONN_ESTABLISHED for c in worker.net_connections(kind="tcp")),
                "the worker accepting",
            )
            server.process.send_signal(signal.SIGTERM)
            post.finish()
            returncode = server.process.wait(timeout=25)
    finally:
        output = server.stop()
    result = post.result
    assert "error" not in result, result.get("error")
    assert result["response"].status_code == 200
    assert len(result["response"].text.splitlines()) == 100
    assert returncode == 0, output


def test_a_killed_worker_is_replaced_and_the_others_keep_serving():
    server = sm.start(sm.trained_root("binary"), workers=2)
    try:
        master = psutil.Process(server.process.pid)
        support.wait_for(lambda: len(master.children()) == 2, "two workers booting")
        before = {p.pid for p in master.children()}
        victim = sorted(before)[0]
        psutil.Process(victim).kill()
        statuses = [server.invoke(ROW, "text/csv").status_code for _ in range(20)]
        assert statuses == [200] * 20

        def replaced():
            pids = {p.pid for p in master.children() if p.status() != psutil.STATUS_ZOMBIE}
            return pids if len(pids) == 2 and victim not in pids else None

        after = support.wait_for(replaced, "a replacement worker")
        assert victim not in after and len(after - before) == 1
        assert server.invoke(ROW, "text/csv").text.strip() in ("yes", "no")
    finally:
        output = server.stop()
    assert server.process.returncode == 0, output


def test_a_real_fault_is_a_500_with_a_request_id_that_is_logged(tmp_path):
    """A model whose pipeline raises at predict time on one row: our fault, not the client's.

    (np.squeeze turns a one-row frame into a scalar the regressor refuses; the warm-up's
    several rows pass, so the server starts.)"""
    root = sm.broken_root(tmp_path / "root", np.squeeze)
    server = sm.start(root, workers=1)
    try:
        response = server.invoke("1.5\n", "text/csv")
        assert server.invoke("abc\n", "text/csv").status_code == 400  # still a client error first
    finally:
        output = server.stop()
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    request_id = response.headers["X-Request-Id"]
    assert body["request_id"] == request_id and request_id in body["message"]
    assert "Traceback" not in response.text and "squeeze" not in response.text
    assert f"request {request_id} failed" in output
    assert "Traceback" in output  # the log has the details the client does not


def test_a_fault_on_a_large_bodys_first_slice_is_a_500_the_client_reads(tmp_path):
    """A CSV batch is predicted slice by slice as it is read: a model that fails on the first
    slice answered 500 with megabytes of the body unread, and gunicorn closed the connection on
    them, so the client still sending met a reset instead of the answer.  The rest of the body
    is read (as after a client's mistake) and the 500 reaches the client on a connection it can
    go on using."""
    root = sm.broken_root(tmp_path / "root", functools.partial(np.vsplit, indices_or_sections=4))
    # 5 MB (the limit is 6): a first slice of 4 MiB holds 1,048,575 rows, which np.vsplit refuses
    body = b"2.25\n" + b"1.5\n" * 1_250_000
    head = (
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    server = sm.start(root, workers=1)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            errors: list[BaseException] = []

            def send() -> None:
                try:
                    sock.sendall(head + body)
                except OSError as exc:  # a reset while sending: the answer is lost
                    errors.append(exc)

            sender = threading.Thread(target=send)
            sender.start()
            status, answer = _read_response(sock)
            sender.join(60)
            assert not errors, errors
            assert status == 500, answer[:300]
            assert json.loads(answer)["error"] == "internal_error"
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")  # the same connection goes on
            assert _read_response(sock)[0] == 200
    finally:
        output = server.stop()
    assert "Traceback" in output


def test_a_model_that_cannot_predict_fails_the_start_with_the_cause(tmp_path):
    result = run_serve(sm.broken_root(tmp_path / "root", np.linalg.cholesky))  # every frame: LinAlgError
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("serve: cannot start: the model loads but cannot predict (LinAlgError"), last


def _read_response(sock, timeout: float = 60) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length from a raw socket: (status, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside the response body"
        body += chunk
    return int(lines[0].split()[1]), body


def test_sigterm_exits_once_in_flight_requests_are_done_whatever_idle_keep_alive_connections_remain():
    """An idle keep-alive connection (a client's pooled session) must not hold a stopping server:
    with a 120 s grace period, ``serve`` exits long before it, once the request in flight on a
    second connection is answered, while the idle connection is still open."""
    server = sm.start(sm.trained_root("binary"), workers=2, env={"BYOC_GRACEFUL_TIMEOUT": "120"})
    address = ("127.0.0.1", server.port)
    body = ROW.encode() * 20
    with socket.create_connection(address) as idle, socket.create_connection(address) as busy:
        try:
            idle.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(idle)[0] == 200  # now idle, kept alive by the server
            busy.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body[:50]
            )
            time.sleep(1.0)  # the request is in a worker, reading its body
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            busy.sendall(body[50:])
            status, answer = _read_response(busy)
            returncode = server.process.wait(timeout=60)  # idle is still open: it must not count
        finally:
            output = server.stop()
    assert status == 200 and len(answer.decode().splitlines()) == 20, answer[:300]
    assert returncode == 0, output
    assert "cut" not in output, output


def test_sigterm_that_reaches_a_worker_while_it_boots_still_stops_it():
    """The stop the master passes on to a worker that is still booting (here the replacement of a
    killed worker, signalled the moment it is forked) is not lost: ``serve`` exits long before
    the 120 s grace period, with an idle keep-alive connection open on the other worker."""
    server = sm.start(sm.trained_root("binary"), workers=2, env={"BYOC_GRACEFUL_TIMEOUT": "120"})
    master = psutil.Process(server.process.pid)
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        try:
            idle.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(idle)[0] == 200
            support.wait_for(lambda: len(master.children()) == 2, "two workers booting")
            before = {p.pid for p in master.children()}
            psutil.Process(min(before)).kill()
            support.wait_for(
                lambda: {p.pid for p in master.children()} - before, "a replacement worker", timeout=30
            )
            server.process.send_signal(signal.SIGTERM)  # the replacement is still booting
            returncode = server.process.wait(timeout=60)
        finally:
            output = server.stop()
    assert returncode == 0, output
    assert output.count("Worker exiting") >= 2, output  # both live workers left on the stop


def test_sigterm_stops_workers_that_hold_onnxruntime_promptly_none_killed_by_a_signal():
    """The forked workers of a model compiled to onnxruntime (gradient boosting) leave without the
    master's C++ exit handlers: onnxruntime's, waiting for a thread only the master has, aborted
    one worker (std::system_error, SIGABRT) and hung another until the grace period ended."""
    grace = 120
    server = sm.start(sm.trained_root("multiclass"), workers=2, env={"BYOC_GRACEFUL_TIMEOUT": str(grace)})
    try:
        workers = psutil.Process(server.process.pid).children()
        assert any("onnxruntime" in m.path for m in workers[0].memory_maps()), (
            "the premise: onnxruntime loaded"
        )
        assert server.invoke("5.1,3.5,1.4,0.2\n", accept="text/csv").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        returncode = server.process.wait(timeout=grace / 4)  # a hung worker holds it for the whole grace
    finally:
        output = server.stop()
    assert returncode == 0, output
    assert "terminate called" not in output and "was sent" not in output, output
    assert output.count("Worker exiting") == 2, output


STUCK_PREDICT_FN = """\
import pathlib, time

def predict_fn(input_data, model, context):
    if float(input_data.iloc[0, 0]) == 1:
        pathlib.Path(context.system_properties["model_dir"], "..", "stuck").write_text("")
        while True:  # a predict that never returns
            time.sleep(0.01)
    return model.predict(input_data)
"""


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["gthread", "sync"])
def test_a_request_past_the_model_server_timeout_is_a_504_naming_it_and_the_worker_comes_back(
    tmp_path, worker_class
):
    """README "Settings": SAGEMAKER_MODEL_SERVER_TIMEOUT is the request timeout.  A gthread worker's
    main thread kept reporting to the master, so a predict that never returned held its thread for
    good (two held the only worker: every request then waited, /ping still 200); a sync worker was
    aborted by the master, and its client got a 500 ``hook_exited`` blaming the hook's sys.exit."""
    support.save_constant_model(tmp_path / "model", 2.5)
    support.write_tree(tmp_path / "model" / "code", {"inference.py": STUCK_PREDICT_FN})
    server = sm.start(
        tmp_path,
        workers=1,
        env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "3", "BYOC_WORKER_CLASS": worker_class},
    )
    try:
        stuck = server.invoke("1\n", "text/csv", timeout=120)
        after = support.wait_for(
            lambda: _answered(server, "0\n"), "an answer from the replacement worker", 60
        )
    finally:
        output = server.stop()
    assert stuck.status_code == 504, (stuck.status_code, stuck.text, output)
    body = stuck.json()
    assert body["error"] == "model_server_timeout", body
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT (3 s)" in body["message"], body
    assert f"request {body['request_id']} (POST /invocations" in output, output
    assert "hook_exited" not in output, output
    assert after.text == "2.5\n"


@pytest.mark.slow
def test_a_request_queued_behind_a_timed_out_one_is_answered_not_dropped(tmp_path):
    """A request waiting for the thread a stuck predict held waited for the replaced worker's whole
    grace period (BYOC_GRACEFUL_TIMEOUT, 30 s) and was then closed unanswered."""
    support.save_constant_model(tmp_path / "model", 2.5)
    support.write_tree(tmp_path / "model" / "code", {"inference.py": STUCK_PREDICT_FN})
    server = sm.start(
        tmp_path, workers=1, env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "3", "BYOC_WORKER_THREADS": "1"}
    )
    answers: dict[str, Any] = {}

    def stuck() -> None:
        answers["stuck"] = server.invoke("1\n", "text/csv", timeout=120)

    thread = threading.Thread(target=stuck)
    try:
        thread.start()
        support.wait_for(lambda: (tmp_path / "stuck").exists(), "the stuck predict starting", 60)
        try:
            queued = requests.post(
                f"{server.url}/invocations", data="0\n", headers={"Content-Type": "text/csv"}, timeout=120
            )
        except requests.RequestException as exc:
            queued = exc
        thread.join(120)
    finally:
        output = server.stop()
    assert answers["stuck"].status_code == 504, output
    assert isinstance(queued, requests.Response), (queued, output)
    assert (queued.status_code, queued.text) == (200, "2.5\n"), output


def _answered(server: sm.Server, body: str) -> requests.Response | None:
    """``server``'s 200 answer to ``body``, None while no worker answers it."""
    try:
        response = requests.post(
            f"{server.url}/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=5
        )
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None


@pytest.mark.slow
def test_a_worker_whose_loop_fails_is_replaced_at_once_not_after_the_timeout():
    """A gthread worker whose main loop raised (here accept() out of file descriptors: idle
    connections past its limit) exited through a join of its thread pool's idle threads, which
    waited for work for good: the worker served nothing, /ping included, until the master's
    timeout killed it (SAGEMAKER_MODEL_SERVER_TIMEOUT: up to an hour for asynchronous endpoints)."""
    server = sm.start(sm.trained_root("binary"), workers=1, env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600"})
    idle: list[socket.socket] = []
    try:
        assert server.invoke(ROW, "text/csv").status_code == 200  # the worker's threads have started
        (worker,) = psutil.Process(server.process.pid).children()
        worker.rlimit(psutil.RLIMIT_NOFILE, (worker.num_fds() + 8, worker.rlimit(psutil.RLIMIT_NOFILE)[1]))
        for _ in range(32):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        support.wait_for(lambda: not worker.is_running(), "the worker out of descriptors leaving", 60)
        for sock in idle:
            sock.close()
        support.wait_for(lambda: support.answers(f"{server.url}/ping"), "a replacement worker answering", 60)
        answer = server.invoke(ROW, "text/csv")
    finally:
        for sock in idle:
            sock.close()
        output = server.stop()
    assert answer.status_code == 200, answer.text
    assert "Too many open files" in output and "the master starts another" in output, output


HELD_PREDICT_FN = """\
import pathlib, time

def predict_fn(input_data, model, context):
    folder = pathlib.Path(context.system_properties["model_dir"], "..")
    (folder / "started").write_text("")
    while not (folder / "release").exists():  # held until the test lets it go
        time.sleep(0.05)
    return model.predict(input_data)
"""


def test_after_sigterm_new_connections_are_refused_while_in_flight_requests_finish(tmp_path):
    """SIGTERM: a stopping gthread worker stopped accepting but kept its listening socket open until
    it left, so the kernel went on queueing new connections, each of which waited out the in-flight
    requests (up to the 30 s grace period) to be reset unanswered."""
    support.save_constant_model(tmp_path / "model", 2.5)
    support.write_tree(tmp_path / "model" / "code", {"inference.py": HELD_PREDICT_FN})
    server = sm.start(tmp_path, workers=2)
    answers: dict[str, Any] = {}

    def held() -> None:
        answers["held"] = requests.post(
            f"{server.url}/invocations", data="0\n", headers={"Content-Type": "text/csv"}, timeout=120
        )

    thread = threading.Thread(target=held)
    try:
        thread.start()
        support.wait_for(lambda: (tmp_path / "started").exists(), "the held predict starting", 60)
        server.process.send_signal(signal.SIGTERM)
        support.wait_for(lambda: not support.listens_on(server.process, server.port), "the port closing", 20)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=10).close()
        (tmp_path / "release").write_text("")
        thread.join(120)
        returncode = server.process.wait(timeout=60)
    finally:
        (tmp_path / "release").write_text("")
        output = server.stop()
    assert answers["held"].status_code == 200 and answers["held"].text == "2.5\n", output
    assert returncode == 0, output
