"""The app talks to any Handler the same way: request fields in, response and errors out."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from byoc.errors import UserError
from byoc.serving.app import REQUEST_ID_HEADER, create_app
from byoc.serving.handler import InferenceRequest, InferenceResponse
from support import CONTAINER


class EchoHandler:
    """Answers with what it was given; raises what the body asks for."""

    memory_bytes = 123

    def __init__(self) -> None:
        self.seen: list[InferenceRequest] = []

    def invoke(self, request: InferenceRequest) -> InferenceResponse:
        self.seen.append(request)
        slices = list(request.body.line_slices())
        if slices == [b"user-error"]:
            raise UserError("no such thing", code="no_such_thing", status=422)
        if slices == [b"fault"]:
            raise RuntimeError("boom")
        if slices == [b"memory"]:
            raise MemoryError("Unable to allocate 8.00 TiB")
        if slices and slices[0].startswith(b"bytes:"):  # an answer of bytes, headers given after it
            pairs = [pair.partition("=") for pair in slices[0][6:].decode().split("&") if pair]
            return InferenceResponse(b"1.0\n", "text/csv", {name: value for name, _, value in pairs})
        return InferenceResponse(iter(slices), "text/plain", {"X-Lines": str(len(slices))})

    def warm_up(self) -> None:
        pass

    def describe(self) -> str:
        return "echo"


@pytest.fixture
def served() -> tuple[EchoHandler, object]:
    handler = EchoHandler()
    app = create_app(handler, environ={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    return handler, app.test_client()


def test_request_fields_reach_the_handler_and_its_response_reaches_the_client(served) -> None:
    handler, client = served
    reply = client.post(
        "/invocations",
        data=b"a\nb\n",
        headers={
            "Content-Type": "text/csv",
            "Accept": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "output=probability",
        },
    )
    assert reply.status_code == 200
    assert reply.data == b"a\nb\n"
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.headers["X-Lines"] == "1"
    (seen,) = handler.seen
    assert (seen.content_type, seen.accept, seen.custom_attributes) == (
        "text/csv",
        "application/json",
        "output=probability",
    )
    assert seen.request_id == reply.headers[REQUEST_ID_HEADER]


def test_handler_errors_become_json_with_the_request_id(served) -> None:
    _, client = served
    user = client.post("/invocations", data=b"user-error")
    assert user.status_code == 422
    assert user.get_json()["error"] == "no_such_thing"
    fault = client.post("/invocations", data=b"fault")
    assert fault.status_code == 500
    body = json.loads(fault.data)
    assert body["request_id"] == fault.headers[REQUEST_ID_HEADER]
    assert "boom" not in fault.get_data(as_text=True)


def test_the_payload_limit_holds_before_the_handler_reads(served) -> None:
    handler, client = served
    reply = client.post("/invocations", data=b"x" * (1024 * 1024 + 1))
    assert reply.status_code == 413
    assert handler.seen == []


def _without_request_id(reply) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers in order, body) with the request id (random per request) taken out."""
    request_id = reply.headers.get(REQUEST_ID_HEADER, "")
    headers = [(k, v) for k, v in reply.headers.items() if k != REQUEST_ID_HEADER]
    body = reply.data.replace(request_id.encode(), b"ID") if request_id else reply.data
    return reply.status_code, headers, body


@pytest.mark.parametrize(
    ("method", "path", "data", "headers"),
    [
        ("POST", "/invocations", b"a\nb\n", {"Content-Type": "text/csv", "Accept": "text/csv"}),
        ("POST", "/invocations", b"user-error", {}),
        ("POST", "/invocations", b"fault", {}),
        ("POST", "/invocations", b"bytes:", {}),
        ("POST", "/invocations", b"bytes:X-Amzn-SageMaker-Custom-Attributes=output=label", {}),
        ("POST", "/invocations", b"bytes:content-type=text/plain", {}),
        ("POST", "/invocations", b"bytes:X-Request-Id=forged", {}),
        ("POST", "/invocations", b"bytes:X-Bad=a\nb", {}),
        ("POST", "/invocations", b"bytes:X-Bad=a\rb", {}),
        ("POST", "/invocations", b"bytes:X-A=1&X-B=2", {}),
        ("POST", "/invocations", b"bytes:X-A=1&x-a=2", {}),
        ("POST", "/invocations", b"bytes:content-length=4&X-A=1", {}),
        ("POST", "/invocations", b"bytes:X-A=a\tb &x-request-id=forged", {}),
        ("POST", "/invocations", b"x" * (1024 * 1024 + 1), {"Content-Type": "text/csv"}),
        ("POST", "/invocations", b"", {"X-Amzn-SageMaker-Custom-Attributes": "output=label"}),
        ("GET", "/invocations", b"", {}),
        ("PUT", "/invocations", b"a", {}),
        ("POST", "/invocations/", b"a", {}),
        ("POST", "/nowhere", b"a", {}),
    ],
)
def test_post_invocations_answers_as_flasks_own_route_does(method, path, data, headers) -> None:
    """POST /invocations skips Flask (DirectInvocations); Flask's own route for it, with the app's
    error handlers, must give the same status, headers and body, request id aside."""
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    app = create_app(EchoHandler(), environ={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    direct = app.test_client().open(path, method=method, data=data, headers=headers)
    through_flask = Client(app.wsgi_app.flask_app, Response).open(
        path, method=method, data=data, headers=headers
    )
    assert _without_request_id(direct) == _without_request_id(through_flask)
    assert direct.headers[REQUEST_ID_HEADER] and through_flask.headers[REQUEST_ID_HEADER]


def test_the_app_lets_a_csv_field_be_as_long_as_a_body():
    """The csv module's field limit is process-wide: the app raises it to the payload limit
    when it is built (before gunicorn forks the workers), never lowers it, and importing byoc
    leaves it alone (byoc.csvfields)."""
    before = csv.field_size_limit()
    try:
        csv.field_size_limit(131072)
        create_app(EchoHandler(), environ={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "3"})
        assert csv.field_size_limit() == 3 * 2**20
        create_app(EchoHandler(), environ={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
        assert csv.field_size_limit() == 3 * 2**20
    finally:
        csv.field_size_limit(before)
    imports = (
        "import csv, byoc.serving.app, byoc.serving.server, byoc.serving.codecs.csv, byoc.job, "
        "byoc.training, byoc.evaluation, byoc.data.csv_reader; print(csv.field_size_limit())"
    )
    environ = {**os.environ, "PYTHONPATH": str(CONTAINER)}
    result = subprocess.run(
        [sys.executable, "-c", imports], capture_output=True, text=True, check=True, env=environ
    )
    assert result.stdout.strip() == "131072"


_HEADER_NAMES = st.sampled_from(["X-A", "x-a", "X-B", "Content-Type", "content-length", "X-Request-Id"])
_HEADER_VALUES = st.text(alphabet="ab \t\r\n=;", max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    content_type=st.one_of(_HEADER_VALUES, st.just("text/csv")),
    pairs=st.lists(st.tuples(_HEADER_NAMES, st.one_of(_HEADER_VALUES, st.integers())), max_size=4),
    kind=st.sampled_from(["dict", "MultiDict", "Headers"]),
)
def test_bytes_answer_headers_are_werkzeugs(content_type, pairs, kind) -> None:
    """BytesAnswer's own header list (its common case) equals what werkzeug's Headers builds, and
    refuses (ValueError) exactly what werkzeug refuses, whatever mapping the handler answers with."""
    from werkzeug.datastructures import Headers, MultiDict

    from byoc.serving.app import BytesAnswer

    try:
        extra = {"dict": dict, "MultiDict": MultiDict, "Headers": Headers}[kind](pairs)
    except ValueError:  # werkzeug's Headers refuses a line break already when built
        assume(False)

    result = InferenceResponse(b"1.0\n", content_type, extra)
    try:
        expected = Headers([("Content-Type", content_type), ("Content-Length", "4")])
        expected.update(extra)
        expected[REQUEST_ID_HEADER] = "id"
    except ValueError:
        with pytest.raises(ValueError):
            BytesAnswer(result, b"1.0\n", "id")
        return
    assert BytesAnswer(result, b"1.0\n", "id").headers == expected.to_wsgi_list()


class _EndlessAfter:
    """A stream that gives ``data`` and then fails: whoever reads past the end is caught."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        if self.data is None:
            raise AssertionError("read past the body's length")
        data, self.data = self.data, None
        return data


@pytest.mark.parametrize("read", ["read", "line_slices"])
def test_a_body_of_known_length_is_not_read_past_its_end(read) -> None:
    from byoc.serving.app import FlaskBody

    body = FlaskBody(_EndlessAfter(b"1,2\n3,4\n"), 8, 1024, length=8)
    got = body.read() if read == "read" else b"".join(body.line_slices())
    assert got == b"1,2\n3,4\n"
    empty = FlaskBody(_EndlessAfter(b""), 0, 1024, length=0)
    assert (empty.read() if read == "read" else b"".join(empty.line_slices())) == b""


def test_a_body_of_unknown_length_is_read_to_the_streams_end() -> None:
    import io

    from byoc.serving.app import FlaskBody

    assert FlaskBody(io.BytesIO(b"a\nb"), None, 1024).read() == b"a\nb"
    assert list(FlaskBody(io.BytesIO(b"a\nb"), None, 1024).line_slices()) == [b"a\n", b"b"]


def test_memory_running_out_in_byocs_own_code_is_the_same_413_not_a_500(served) -> None:
    """Decoding or predicting a batch too large for the memory was an ``internal_error`` 500 (the
    hooks' MemoryError a ``hook_failed`` one: tests/integration/test_serve_hooks.py); one
    mapping in the app answers both."""
    _, client = served
    reply = client.post("/invocations", data=b"memory", headers={"Content-Type": "text/csv"})
    assert reply.status_code == 413, reply.data
    body = reply.get_json()
    assert body["error"] == "out_of_memory" and body["request_id"] == reply.headers[REQUEST_ID_HEADER]
    assert body["message"].startswith("memory ran out while answering this request (a body of 6 bytes)")
    assert "MaxPayloadInMB, now 1 MB" in body["message"] and "8.00 TiB" not in body["message"]


@pytest.mark.parametrize("grown", [0, -4096])
def test_a_load_that_grows_no_resident_memory_counts_the_models_size_on_disk(
    tmp_path, monkeypatch, grown
) -> None:
    """A load whose memory came from what the allocator already held reads as no growth: a
    multi-model endpoint's budget must still count the model (its files' size), or a cache of
    such models would hold more than BYOC_MULTI_MODEL_MEMORY_MB and never evict one."""
    from types import SimpleNamespace

    from byoc.serving import builtin, hooks
    from byoc.serving import handler as handlers
    from byoc.serving.settings import ServingSettings

    (tmp_path / "model.joblib").write_bytes(b"x" * 5000)
    (tmp_path / "model.json").write_text("{}")
    readings = iter([1 << 30, (1 << 30) + grown])
    monkeypatch.setattr(handlers, "anonymous_resident_bytes", lambda: next(readings))
    monkeypatch.setattr(
        builtin.ModelHandler,
        "load",
        classmethod(lambda cls, folder, settings: SimpleNamespace(memory_bytes=0)),
    )
    loaded = handlers.load(tmp_path, ServingSettings(), {}, hooks.UserCode(tmp_path, None))
    assert loaded.memory_bytes == 5002
