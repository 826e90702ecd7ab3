"""`container/start`, the image's default command (SDK v3 ModelTrainer starts a training container
with no command): it trains when the ML root holds a training job's configuration and serves
otherwise, saying which and why."""

from __future__ import annotations

import shutil
import subprocess
import sys

from support import (
    CONTAINER,
    REPO,
    clean_environ,
    csv_bytes,
    free_port,
    make_ml_root,
    mixed_frame,
    stop_process,
    wait_for_ping,
)

START = CONTAINER / "start"


def test_training_layout_trains(tmp_path):
    frame = mixed_frame(120)
    root = make_ml_root(
        tmp_path,
        channels={"train": {"t.csv": csv_bytes(frame, target="deposit", header=True)}},
        hyperparameters={"algorithm": "decision_tree"},
    )
    result = subprocess.run(
        [sys.executable, str(START)],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_environ(SAGEMAKER_BASE_DIR=str(root)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running train (found a training job's configuration" in result.stdout
    assert (root / "model" / "model.json").is_file()


def test_no_training_layout_serves(tmp_path, trained_root):
    shutil.copytree(trained_root / "model", tmp_path / "model")  # an endpoint: /opt/ml/model only
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(START)],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path), SAGEMAKER_BIND_TO_PORT=str(port)),
    )
    try:
        wait_for_ping(port, proc)
    finally:
        out = stop_process(proc)
    assert "running serve (no training job configuration" in out
