"""A multi-model endpoint on the real server (``container/serve`` with SAGEMAKER_MULTI_MODEL=true,
gunicorn, real sockets), driven through SageMaker's container API with models trained by the
real ``container/train``.

/models/<name>/invoke must answer exactly as /invocations of a single-model server on the same
model: the test sends every request to both and compares status, headers and body.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import serving_models as sm

import support

KINDS = ("binary", "multiclass", "regression")
CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"


def model_url(kind: str) -> str:
    return str(sm.trained_root(kind) / "model")


def start_mme(workers: int = 2, **env: str) -> sm.Server:
    return sm.start(
        Path("/nonexistent-ml-root"), workers=workers, env={"SAGEMAKER_MULTI_MODEL": "true", **env}
    )


@pytest.fixture(scope="module")
def mme():
    server = start_mme()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def singles():
    servers = {kind: sm.start(sm.trained_root(kind), workers=1) for kind in KINDS}
    yield servers
    for server in servers.values():
        server.stop()


def load(server: sm.Server, name: str, url: str) -> requests.Response:
    return server.session.post(f"{server.url}/models", json={"model_name": name, "url": url}, timeout=60)


def invoke(
    server: sm.Server, name: str, body, content_type="text/csv", accept=None, attributes=None, timeout=60
):
    headers = {"X-Amzn-SageMaker-Target-Model": f"{name}.tar.gz"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    if attributes is not None:
        headers[CUSTOM] = attributes
    return server.session.post(
        f"{server.url}/models/{name}/invoke", data=body, headers=headers, timeout=timeout
    )


def assert_error(response: requests.Response, status: int, code: str, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    for fragment in fragments:
        assert fragment in body["message"], body
    assert "Traceback" not in body["message"]
    return body


def ensure_loaded(server: sm.Server, name: str, url: str) -> None:
    response = load(server, name, url)
    assert response.status_code in (200, 409), response.text


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def parquet(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def requests_for(kind: str) -> list[tuple[str, bytes | str, str | None, str | None, str | None]]:
    """(label, body, content type, accept, custom attributes): every decoder and encoder, the
    output-field attribute, and client mistakes."""
    rows = sm.features(kind).iloc[:12]
    records = json.loads(rows.to_json(orient="records"))
    values = json.loads(rows.to_json(orient="values"))
    cases = [
        ("csv", rows.to_csv(index=False, header=False), "text/csv", None, None),
        ("csv header", rows.to_csv(index=False), "text/csv; charset=utf-8", "application/json", None),
        ("json instances", json.dumps({"instances": records}), "application/json", "application/json", None),
        ("json rows", json.dumps(values), "application/json", "text/csv", None),
        ("json no content type", json.dumps({"instances": records}), None, None, None),
        (
            "jsonlines",
            "\n".join(json.dumps(r) for r in records) + "\n",
            "application/jsonlines",
            "application/jsonlines",
            None,
        ),
        ("parquet", parquet(rows), "application/x-parquet", "application/x-npy", None),
        ("accept list", rows.to_csv(index=False, header=False), "text/csv", "image/png, */*;q=0.1", None),
        ("empty body", "", "text/csv", None, None),
        ("ragged csv", "1,2\n", "text/csv", None, None),
        ("unsupported content type", "x", "image/png", None, None),
        ("unsupported accept", rows.to_csv(index=False, header=False), "text/csv", "image/png", None),
        ("bad json", "{", "application/json", None, None),
        ("unknown field", rows.to_csv(index=False, header=False), "text/csv", None, "output=nonsense"),
    ]
    if kind != "binary":  # numbers only: npy
        cases.append(
            ("npy", npy(rows.to_numpy(dtype=np.float64)), "application/x-npy", "application/json", None)
        )
    if kind == "regression":
        cases.append(("probability of a regressor", "1,2\n", "text/csv", None, "output=probability"))
    else:
        cases.append(
            (
                "every field",
                json.dumps({"instances": records}),
                "application/json",
                "application/json",
                "output=predicted_label,probability,probabilities,labels",
            )
        )
        cases.append(
            (
                "fields as csv",
                rows.to_csv(index=False, header=False),
                "text/csv",
                "text/csv",
                "output=probability",
            )
        )
    return cases


def comparable(response: requests.Response) -> tuple:
    content_type = response.headers.get("Content-Type")
    if content_type and content_type.startswith("application/json") and response.status_code != 200:
        document = response.json()
        document.pop("request_id", None)
        body: object = document
    else:
        body = response.content
    return response.status_code, content_type, response.headers.get(CUSTOM), body


@pytest.mark.parametrize("kind", KINDS)
def test_invoke_answers_exactly_as_invocations(mme, singles, kind):
    ensure_loaded(mme, kind, model_url(kind))
    statuses = set()
    for label, body, content_type, accept, attributes in requests_for(kind):
        single = singles[kind].invoke(body, content_type, accept, attributes)
        multi = invoke(mme, kind, body, content_type, accept, attributes)
        assert comparable(multi) == comparable(single), label
        assert multi.status_code < 500, (label, multi.text)
        statuses.add(multi.status_code)
    assert {200, 400, 406, 415} <= statuses  # the cases reach both answers and errors


def test_load_describe_list_unload_reload(mme):
    url = model_url("binary")
    response = load(mme, "lifecycle", url)
    assert response.status_code == 200, response.text
    described = mme.get("/models/lifecycle")
    assert described.status_code == 200
    assert described.json() == {"modelName": "lifecycle", "modelUrl": url}
    assert {"modelName": "lifecycle", "modelUrl": url} in mme.get("/models?limit=1000").json()["models"]
    assert_error(load(mme, "lifecycle", url), 409, "model_already_loaded", "lifecycle")
    rows = sm.features("binary").iloc[:5].to_csv(index=False, header=False)
    first = invoke(mme, "lifecycle", rows)
    assert first.status_code == 200
    # Every worker answers the same: some of these land on a worker that loads it on first use.
    assert all(invoke(mme, "lifecycle", rows).content == first.content for _ in range(8))

    unloaded = mme.session.delete(f"{mme.url}/models/lifecycle", timeout=10)
    assert unloaded.status_code == 200, unloaded.text
    for _ in range(6):  # on every worker, including those that held a copy
        assert_error(invoke(mme, "lifecycle", rows), 404, "model_not_loaded", "lifecycle")
    assert_error(mme.get("/models/lifecycle"), 404, "model_not_loaded")
    assert_error(mme.session.delete(f"{mme.url}/models/lifecycle", timeout=10), 404, "model_not_loaded")
    assert "lifecycle" not in [m["modelName"] for m in mme.get("/models?limit=1000").json()["models"]]

    # Reloaded under the same name from another model: no worker may answer with its old copy.
    assert load(mme, "lifecycle", model_url("regression")).status_code == 200
    regression_rows = sm.features("regression").iloc[:5].to_csv(index=False, header=False)
    want = invoke(mme, "lifecycle", regression_rows).content
    assert want != first.content
    assert all(invoke(mme, "lifecycle", regression_rows).content == want for _ in range(8))
    assert mme.session.delete(f"{mme.url}/models/lifecycle", timeout=10).status_code == 200


def test_list_is_paginated(mme, tmp_path):
    names = [f"page-{i:02d}" for i in range(7)]
    for name in names:
        assert load(mme, name, str(support.save_constant_model(tmp_path / name, 1.0))).status_code == 200
    seen, token, pages = [], None, 0
    while True:
        path = "/models?limit=3" + (f"&next_page_token={token}" if token else "")
        document = mme.get(path).json()
        assert len(document["models"]) <= 3
        seen += [m["modelName"] for m in document["models"]]
        pages += 1
        token = document.get("nextPageToken")
        if token is None:
            break
    assert [n for n in seen if n.startswith("page-")] == names
    assert len(seen) == len(set(seen)) and pages >= 3
    assert_error(mme.get("/models?limit=0"), 400, "bad_limit")
    for odd in ("1_0", "%2B5", "%EF%BC%95"):  # int() read 1_0, +5 and a full-width 5 as 10, 5 and 5
        assert_error(mme.get(f"/models?limit={odd}"), 400, "bad_limit")
    assert_error(mme.get("/models?next_page_token=%25%25"), 400, "bad_page_token")
    for name in names:
        assert mme.session.delete(f"{mme.url}/models/{name}", timeout=10).status_code == 200


def test_load_errors_name_the_problem(mme, tmp_path):
    assert_error(load(mme, "nowhere", str(tmp_path / "nowhere")), 404, "model_not_found", "nowhere")
    (tmp_path / "empty").mkdir()
    assert_error(load(mme, "empty", str(tmp_path / "empty")), 404, "model_not_found")

    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_url("binary"), corrupt)
    data = bytearray((corrupt / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "model.joblib").write_bytes(bytes(data))
    assert_error(load(mme, "corrupt", str(corrupt)), 400, "bad_model", "model.joblib", "sha256")

    incompatible = tmp_path / "incompatible"
    shutil.copytree(model_url("binary"), incompatible)
    document = json.loads((incompatible / "model.json").read_text())
    document["format_version"] = 99
    (incompatible / "model.json").write_text(json.dumps(document))
    assert_error(
        load(mme, "incompatible", str(incompatible)), 400, "bad_model", "model.json", "format_version"
    )

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.pth").write_bytes(b"\x80\x02weights")
    assert_error(load(mme, "foreign", str(foreign)), 400, "bad_model", "model.json")

    for name in ("nowhere", "empty", "corrupt", "incompatible", "foreign"):
        assert_error(mme.get(f"/models/{name}"), 404, "model_not_loaded")
    bad = mme.session.post(f"{mme.url}/models", data="not json", timeout=10)
    assert_error(bad, 400, "bad_load_request", "model_name")
    deep = mme.session.post(f"{mme.url}/models", data="[" * 60_000, timeout=10)  # was a 500 (RecursionError)
    assert_error(deep, 400, "bad_load_request", "model_name")
    # json keeps the last of a repeated key: this loaded model 'second', as if the first were not there
    url = json.dumps(model_url("binary"))
    twice = f'{{"model_name": "first", "model_name": "second", "url": {url}}}'
    assert_error(
        mme.session.post(f"{mme.url}/models", data=twice, timeout=10),
        400,
        "bad_load_request",
        "'model_name' twice",
    )
    for name in ("first", "second"):
        assert_error(mme.get(f"/models/{name}"), 404, "model_not_loaded")
    assert_error(load(mme, "", model_url("binary")), 400, "bad_model_name")
    for unreachable in ("..", "a/./b"):  # loaded, they answered 200 and could never be invoked
        assert_error(load(mme, unreachable, model_url("binary")), 400, "bad_model_name", "path segment")
    # JSON's "\ud800" escape is a lone surrogate no UTF-8 encodes: the client's name, not a 500
    assert_error(
        load(mme, "m-\ud800", model_url("binary")), 400, "bad_model_name", "'\\ud800' at character 3"
    )
    assert_error(load(mme, "s3", "s3://bucket/model.tar.gz"), 400, "bad_url")
    assert_error(invoke(mme, "never-loaded", "1\n"), 404, "model_not_loaded", "never-loaded")
    assert_error(
        mme.session.post(f"{mme.url}/invocations", data="1\n", timeout=10), 404, "multi_model_endpoint"
    )


def test_a_load_body_past_64_kb_is_a_413_naming_the_limit_and_drained(mme, tmp_path):
    """POST /models read its body whole into the worker's memory, of any size, before looking at
    the JSON: a load padded with a megabyte of spaces was a 200, and a chunked body without end
    grew the worker until memory ran out.  A load takes 64 KB; past that it is a 413, the rest of
    the body read off the connection as /invocations does, so the client gets that answer."""
    path = str(support.save_constant_model(tmp_path / "m", 1.0))
    document = json.dumps({"model_name": "padded", "url": path})
    limit = 64 * 1024
    url = f"{mme.url}/models"
    for padded in (document + " " * (1 << 20), document + " " * (limit - len(document) + 1)):
        response = mme.session.post(url, data=padded, timeout=30)
        assert_error(response, 413, "payload_too_large", "64 KB (65,536 bytes)", "POST /models")
        assert_error(mme.session.get(f"{url}/padded", timeout=10), 404, "model_not_loaded")
    chunked = (block for block in [document.encode()] + [b" " * 4096] * 512)  # 2 MB, no Content-Length
    assert_error(mme.session.post(url, data=chunked, timeout=30), 413, "payload_too_large", "64 KB")
    fits = document + " " * (limit - len(document))
    assert mme.session.post(url, data=fits, timeout=30).status_code == 200
    assert mme.get("/models/padded").json()["modelUrl"] == path
    assert mme.session.delete(f"{url}/padded", timeout=10).status_code == 200


def test_names_no_request_can_reach_are_refused_and_the_longest_that_can_serve(mme):
    """A name starting with '/' loaded (200), and its invoke, describe and unload URLs
    (/models//a/...) were redirected to /models/a/...: another model answered for it, and a DELETE
    unloaded that other model.  A name whose URL takes more than gunicorn's 4 KB request line
    (1,024 characters of two or more UTF-8 bytes, percent-encoded) loaded too, and then every
    call naming it was a 414: never invoked, never unloaded, a 409 for every later load."""
    url = model_url("regression")
    ensure_loaded(mme, "lead", url)
    for name in ("/lead", "//lead"):
        assert_error(load(mme, name, url), 400, "bad_model_name", "'/'")
    for name in ("\u00e9" * 1024, "\U0001f600" * 400):
        assert_error(load(mme, name, url), 400, "bad_model_name", "request line")
    assert mme.get("/models/lead").status_code == 200  # still loaded, as it was
    rows = sm.features("regression").iloc[:2].to_csv(index=False, header=False)
    for name in ("a" * 1024, "%" * 1024, "\u00e9" * 670):  # the longest each spelling may be: reachable
        assert load(mme, name, url).status_code == 200, name
        quoted = urllib.parse.quote(name, safe="")
        assert invoke(mme, quoted, rows).status_code == 200, name
        assert mme.session.delete(f"{mme.url}/models/{quoted}", timeout=10).status_code == 200, name


def test_a_model_under_a_top_level_folder_loads_as_serve_finds_it(mme, tmp_path):
    """SageMaker unpacks ``tar -czf model.tar.gz model`` to <url>/model/: the same rule as serve's,
    also when the url is a symbolic link; a folder in it that is a link leading out is refused."""
    shutil.copytree(model_url("regression"), tmp_path / "unpacked" / "model")
    assert load(mme, "nested", str(tmp_path / "unpacked")).status_code == 200
    try:
        answer = invoke(mme, "nested", "0.1,0.05,0.06,0.02,-0.04,-0.03,-0.04,0.0,0.02,-0.01\n")
        assert answer.status_code == 200, answer.text
        assert float(answer.text)
    finally:
        mme.session.delete(f"{mme.url}/models/nested", timeout=10)
    (tmp_path / "url").symlink_to(tmp_path / "unpacked")
    assert load(mme, "linked", str(tmp_path / "url")).status_code == 200
    mme.session.delete(f"{mme.url}/models/linked", timeout=10)
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "model").symlink_to(model_url("regression"))
    link = tmp_path / "linked" / "model"
    assert_error(
        load(mme, "linked", str(tmp_path / "linked")), 400, "bad_model", f"{link} is a symbolic link"
    )
    shutil.copytree(model_url("regression"), tmp_path / "unpacked" / "second")
    body = assert_error(load(mme, "two", str(tmp_path / "unpacked")), 400, "bad_model", "2 folders")
    assert str(tmp_path / "unpacked" / "second") in body["message"], body


def test_a_link_out_of_the_model_directory_is_refused_naming_it_and_none_is_followed(mme, tmp_path):
    """A load's size estimate followed symbolic links: a model holding a link to a large tree (or a
    url of file:///proc/self, whose ``root`` is ``/``: 680,000 files, 26 s) was walked whole, file
    by file, before the load was refused or started, and loaded then.  No link is followed now; one
    leading out of the model directory is a 400 naming it (the loader reads through links: here a
    folder, and a model.joblib read from another model's directory), and links within it load."""
    model = support.save_constant_model(tmp_path / "model", 3.0)
    tree = tmp_path / "tree"
    for i in range(100):  # 10,000 files
        (tree / f"d{i:02d}").mkdir(parents=True)
        for j in range(100):
            (tree / f"d{i:02d}" / f"f{j:02d}.bin").write_bytes(b"x")
    (model / "data").symlink_to(tree)
    body = assert_error(load(mme, "escape", str(model)), 400, "bad_model", "outside the model directory")
    assert f"{model / 'data'} is a symbolic link to {tree.resolve()}," in body["message"], body
    (model / "data").unlink()

    other = support.save_constant_model(tmp_path / "other", 4.0)
    borrower = tmp_path / "borrower"
    borrower.mkdir()
    shutil.copy(other / "model.json", borrower / "model.json")
    (borrower / "model.joblib").symlink_to(other / "model.joblib")  # was a 200 answering other's 4.0
    body = assert_error(load(mme, "borrower", str(borrower)), 400, "bad_model", "outside the model directory")
    assert (
        f"{borrower / 'model.joblib'} is a symbolic link to {(other / 'model.joblib').resolve()},"
        in body["message"]
    )
    for name in ("escape", "borrower"):
        assert_error(mme.get(f"/models/{name}"), 404, "model_not_loaded")

    (model / "loop").symlink_to(model)
    (model / "spare.json").symlink_to("model.json")
    assert load(mme, "within", str(model)).status_code == 200
    try:
        answer = invoke(mme, "within", "1\n")
        assert answer.status_code == 200 and float(answer.text) == 3.0, answer.text
    finally:
        mme.session.delete(f"{mme.url}/models/within", timeout=10)


def test_a_model_that_cannot_predict_is_refused_as_serve_refuses_it(mme, tmp_path):
    """The single-model server does not start with such a model; loading it is a 400 naming the
    cause, not a 200 followed by a 500 on every invoke."""
    broken = sm.broken_root(tmp_path / "root", np.linalg.cholesky) / "model"  # every frame: LinAlgError
    body = assert_error(load(mme, "cannot-predict", str(broken)), 400, "bad_model", "cannot-predict")
    assert "the model loads but cannot predict (LinAlgError" in body["message"], body
    assert_error(mme.get("/models/cannot-predict"), 404, "model_not_loaded")
    assert_error(invoke(mme, "cannot-predict", "1.0\n"), 404, "model_not_loaded")


def test_507_only_when_one_model_alone_does_not_fit(tmp_path):
    server = start_mme(workers=1, BYOC_MULTI_MODEL_MEMORY_MB="8")
    try:
        small = [support.save_constant_model(tmp_path / f"s{i}", i, ballast_bytes=2 << 20) for i in range(6)]
        for i, path in enumerate(small):  # 6 x ~3.3 MiB > 8 MiB: older ones are evicted, none refused
            assert load(server, f"s{i}", str(path)).status_code == 200
        big = support.save_constant_model(tmp_path / "big", 99, ballast_bytes=8 << 20)
        assert_error(load(server, "big", str(big)), 507, "insufficient_memory", "BYOC_MULTI_MODEL_MEMORY_MB")
        for i in range(6):  # evicted models are still loaded: read again on demand
            response = invoke(server, f"s{i}", "1\n")
            assert response.status_code == 200 and float(response.text) == i
    finally:
        output = server.stop()
    assert "evicted model 's0'" in output
    assert "to make room for" in output


def test_a_client_whose_body_stalls_holds_up_no_other_invocation(tmp_path):
    """A worker answers one invocation at a time (its model code is not asked to be thread-safe),
    and the body was read under that turn: a client that sent 20 KB of a 200 KB body and then
    nothing held every other invocation of the worker, of every model, for as long as it stalled
    (a minute, the socket's timeout).  The body now arrives before the turn is taken, as on a
    single-model endpoint, where such a client holds one thread and no other request."""
    server = start_mme(workers=1)
    stalled = None
    try:
        for name, value in (("waits", 1.0), ("other", 2.0)):
            path = support.save_constant_model(tmp_path / name, value)
            assert load(server, name, str(path)).status_code == 200
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        stalled.sendall(
            b"POST /models/waits/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: 200000\r\n\r\n" + b"1\n" * 10_000
        )
        time.sleep(1)  # the worker hands it to a thread (16 KiB in), which waits for the rest
        for name, value in (("other", 2.0), ("waits", 1.0)):
            try:
                response = invoke(server, name, "1\n", timeout=20)
            except requests.Timeout:
                raise AssertionError(f"invoking {name!r} waited for the stalled body") from None
            assert response.status_code == 200 and float(response.text) == value, response.text
    finally:
        if stalled is not None:
            stalled.close()
        server.stop()


def test_ping_answers_while_a_model_loads(tmp_path):
    server = start_mme(workers=1)
    try:
        big = support.save_constant_model(tmp_path / "big", 7, ballast_bytes=400 << 20)
        done = threading.Event()
        result: list[requests.Response] = []

        def slow_load() -> None:
            result.append(load(server, "big", str(big)))
            done.set()

        loader = threading.Thread(target=slow_load)
        loader.start()
        pings_during_load = 0
        while not done.is_set():
            ping = requests.get(f"{server.url}/ping", timeout=2)
            assert ping.status_code == 200
            if not done.is_set():
                pings_during_load += 1
            time.sleep(0.02)
        loader.join()
        assert result[0].status_code == 200, result[0].text
        assert pings_during_load >= 1
    finally:
        server.stop()


SLOW_LOAD = """
import json
import os
import time


def model_fn(model_dir):
    time.sleep(4)
    return "slow"


def transform_fn(model, request_body, content_type, accept):
    if request_body.strip() == "hang":
        time.sleep(30)
    return json.dumps([model, os.getpid()]), "application/json"
"""


def test_a_load_on_a_workers_first_invocation_is_not_cut_by_the_invocation_timeout(tmp_path):
    """A model whose load takes longer than SAGEMAKER_MODEL_SERVER_TIMEOUT loads (POST /models is
    not bound by it), but the worker that had not loaded it loaded it inside its first invocation,
    whose clock ran from the start: a 504 naming the setting, and that worker (with every model it
    held) replaced, on every invocation that reached a worker without a copy.  The timeout bounds
    the invocation from the moment its model is loaded, as it still does for a predict that hangs."""
    code = tmp_path / "slow" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(SLOW_LOAD)
    server = start_mme(workers=2, SAGEMAKER_MODEL_SERVER_TIMEOUT="2")
    try:
        assert load(server, "slow", str(tmp_path / "slow")).status_code == 200
        assert answers_of_every_worker(server, "slow") == ["slow"]
        hung = invoke(server, "slow", "hang\n", accept="application/json")
        assert_error(hung, 504, "model_server_timeout", "SAGEMAKER_MODEL_SERVER_TIMEOUT (2 s)")
    finally:
        output = server.stop()
    assert output.count("timed out: SAGEMAKER_MODEL_SERVER_TIMEOUT") == 1, output


HELD = """
import json
import os
import time
from pathlib import Path


def model_fn(model_dir):
    return Path(model_dir)


def transform_fn(model, request_body, content_type, accept):
    if request_body.strip() == "hold":  # until the test lets go, well past the timeout
        (model / "started").touch()
        deadline = time.monotonic() + 120
        while not (model / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return json.dumps([model.name, os.getpid()]), "application/json"
"""


def test_waiting_for_the_workers_turn_behind_another_models_predict_is_not_timed(tmp_path):
    """A worker predicts for one model at a time: an invocation of a second model waited for the
    turn behind the first one's long predict, and that wait counted toward its own
    SAGEMAKER_MODEL_SERVER_TIMEOUT, so it was answered 504 ("send fewer records") though its own
    predict took nothing.  As in single-model serving, whose clock starts once a request has left
    the queue, its clock runs once it has the turn; the long predict itself is still a 504."""
    folders = {}
    for name in ("held", "quick"):
        folders[name] = tmp_path / name
        (folders[name] / "code").mkdir(parents=True)
        (folders[name] / "code" / "inference.py").write_text(HELD)
    server = start_mme(workers=1, SAGEMAKER_MODEL_SERVER_TIMEOUT="2")
    try:
        for name, folder in folders.items():
            assert load(server, name, str(folder)).status_code == 200
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(invoke, server, "held", "hold\n", accept="application/json", timeout=120)
            support.wait_for(lambda: (folders["held"] / "started").exists(), "the held predict", timeout=60)
            quick = pool.submit(invoke, server, "quick", "1\n", accept="application/json", timeout=120)
            assert_error(held.result(), 504, "model_server_timeout", "SAGEMAKER_MODEL_SERVER_TIMEOUT (2 s)")
            # the quick invocation has been waiting for its turn meanwhile: past its own timeout once
            # this is over (it was a 504 then), answered once the held predict returns
            with contextlib.suppress(TimeoutError):
                quick.result(timeout=4)
            (folders["held"] / "release").touch()
            answered = quick.result()
        assert answered.status_code == 200, answered.text
        assert answered.json()[0] == "quick"
    finally:
        (folders["held"] / "release").touch()
        output = server.stop()
    assert output.count("timed out: SAGEMAKER_MODEL_SERVER_TIMEOUT") == 1, output


HOOKS = """
import json
import os


def model_fn(model_dir):
    value = open(os.path.join(model_dir, "value.txt")).read()
    if value == "broken":
        raise RuntimeError("value.txt says broken")
    return float(value)


def transform_fn(model, request_body, content_type, accept):
    rows = [line for line in request_body.splitlines() if line.strip()]
    return json.dumps({"model": model, "rows": len(rows)}), "application/json"
"""


def hooks_model(directory: Path, value: str) -> Path:
    (directory / "code").mkdir(parents=True)
    (directory / "code" / "inference.py").write_text(HOOKS)
    (directory / "value.txt").write_text(value)
    return directory


def test_models_with_inference_hooks_beside_byoc_models(mme, tmp_path):
    for name, value in (("hooks-a", "1.5"), ("hooks-b", "2.5")):
        response = load(mme, name, str(hooks_model(tmp_path / name, value)))
        assert response.status_code == 200, response.text
    ensure_loaded(mme, "regression", model_url("regression"))
    for _ in range(4):  # both workers, each with both programs (both named inference.py)
        for name, value in (("hooks-a", 1.5), ("hooks-b", 2.5)):
            response = invoke(mme, name, "1\n2\n3\n", accept="application/json")
            assert response.status_code == 200, response.text
            assert response.json() == {"model": value, "rows": 3}
        byoc = invoke(mme, "regression", sm.features("regression").iloc[:2].to_csv(index=False, header=False))
        assert byoc.status_code == 200 and len(byoc.text.split()) == 2
    broken = hooks_model(tmp_path / "broken", "broken")
    assert_error(load(mme, "broken", str(broken)), 400, "bad_model", "model_fn", "value.txt says broken")
    for name in ("hooks-a", "hooks-b"):
        assert mme.session.delete(f"{mme.url}/models/{name}", timeout=10).status_code == 200


def test_a_hook_models_requirements_are_installed_once_not_on_every_load(tmp_path):
    """Every worker loads a model on demand, and again after an unload or an eviction: each load
    ran pip on the model's requirements.txt (seconds, and the index's network), under a lock all
    workers share.  The same file is installed once into the interpreter; a model with the same
    requirements in another directory does not install them again."""
    server = start_mme(workers=2, TMPDIR=str(tmp_path))  # where the install is remembered
    try:
        for name in ("req-a", "req-b"):
            directory = hooks_model(tmp_path / name, "1.5")
            (directory / "code" / "requirements.txt").write_text("--no-index\njoblib\n")
        for name in ("req-a", "req-a", "req-b"):  # req-a again after an unload
            assert load(server, name, str(tmp_path / name)).status_code == 200
            for _ in range(4):  # both workers, likely
                assert invoke(server, name, "1\n").json() == {"model": 1.5, "rows": 1}
            assert server.session.delete(f"{server.url}/models/{name}", timeout=10).status_code == 200
    finally:
        output = server.stop()
    assert output.count("pip install") == 1, output
    assert "requirements.txt: already installed into this interpreter" in output, output


def test_a_hook_models_requirements_may_not_replace_the_images_packages_under_the_running_server(tmp_path):
    """A model whose requirements.txt pins another scikit-learn was pip-installed into the server
    that was answering other models with the scikit-learn it had imported (and whose other workers
    and later loads would import the new one).  The load is refused before pip changes anything,
    naming the package and both versions; a model whose requirements leave them alone loads."""
    python = support.overlay_venv(tmp_path / "venv")
    held = ("scikit-learn", "numpy", "flask", "gunicorn")
    before = support.installed_versions(python, held)
    for name, requirement in (("pins", "scikit-learn==0.1.0"), ("other", "byoc-unrelated")):
        directory = hooks_model(tmp_path / name, "1.5")
        wheels = directory / "code" / "wheels"
        support.tiny_wheel(wheels, "scikit-learn", "0.1.0")
        support.tiny_wheel(wheels, "byoc-unrelated", "2.0")
        (directory / "code" / "requirements.txt").write_text(
            f"--no-index\n--find-links ./wheels\n{requirement}\n"
        )
    server = sm.start(
        Path("/nonexistent-ml-root"),
        workers=2,
        env={"SAGEMAKER_MULTI_MODEL": "true", "TMPDIR": str(tmp_path)},
        python=python,
    )
    try:
        refused = load(server, "pins", str(tmp_path / "pins"))
        loaded = load(server, "other", str(tmp_path / "other"))
        answer = invoke(server, "other", "1\n") if loaded.status_code == 200 else None
    finally:
        output = server.stop()
    assert_error(
        refused,
        400,
        "bad_model",
        f"requirements.txt would replace the image's scikit-learn {before['scikit-learn']} "
        "(requirements.txt asks for scikit-learn==0.1.0)",
        "build an image FROM this one",
    )
    assert loaded.status_code == 200, (loaded.text, output)
    assert answer is not None and answer.json() == {"model": 1.5, "rows": 1}
    assert support.installed_versions(python, held) == before
    assert support.installed_versions(python, ["byoc-unrelated"]) == {"byoc-unrelated": "2.0"}


def test_racing_loads_and_unloads_of_one_model_have_one_winner(mme):
    url = model_url("multiclass")
    barrier = threading.Barrier(8)

    def race(method: str) -> int:
        with requests.Session() as session:
            barrier.wait()
            if method == "POST":
                document = {"model_name": "race", "url": url}
                return session.post(f"{mme.url}/models", json=document, timeout=60).status_code
            return session.delete(f"{mme.url}/models/race", timeout=60).status_code

    for method, winner, loser in (("POST", 200, 409), ("DELETE", 200, 404)) * 2:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda m=method, out=results: out.append(race(m))) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results) == [winner] + [loser] * 7, (method, results)


def test_user_code_that_exits_fails_its_own_load_or_request_and_no_worker(mme, tmp_path):
    """sys.exit in one model's code (argparse at import, model_fn, a hook) ended the gunicorn
    worker after a 60 s hang: the caller got no answer and every model in that worker was lost."""
    exits = {
        "exits-on-import": "import argparse\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--epochs', required=True)\nargs = parser.parse_args()\n",
        "exits-in-model-fn": "import sys\ndef model_fn(model_dir):\n    sys.exit('no model')\n",
        "exits-in-transform-fn": "import sys\ndef model_fn(model_dir):\n    return 1\n"
        "def transform_fn(model, body, content_type, accept):\n    sys.exit(3)\n",
    }
    for name, program in exits.items():
        (tmp_path / name / "code").mkdir(parents=True)
        if "transform_fn" not in program:
            program += "def transform_fn(model, body, content_type, accept):\n    return ''\n"
        (tmp_path / name / "code" / "inference.py").write_text(program)
    ensure_loaded(mme, "regression", model_url("regression"))
    rows = sm.features("regression").iloc[:2].to_csv(index=False, header=False)
    assert_error(
        load(mme, "exits-on-import", str(tmp_path / "exits-on-import")),
        400,
        "bad_model",
        "called sys.exit(2)",
        "__main__",
    )
    assert_error(
        load(mme, "exits-in-model-fn", str(tmp_path / "exits-in-model-fn")),
        400,
        "bad_model",
        "model_fn",
        "called sys.exit('no model')",
    )
    assert load(mme, "exits-in-transform-fn", str(tmp_path / "exits-in-transform-fn")).status_code == 200
    for _ in range(4):  # both workers
        assert_error(
            invoke(mme, "exits-in-transform-fn", "1\n"), 500, "hook_exited", "transform_fn", "sys.exit(3)"
        )
        assert invoke(mme, "regression", rows).status_code == 200
    assert mme.session.delete(f"{mme.url}/models/exits-in-transform-fn", timeout=10).status_code == 200
    assert not [line for line in mme.output if "Worker exiting" in line or "WORKER TIMEOUT" in line]


def test_models_whose_programs_share_helper_names_each_run_their_own(mme, tmp_path):
    """Two versions of one model, each with code/inference.py importing its own code/helper.py:
    the second answered with the first's helper (Python caches modules by name), silently."""
    for version in ("1", "2"):
        code = tmp_path / f"v{version}" / "code"
        code.mkdir(parents=True)
        (code / "helper.py").write_text(f"VERSION = 'helper-v{version}'\n")
        (code / "inference.py").write_text(
            "import json\nimport helper\n\ndef model_fn(model_dir):\n    return None\n\n"
            "def transform_fn(model, body, content_type, accept):\n"
            "    return json.dumps(helper.VERSION), 'application/json'\n"
        )
        response = load(mme, f"helpers-v{version}", str(tmp_path / f"v{version}"))
        assert response.status_code == 200, response.text
    for _ in range(4):  # both workers, whichever order each loaded them in
        for version in ("2", "1"):
            response = invoke(mme, f"helpers-v{version}", "1\n")
            assert response.status_code == 200 and response.json() == f"helper-v{version}", response.text
    for version in ("1", "2"):
        assert mme.session.delete(f"{mme.url}/models/helpers-v{version}", timeout=10).status_code == 200


def test_a_model_that_takes_more_than_the_workers_share_once_loaded_is_a_507(tmp_path):
    """A few KiB of files that took 24 MiB once loaded, in a worker whose share is 8 MiB: the load
    answered 200, evicted every other model and kept the worker at 24 of 8 MiB, where README
    promises a 507 for a model larger than a worker's share alone.  And the first model a worker
    loads is charged what it takes, not the shared library pages the load touched first."""
    import joblib

    server = start_mme(workers=1, BYOC_MULTI_MODEL_MEMORY_MB="8")
    try:
        small = support.save_constant_model(tmp_path / "small", 3.0)
        assert load(server, "small", str(small)).status_code == 200
        directory = tmp_path / "packed"
        (directory / "code").mkdir(parents=True)
        (directory / "code" / "inference.py").write_text(PACKED_PROGRAM)
        joblib.dump(np.full(3 << 20, 1.0), directory / "model.joblib", compress=3)
        assert_error(
            load(server, "packed", str(directory)), 507, "insufficient_memory", "took", "once loaded"
        )
        assert_error(server.get("/models/packed"), 404, "model_not_loaded")
        response = invoke(server, "small", "1\n")
        assert response.status_code == 200 and float(response.text) == 3.0
    finally:
        output = server.stop()
    assert "evicted model 'small'" not in output
    # A worker's first load faults in library code shared with every process (page cache): that
    # was charged to the model, 6.2 MiB for this one of 0.3 MiB.
    charged = re.search(r"loaded model 'small' from .* \(([\d.]+) MiB\)", output)
    assert charged is not None and float(charged.group(1)) < 1.0, output


PACKED_PROGRAM = (
    "import os\nimport joblib\n\ndef model_fn(model_dir):\n"
    "    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n\n"
    "def transform_fn(model, body, content_type, accept):\n    return str(model[0])\n"
)


def test_a_program_importing_a_helper_it_does_not_ship_is_refused_whatever_was_loaded_before(tmp_path):
    """Model B's program imports helper, which only model A ships: loaded in a worker that had
    loaded A, B answered 200 with A's helper (A's code folder was still on sys.path), and in
    another worker its load on demand was a 400 bad_model, so its answers depended on the worker.
    A single-model serve refuses B at start; the load is now refused the same way."""
    program = (
        "import json\nimport helper\n\ndef model_fn(model_dir):\n    return None\n\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    return json.dumps(helper.WHO), 'application/json'\n"
    )
    for name in ("ships", "lacks"):
        (tmp_path / name / "code").mkdir(parents=True)
        (tmp_path / name / "code" / "inference.py").write_text(program)
    (tmp_path / "ships" / "code" / "helper.py").write_text("WHO = 'ships'\n")
    server = start_mme(workers=1)
    try:
        assert load(server, "ships", str(tmp_path / "ships")).status_code == 200
        assert_error(
            load(server, "lacks", str(tmp_path / "lacks")),
            400,
            "bad_model",
            "No module named 'helper'",
        )
        response = invoke(server, "ships", "1\n")  # the model that ships it still imports its own
        assert response.status_code == 200 and response.json() == "ships", response.text
    finally:
        server.stop()


def test_models_larger_in_memory_than_on_disk_are_evicted_by_what_they_took(tmp_path):
    """A model_fn reading a compressed pickle: a few KiB of files, 24 MiB once loaded. The budget
    counted only the files, so a worker held every such model past its budget (until the OOM
    killer ended it); what the load took in memory now counts."""
    import joblib

    program = PACKED_PROGRAM
    server = start_mme(workers=1, BYOC_MULTI_MODEL_MEMORY_MB="60")
    try:
        for i in range(3):
            directory = tmp_path / f"packed-{i}"
            (directory / "code").mkdir(parents=True)
            (directory / "code" / "inference.py").write_text(program)
            joblib.dump(np.full(3 << 20, float(i)), directory / "model.joblib", compress=3)
            assert load(server, f"packed-{i}", str(directory)).status_code == 200
        for i in range(3):
            response = invoke(server, f"packed-{i}", "1\n")
            assert response.status_code == 200 and float(response.text) == i
    finally:
        output = server.stop()
    assert "evicted model 'packed-0'" in output


# Probes of what a model's code finds, each answer with the pid of the worker that gave it.
# TOP imports its modules when the program is imported; LAZY in model_fn (helper, as an unpickled
# class's module is) and in transform_fn (extra).  Both put their code/lib on sys.path first.
_LIB = 'import importlib, json, os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))\n'
TOP_PROBE = (
    _LIB + "import helper, extra\n\ndef model_fn(model_dir):\n    return None\n\n"
    "def transform_fn(model, body, content_type, accept):\n"
    "    return json.dumps([helper.WHO, extra.WHO, os.getpid()]), 'application/json'\n"
)
LAZY_PROBE = (
    _LIB + "\ndef found(name):\n    try:\n        return importlib.import_module(name).WHO\n"
    "    except ModuleNotFoundError as exc:\n        return f'missing {exc.name}'\n\n"
    "def model_fn(model_dir):\n    return found('helper')\n\n"
    "def transform_fn(model, body, content_type, accept):\n"
    "    return json.dumps([model, found('extra'), os.getpid()]), 'application/json'\n"
)


def probe_model(directory: Path, program: str, helper: str | None = None, extra: str | None = None) -> str:
    """A model whose code/ holds ``program``, and helper.py and lib/extra.py saying ``helper``
    and ``extra`` when given."""
    (directory / "code" / "lib").mkdir(parents=True, exist_ok=True)
    (directory / "code" / "inference.py").write_text(program)
    for path, who in (
        (directory / "code" / "helper.py", helper),
        (directory / "code" / "lib" / "extra.py", extra),
    ):
        if who is not None:
            path.write_text(f"WHO = {who!r}\n")
    return str(directory)


def answers_of_every_worker(server: sm.Server, name: str, workers: int = 2) -> list:
    """The one answer every worker gives a probe model (each loads its own copy on its first
    request): invoked on new connections, which any worker may accept, until each has answered."""
    seen: dict[int, list] = {}

    def every_worker_answered() -> bool:
        response = requests.post(
            f"{server.url}/models/{name}/invoke",
            data="1\n",
            headers={"Content-Type": "text/csv", "Connection": "close"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        *answer, pid = response.json()
        seen[pid] = answer
        return len(seen) == workers

    support.wait_for(every_worker_answered, f"every worker answering {name}", timeout=120)
    assert all(answer == seen[min(seen)] for answer in seen.values()), seen
    return seen[min(seen)]


def test_an_unloaded_models_code_is_found_by_no_model_loaded_after_it(tmp_path):
    """DELETE /models/A left A's code/ (and the code/lib its program put on sys.path) on each
    worker's sys.path: a model loaded after it that imports helper without shipping it ran A's
    helper.py (200 with A's answer) in the workers that had held A, where it should fail naming the
    missing module as it does in a fresh worker.  A loaded again under its name with changed files
    runs them as they are now, in every worker."""
    server = start_mme(workers=2)
    try:
        a = probe_model(tmp_path / "a", TOP_PROBE, helper="a", extra="a-lib")
        assert load(server, "a", a).status_code == 200
        assert answers_of_every_worker(server, "a") == ["a", "a-lib"]
        assert server.session.delete(f"{server.url}/models/a", timeout=10).status_code == 200
        assert_error(
            load(server, "top", probe_model(tmp_path / "top", TOP_PROBE, helper="top")),
            400,
            "bad_model",
            "No module named 'extra'",
        )
        assert load(server, "lazy", probe_model(tmp_path / "lazy", LAZY_PROBE)).status_code == 200
        assert answers_of_every_worker(server, "lazy") == ["missing helper", "missing extra"]
        probe_model(tmp_path / "a", TOP_PROBE, helper="a, changed", extra="a-lib, changed")
        assert load(server, "a", a).status_code == 200
        assert answers_of_every_worker(server, "a") == ["a, changed", "a-lib, changed"]
    finally:
        server.stop()


def test_a_program_finds_its_own_modules_first_and_not_another_models_lib(tmp_path):
    """With another model loaded, whose program put its code/lib on sys.path: a program importing
    extra, which only that lib holds, loaded with a 200 and ran the other model's extra.py; and a
    program that puts its own code/lib first had the other model's code/ put back before its own
    code/, so its model_fn's `import helper` got the other model's helper.py."""
    server = start_mme(workers=2)
    try:
        assert (
            load(server, "a", probe_model(tmp_path / "a", TOP_PROBE, helper="a", extra="a-lib")).status_code
            == 200
        )
        assert answers_of_every_worker(server, "a") == ["a", "a-lib"]
        assert_error(
            load(server, "no-extra", probe_model(tmp_path / "no-extra", TOP_PROBE, helper="no-extra")),
            400,
            "bad_model",
            "No module named 'extra'",
        )
        assert load(server, "b", probe_model(tmp_path / "b", LAZY_PROBE, helper="b")).status_code == 200
        assert answers_of_every_worker(server, "b")[0] == "b"
        assert answers_of_every_worker(server, "a") == ["a", "a-lib"]
    finally:
        server.stop()
