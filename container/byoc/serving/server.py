"""``serve``: gunicorn in front of the Flask app, configured from SageMaker's environment.

Why these settings:

- The model is loaded and sha256-verified once, in the master, before the workers fork
  (``preload_app``); ``gc.freeze()`` keeps the model's pages out of the collector's reach
  so forked workers keep sharing them instead of copying them on the first collection.
  A missing or corrupt model stops ``serve`` at once with one line naming the file.
- gthread workers (``BYOC_WORKER_CLASS``, ``BYOC_WORKER_THREADS``): a sync worker is held by
  one connection from accept to response, so as many clients as workers trickling their
  bodies or headers kept every worker, and /ping, waiting (18 s to 60 s; SageMaker's /ping
  allows 2 s).  A gthread worker reads each connection on one of its threads and keeps idle
  ones on its poller, so slow clients hold threads, not workers.  Predictions stay CPU-bound
  under the GIL; the cost on single-row requests is measured in benchmarks/serving.py.
  SAGEMAKER_MODEL_SERVER_WORKERS sets the count (default: one per CPU); each worker pins its
  math libraries to one thread.
- SIGTERM (the platform's stop, SIGKILL 30 s later) is gunicorn's graceful shutdown: stop
  accepting, let in-flight requests finish within ``BYOC_GRACEFUL_TIMEOUT`` (default 30 s); a
  request still running then is logged with its request id and ``serve`` exits non-zero
  (see byoc.serving.worker; a stop that reaches a worker while it boots is not lost there
  either).  A worker that dies is replaced by the master.  A stop before gunicorn's master takes
  the signals (the model still loading) ends ``serve`` with one line saying so, exit 0.
- A model that loads but cannot predict fails the start: the warm-up prediction's error is
  the reason ``serve`` prints, rather than /ping passing and every request failing.
- Request bodies are framing-checked and gzip-decoded below the app (byoc.serving.body).
- Access lines go to stdout except GET /ping, which appears only at DEBUG.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

from byoc import logtext
from byoc.errors import ConfigError, ModelLoadError, UserError
from byoc.serving.memory import WORKER_ALLOCATOR
from byoc.serving.settings import ServingSettings

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'


def _quiet_ping_logger() -> type:
    from gunicorn.glogging import Logger

    class QuietPingLogger(Logger):
        """gunicorn's logger without /ping access lines unless the level is DEBUG, and without any
        access line above INFO (WARNING, ERROR: the level asks for no per-request lines).

        byoc's access line is built from the five values it prints: gunicorn's own ``access``
        gathers every request header, response header and environ entry for any format, which
        cost about 50 us a request, a tenth of a bare single-row request's CPU time."""

        def access(self, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: Any) -> None:
            level = self.error_log.getEffectiveLevel()
            if level > logging.INFO or (environ.get("PATH_INFO") == "/ping" and level > logging.DEBUG):
                return  # an access line is an INFO line: a WARNING level keeps them out of the log
            if self.cfg.access_log_format != ACCESS_LOG_FORMAT:
                super().access(resp, req, environ, request_time)
                return
            if not self.access_log_enabled:
                return
            status = resp.status
            request_line = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
            atoms = {  # quotes escaped as gunicorn's SafeAtoms does, so a line cannot be forged
                "h": environ.get("REMOTE_ADDR", "-").replace('"', '\\"'),
                "r": request_line.replace('"', '\\"'),
                "s": status.split(None, 1)[0] if isinstance(status, str) else status,
                "B": getattr(resp, "sent", None),
                "M": request_time.seconds * 1000 + request_time.microseconds // 1000,
            }
            log = self.access_log
            if log.isEnabledFor(logging.INFO):  # what log.info does, but for looking up its caller:
                # the line holds no caller, and the walk up the stack cost 2 us a request
                log.handle(log.makeRecord(log.name, logging.INFO, "", 0, ACCESS_LOG_FORMAT, (atoms,), None))

    return QuietPingLogger


def _post_fork(server: Any, worker: Any) -> None:
    WORKER_ALLOCATOR.apply()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # an optimisation only
        server.log.debug(
            "threadpoolctl unavailable; math libraries keep their default threads", exc_info=True
        )


MULTI_MODEL_THREADS = 4  # per worker: /ping and model management stay answered during a load


def gunicorn_options(settings: ServingSettings, cut: Any = None) -> dict[str, Any]:
    """The gunicorn configuration derived from the environment (see the module docstring).

    ``cut``: a shared integer the workers raise when the grace period cuts requests.
    """
    from byoc.serving.body import defer_continue
    from byoc.serving.worker import worker_class

    options = {
        "bind": [f"0.0.0.0:{settings.port}"],
        "workers": settings.workers,
        "worker_class": worker_class(settings.worker_class, cut, settings.graceful_timeout),
        "threads": settings.threads if settings.worker_class == "gthread" else 1,
        "timeout": settings.timeout,
        "graceful_timeout": settings.graceful_timeout,
        "keepalive": 5,
        "preload_app": True,
        "loglevel": settings.log_level,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": _quiet_ping_logger(),
        "post_fork": _post_fork,
        "pre_request": defer_continue,
        "worker_tmp_dir": "/dev/shm"
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
        else None,
        "proc_name": "byoc-serve",
        "limit_request_field_size": 16384,
        "control_socket_disable": True,  # no extra listener in a SageMaker container
    }
    if settings.multi_model:
        options.update(
            worker_class=worker_class("gthread", cut, settings.graceful_timeout),
            threads=MULTI_MODEL_THREADS,
            keepalive=0,
            post_fork=_post_fork_multi_model,
            post_worker_init=_post_worker_init_multi_model,
        )
    return options


def _post_fork_multi_model(server: Any, worker: Any) -> None:
    from byoc.serving.memory import use_fixed_mmap_threshold

    _post_fork(server, worker)
    use_fixed_mmap_threshold(trim_threshold=128 * 1024)  # models come and go: glibc's defaults


def _post_worker_init_multi_model(worker: Any) -> None:
    from byoc.serving.multimodel_app import REGISTRY_EXTENSION

    worker.wsgi.extensions[REGISTRY_EXTENSION].keep_in_sync()


def _gunicorn_application(app: Any, options: Mapping[str, Any]) -> Any:
    from gunicorn.app.base import BaseApplication

    from byoc.serving.worker import arbiter_class

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

        def run(self) -> None:
            try:
                arbiter_class()(self).run()
            except RuntimeError as exc:  # gunicorn's own start-up errors, as BaseApplication reports them
                print(f"serve: cannot start: {exc}", file=sys.stderr, flush=True)
                sys.exit(1)

    return Application()


def check_port(settings: ServingSettings) -> None:
    """Bind the server's port once (and let it go) before the model loads: a port another process
    listens on, or one below 1024 in a container without root, made gunicorn retry for 5 s after
    the load and end with "Can't connect to ('0.0.0.0', N)", naming no setting.  gunicorn binds
    it as this does (SO_REUSEADDR), so a port that passes here is one it can take."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", settings.port))
        except OSError as exc:
            where = f"port {settings.port} (SAGEMAKER_BIND_TO_PORT)"
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"{where} is in use: another process listens on it (a serve already running?); "
                    "stop it, or set SAGEMAKER_BIND_TO_PORT to a free port"
                ) from None
            fix = (
                f"; ports below 1024 need root (or CAP_NET_BIND_SERVICE) and this container runs as "
                f"uid {os.geteuid()}: set SAGEMAKER_BIND_TO_PORT to 1024 or above"
                if exc.errno in (errno.EACCES, errno.EPERM) and settings.port < 1024
                else ""
            )
            raise ConfigError(f"{where} cannot be bound: {exc.strerror or exc}{fix}") from None


def build_app(environ: Mapping[str, str] | None = None) -> Any:
    """Load the model and build the app in this (the master) process."""
    from byoc.serving.app import create_app
    from byoc.serving.body import decode_body

    app = create_app(environ=environ)
    settings = ServingSettings.from_environ(environ)
    app.wsgi_app = decode_body(app.wsgi_app, settings.max_payload_bytes)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serve",
        description="Serve the model in $SAGEMAKER_BASE_DIR/model (default /opt/ml/model) "
        "on 0.0.0.0:8080 or $SAGEMAKER_BIND_TO_PORT: GET /ping, GET /execution-parameters, POST /invocations.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="load and verify the model and configuration, then exit (0 when servable)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # `docker run IMAGE serve` through an entry point that passes it on
        argv = argv[1:]
    args = parser.parse_args(argv)
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    WORKER_ALLOCATOR.set_environment(os.environ)  # read when pyarrow loads, so before any import of it
    logging.basicConfig(level=logging.INFO, handlers=[logtext.handler(sys.stderr)])
    start = _Start()
    previous = {signum: signal.signal(signum, _stop_at_start) for signum in START_STOP_SIGNALS}
    try:
        return _start(args, start)
    except _Stopped as stop:
        print(f"serve: stopped by {stop} while {start.doing}", file=sys.stderr, flush=True)
        # as a stop after start (gunicorn's graceful shutdown) ends: 0; a check did not find the
        # model servable, so it does not say it is
        return 128 + signal.Signals[str(stop)] if args.check else 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# SageMaker's stop (SIGTERM) and Ctrl-C: until gunicorn's master puts its own handlers in place, the
# default ended serve by the signal (rc -15, no line) or with a KeyboardInterrupt traceback.
START_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Stopped(BaseException):
    """A stop signal taken while serve starts; its name is the message.  A BaseException, so no
    ``except Exception`` on the way (the model's load, the user's model_fn) takes it for a failure."""


def _stop_at_start(signum: int, frame: Any) -> None:
    raise _Stopped(signal.Signals(signum).name)


class _Start:
    """What serve is doing while it starts, for the line a stop signal leaves."""

    doing = "loading the model"


def _start(args: argparse.Namespace, start: _Start) -> int:
    """Load the model, warm it up and run gunicorn (which takes the stop signals from there)."""
    try:
        settings = ServingSettings.from_environ()
        # before the model loads, so its INFO lines follow the level asked for too
        logging.getLogger().setLevel(settings.log_level.upper())
        if settings.multi_model:  # models load on request
            start.doing = "starting the multi-model endpoint"
        if not args.check:  # a check may run beside the server: the port is the server's
            check_port(settings)
        app = build_app()
    except (ModelLoadError, UserError) as exc:
        print(f"serve: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    for note in settings.notes:
        logging.getLogger("byoc.serving").info("setting: %s", note)
    if settings.multi_model:
        start.doing = "starting the workers"
        return _serve_multi_model(app, settings, check=args.check)
    from byoc.serving.handler import warm_up

    handler = app.extensions["byoc.handler"]
    try:
        warm_up(handler)
    except ModelLoadError as exc:  # any failure to predict is the reason not to serve
        print(f"serve: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    logging.getLogger("byoc.serving").info(
        "serving %s (%.1f MB loaded); %d workers on port %d",
        handler.describe(),
        handler.memory_bytes / 2**20,
        settings.workers,
        settings.port,
    )
    if args.check:
        return 0
    start.doing = "starting the workers"
    gc.collect()
    gc.freeze()
    cut = multiprocessing.RawValue("i", 0)  # shared with the forked workers
    try:
        _gunicorn_application(app, gunicorn_options(settings, cut)).run()
        status = 0
    except SystemExit as exc:  # gunicorn's master ends with sys.exit
        status = exc.code if isinstance(exc.code, int) else 1
    if cut.value:
        print(
            f"serve: {cut.value} request(s) were still running when the {settings.graceful_timeout} s "
            "grace period after SIGTERM ended (BYOC_GRACEFUL_TIMEOUT); see their request ids above",
            file=sys.stderr,
            flush=True,
        )
        return status or 1
    return status


def _serve_multi_model(app: Any, settings: ServingSettings, *, check: bool) -> int:
    """Run a multi-model endpoint; the master removes the shared model index when it exits."""
    from byoc.serving.multimodel_app import INDEX_EXTENSION

    index_dir = app.extensions[INDEX_EXTENSION]
    master = os.getpid()
    try:
        if not check:
            gc.collect()
            gc.freeze()
            _gunicorn_application(app, gunicorn_options(settings)).run()
    finally:
        if os.getpid() == master:  # a worker leaves through here too, by SystemExit
            shutil.rmtree(index_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
