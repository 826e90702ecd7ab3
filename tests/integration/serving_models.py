"""Models trained by the real ``container/train`` and servers started by the real ``container/serve``,
shared by the tests/integration/test_serve*.py modules.

Training a model takes a couple of seconds, so each kind is trained once per test session
(cached here, in a temporary directory removed at exit); each test module starts the servers
it needs.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import requests

import support
from support import diabetes_frame, iris_frame, mixed_frame

# name -> (frame factory, target, hyperparameters)
KINDS: Mapping[str, tuple[Any, str, dict[str, Any]]] = {
    # text labels yes/no over numeric + text categorical features, with missing values
    "binary": (mixed_frame, "deposit", {"algorithm": "decision_tree", "max_depth": 4}),
    "multiclass": (iris_frame, "target", {"algorithm": "gradient_boosting", "max_iter": 20}),
    "regression": (diabetes_frame, "target", {"algorithm": "decision_tree", "max_depth": 5}),
}


@cache
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="byoc-serve-tests-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def frame(kind: str) -> pd.DataFrame:
    return KINDS[kind][0]()


def features(kind: str) -> pd.DataFrame:
    factory, target, _ = KINDS[kind]
    return factory().drop(columns=[target])


@cache
def trained_root(kind: str) -> Path:
    """An ML root whose model/ was written by ``container/train`` (SDK-style hyperparameters)."""
    factory, target, hyperparameters = KINDS[kind]
    data = factory()
    root = support.make_ml_root(
        _workdir() / kind,
        channels={"train": {"train.csv": support.csv_bytes(data, target=target, header=True)}},
        hyperparameters={"target": target, **hyperparameters},
        content_types={"train": "text/csv"},
    )
    result = support.run_train(root)
    assert result.returncode == 0, f"training the {kind} model failed:\n{result.stdout}\n{result.stderr}"
    return root


def broken_root(dest: Path, transform: Any) -> Path:
    """An ML root whose regression model (one numeric feature ``x``, trained on target ``y``) runs
    ``transform`` first: for tests of models that load but fail to predict (``transform`` must be
    importable)."""
    import numpy as np
    from sklearn.dummy import DummyRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from byoc import artifact

    model = Pipeline(
        [
            ("broken", FunctionTransformer(transform)),
            ("model", DummyRegressor().fit(np.zeros((2, 1)), [0.0, 1.0])),
        ]
    )
    artifact.save(
        dest / "model",
        model,
        {
            "problem_type": "regression",
            "algorithm": "broken",
            "features": [artifact.Feature("x", "numeric", "float64").to_dict()],
            "target": {"name": "y", "index": 0},
        },
    )
    return dest


def copy_root(kind: str, dest: Path) -> Path:
    """A private copy of a trained ML root (for tests that damage the model)."""
    shutil.copytree(trained_root(kind), dest)
    return dest


@dataclass
class Server:
    """A running ``container/serve`` process and an HTTP session to it.

    Its output is read continuously by a thread: an unread pipe fills up after a few
    thousand access-log lines and would block the server.
    """

    process: subprocess.Popen
    port: int
    session: requests.Session = field(default_factory=requests.Session)
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def invoke(
        self,
        body: bytes | str,
        content_type: str | None = "text/csv",
        accept: str | None = None,
        attributes: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        if attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        headers.update(kwargs.pop("headers", {}))
        return self.session.post(
            f"{self.url}/invocations", data=body, headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs
        )

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.url}{path}", timeout=10)

    def stop(self, timeout: float = 30) -> str:
        """SIGTERM (SIGKILL after ``timeout``); returns everything the server printed.  The
        session's pools are closed first: urllib3 2's ``clear`` leaves them to be collected, and a
        response the test still holds keeps its pool, so its kept-alive connection stayed open and
        held a stopping worker 2 s longer (gunicorn's ``STOP_KEEPALIVE_LINGER``)."""
        for adapter in self.session.adapters.values():
            pools = getattr(adapter, "poolmanager", None)
            for key in pools.pools.keys() if pools is not None else ():
                pools.pools[key].close()
        self.session.close()
        support.terminate(self.process, timeout)
        if self.reader is not None:
            self.reader.join(10)
        return "".join(self.output)


class SlowPost:
    """POST /invocations from a thread whose chunked body slows to a byte a second after ``first``
    until ``release`` is set: a request in flight in a worker, for SIGTERM and grace-period tests
    (a body that stopped for 5 s is answered 408: byoc.serving.body.SILENCE_SECONDS).  ``result``
    gets "response" or "error" (a requests exception); leaving the ``with`` block releases the body."""

    def __init__(self, url: str, first: bytes, rest: bytes) -> None:
        self.sent_first, self.release = threading.Event(), threading.Event()
        self.result: dict[str, Any] = {}

        def body() -> Iterator[bytes]:
            yield first
            self.sent_first.set()
            left = rest
            while len(left) > 1 and not self.release.wait(1.0):
                yield left[:1]
                left = left[1:]
            self.release.wait(60)
            yield left

        def call() -> None:
            try:
                self.result["response"] = requests.post(
                    f"{url}/invocations",
                    data=body(),
                    headers={"Content-Type": "text/csv", "Accept": "text/csv"},
                    timeout=60,
                )
            except requests.RequestException as exc:
                self.result["error"] = exc

        self.thread = threading.Thread(target=call, daemon=True)
        self.thread.start()

    def finish(self, timeout: float = 30) -> None:
        """Send the rest of the body and wait for the answer."""
        self.release.set()
        self.thread.join(timeout)

    def __enter__(self) -> SlowPost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()


def run_serve(
    root: Path, *, unprivileged: bool = False, python: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    """Run ``container/serve`` to completion (for start-up failures); output captured as text
    (``unprivileged``: subject to file modes even as root, see :func:`support.without_file_privileges`;
    ``python``: another interpreter, see :func:`support.start_serve`)."""
    return subprocess.run(
        [python or sys.executable, str(support.SERVE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=support.clean_environ(
            env, SAGEMAKER_BASE_DIR=str(root), SAGEMAKER_BIND_TO_PORT=str(support.free_port())
        ),
        preexec_fn=support.without_file_privileges if unprivileged else None,
    )


def start(
    root: Path, *, workers: int = 2, env: Mapping[str, str] | None = None, python: str | None = None
) -> Server:
    """The server of ``root``, answering /ping on a port of its own.  Started again on another
    port when another process took the free port first (see ``support.listens_on``)."""
    merged = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), **(env or {})}
    for attempt in range(3):
        process, port = support.start_serve(root, env=merged, python=python)
        try:
            support.wait_for_ping(port, process, timeout=60)
            return Server(process, port)
        except AssertionError as exc:
            support.stop_process(process, timeout=5)
            if "Connection in use" not in str(exc) or attempt == 2:  # gunicorn, port taken
                raise
        except BaseException:
            support.stop_process(process, timeout=5)
            raise
    raise AssertionError("unreachable")
