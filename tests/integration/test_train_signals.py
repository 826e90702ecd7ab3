"""StopTrainingJob / spot interruption: `docker stop -t 120` sends SIGTERM to a real training
process in the middle of a long C-level fit.  It must stop inside the grace period, say so in
output/failure, leave no model (not even staging files) and exit 143."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

import numpy as np
import pandas as pd
import psutil
import pytest

from support import csv_bytes, make_ml_root, model_dir_entries, read_failure, script_root, start_train

GRACE_SECONDS = 120  # SIGKILL follows after this on SageMaker


def big_frame(rows: int = 20000, cols: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, cols))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(0, 0.5, rows) > 0).astype(int)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(cols)])
    frame.insert(0, "y", y)
    return frame


@pytest.fixture(scope="module")
def big_csv() -> bytes:
    return csv_bytes(big_frame(), target="y")


def _wait_for_fit(proc: subprocess.Popen) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "fitting started" in line:
            return lines
    raise AssertionError("training ended before fitting started:\n" + "".join(lines))


@contextlib.contextmanager
def _training(root) -> Iterator[subprocess.Popen]:
    """A running `container/train`, killed on the way out if a test left it running."""
    proc = start_train(root)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stop(proc: subprocess.Popen) -> str:
    """What `docker stop -t 120` does: SIGTERM, then wait out the grace period."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=GRACE_SECONDS)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "random_forest", "n_estimators": 5000, "n_jobs": 2},
        {
            "algorithm": "gradient_boosting",
            "max_iter": 100000,
            "early_stopping": False,
            "learning_rate": 0.001,
        },
    ],
    ids=["random_forest_threads", "hist_gradient_boosting_openmp"],
)
def test_sigterm_mid_fit_stops_cleanly(tmp_path, big_csv, params):
    root = make_ml_root(tmp_path, channels={"train": {"big.csv": big_csv}}, hyperparameters=params)
    with _training(root) as proc:
        lines = _wait_for_fit(proc)
        out = _stop(proc)
    output = "".join(lines) + out
    assert proc.returncode == 128 + signal.SIGTERM, output
    failure = read_failure(root)
    assert failure is not None, output
    first = failure.splitlines()[0]
    assert first.startswith("Training job stopped by SIGTERM (StopTrainingJob or spot interruption)")
    assert f"while fitting {params['algorithm']}" in first and "no model was saved" in first
    assert model_dir_entries(root) == []
    assert "SIGTERM received while fitting" in output


POOL_SCRIPT = """\
    import multiprocessing, time

    def work(_):
        time.sleep(600)

    if __name__ == "__main__":
        pool = multiprocessing.Pool(2)
        pool.map_async(work, range(2))
        print("ready", flush=True)
        time.sleep(600)
    """


def test_sigterm_leaves_no_process_of_the_job_behind(tmp_path):
    """A job that really starts processes (a user script with a multiprocessing pool): every
    process under train, recorded before the signal, is gone once train has exited."""
    root = script_root(tmp_path, "train.py", {"train.py": POOL_SCRIPT})
    with _training(root) as proc:
        for line in proc.stdout:
            if line.strip() == "ready":
                break
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert len(tree) >= 3, tree  # the script and its two pool workers
        out = _stop(proc)
    assert proc.returncode == 143, out
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert alive == [], f"still running after train exited: {alive}"


@pytest.mark.slow
def test_sigterm_keeps_an_existing_failure_reason(tmp_path, big_csv):
    """A stop after another failure was recorded must not replace the first reason."""
    root = make_ml_root(
        tmp_path,
        channels={"train": {"big.csv": big_csv}},
        hyperparameters={"algorithm": "random_forest", "n_estimators": 5000, "n_jobs": 1},
    )
    with _training(root) as proc:
        _wait_for_fit(proc)
        (root / "output" / "failure").write_text("earlier reason\n")
        _stop(proc)
    assert proc.returncode == 143
    assert read_failure(root) == "earlier reason\n"
    assert model_dir_entries(root) == []


def test_sigterm_while_waiting_on_a_pipe_nobody_feeds(tmp_path):
    """Stopped during Pipe-mode download: the main thread is blocked opening the FIFO."""
    root = make_ml_root(tmp_path, channels={"train": {"x": b""}}, input_mode="Pipe")
    os.mkfifo(root / "input" / "data" / "train_0")
    with _training(root) as proc:
        for line in proc.stdout:
            if "reading channel train (Pipe mode)" in line:
                break
        _stop(proc)
    assert proc.returncode == 143
    assert "while reading channel 'train'" in read_failure(root).splitlines()[0]
    assert model_dir_entries(root) == []
