"""byoc's access line is built by hand for speed: it must be the line gunicorn's own logger writes."""

from __future__ import annotations

import datetime
import io
import logging
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.glogging import Logger
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc.serving.server import ACCESS_LOG_FORMAT, _quiet_ping_logger


def _logger(cls: type, level: str = "info") -> tuple[Logger, io.StringIO]:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("loglevel", level)
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    logger = cls(cfg)
    out = io.StringIO()
    for handler in logger.access_log.handlers:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(out)
    return logger, out


TEXT = st.text(
    st.sampled_from('/?=" ') | st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    uri=TEXT,
    protocol=st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
    remote=st.none() | TEXT,
    status=st.sampled_from(["200 OK", "400 BAD REQUEST", "500 INTERNAL SERVER ERROR", 204]),
    sent=st.none() | st.integers(0, 10**9),
    micros=st.integers(0, 10**8),
)
def test_the_access_line_is_gunicorns(method, uri, protocol, remote, status, sent, micros):
    environ = {"REQUEST_METHOD": method, "RAW_URI": uri, "SERVER_PROTOCOL": protocol, "PATH_INFO": "/x"}
    if remote is not None:
        environ["REMOTE_ADDR"] = remote
    response = SimpleNamespace(status=status, sent=sent, headers=[("Content-Type", "text/csv")])
    request = SimpleNamespace(headers=[("HOST", "localhost")])
    took = datetime.timedelta(microseconds=micros)
    lines = []
    for cls in (_quiet_ping_logger(), Logger):  # one at a time: both set up the same "gunicorn.access"
        logger, out = _logger(cls)
        logger.access(response, request, environ, took)
        lines.append(out.getvalue())
    ours, theirs = lines
    assert ours == theirs and ours.count("\n") == 1


def test_ping_is_logged_only_at_debug():
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/ping",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/ping",
    }
    response = SimpleNamespace(status="200 OK", sent=0, headers=[])
    for level, logged in (("info", False), ("debug", True)):
        logger, out = _logger(_quiet_ping_logger(), level)
        logger.access(response, SimpleNamespace(headers=[]), environ, datetime.timedelta(0))
        assert ('"GET /ping HTTP/1.1" 200' in out.getvalue()) is logged
