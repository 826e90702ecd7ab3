"""What the image does when it is started with no command (its default CMD).

SageMaker runs ``train`` or ``serve`` explicitly, and so does SDK v2 local mode.  SDK v3's
``ModelTrainer`` in LOCAL_CONTAINER mode starts a training container with no command when no
source code is given, so the image has to tell from the ML root what the job is: a training job
always finds its configuration (input/config/*.json); an endpoint never does.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from byoc import logtext
from byoc.environment import MLPaths

log = logging.getLogger("byoc.dispatch")

TRAIN = "train"
SERVE = "serve"


def choose(paths: MLPaths) -> tuple[str, str]:
    """``(command, reason)``: train when the training job's configuration is there, else serve."""
    config = paths.input_config_dir
    found = sorted(p.name for p in config.glob("*.json")) if config.is_dir() else []
    if found:
        return TRAIN, f"found a training job's configuration in {config} ({', '.join(found)})"
    return SERVE, f"no training job configuration in {config} (no *.json): serving {paths.model_dir}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Exec ``train`` or ``serve`` (same process: signals from tini reach it directly)."""
    logging.basicConfig(level=logging.INFO, handlers=[logtext.handler(sys.stdout)])
    args = list(sys.argv[1:] if argv is None else argv)
    paths = MLPaths.from_environ(environ)
    command, reason = choose(paths)
    log.info("started without a command: running %s (%s); pass 'train' or 'serve' to choose", command, reason)
    sys.stdout.flush()
    here = Path(__file__).resolve().parent.parent
    target = here / command if (here / command).is_file() else shutil.which(command)
    if target is None:
        log.error("cannot find the %s entry point next to %s or on PATH", command, here)
        return 2
    os.execv(sys.executable, [sys.executable, str(target), *args])
    return 0  # pragma: no cover - execv does not return
