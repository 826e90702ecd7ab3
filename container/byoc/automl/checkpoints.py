"""Finished candidates recorded under /opt/ml/checkpoints, so a restarted job does not repeat them.

SageMaker syncs the checkpoint directory to S3 and restores it when a managed spot job resumes.
Each finished candidate is two files: its result as JSON (with the host that scored it) and its
held-out predictions as .npy, written atomically (temp file + rename) under a fingerprint of the
data, the problem type, the evaluation plan, the objective and the code that scored it (a hash
of byoc's scoring sources, and scikit-learn's version) — a job restarted on other data, as
another problem type, with another objective or on an image with other scoring code starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from byoc.artifact import library_versions
from byoc.automl.candidates import Candidate
from byoc.automl.search import COMPLETED, FAILED, MEMORY, Plan, Result
from byoc.oserrors import display_path
from byoc.scoring_code import code_hash

log = logging.getLogger(__name__)
FOLDER = "byoc-automl"
# distributions whose version a checkpointed score depends on; byoc's own code is hashed instead
# (its version stays 0.1.0 while the code changes: see byoc.scoring_code)
SCORING_CODE = ("scikit-learn",)


def fingerprint(
    X: pd.DataFrame, y: np.ndarray, plan: Plan, objective: str, seed: int, *, problem_type: str
) -> str:
    """What a checkpointed score depends on.  ``problem_type`` too: a two-class target's codes,
    rows and plan are the same as binary and as multiclass, and Accuracy is an objective of
    both, but the other metrics differ (binary F1, precision and recall are the positive
    class's, multiclass ones are macro averages).  The code too — a hash of byoc's scoring
    sources (not its version, which a changed image keeps) and scikit-learn's version: a job
    restarted on a new image (a fixed candidate, another scikit-learn) would otherwise resume
    scores the old code measured."""
    versions = library_versions()
    code = [code_hash(), *(versions.get(dist, "") for dist in SCORING_CODE)]
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [list(map(str, X.columns)), X.shape, plan.description, objective, seed, problem_type, code]
        ).encode()
    )
    digest.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()[:20]


class Checkpoints:
    """Read and write finished candidates for one fingerprint."""

    def __init__(self, root: Path, key: str) -> None:
        self.folder = root / FOLDER / key
        self.unwritable = ""  # why saving stopped (the first error), "" while it works

    def save(self, result: Result) -> None:
        """:meth:`_save`, but a checkpoint that cannot be written (a read-only or full volume)
        does not end the job: checkpoints only spare a restarted job the candidates already
        scored, and the search's model is what the job is for.  Warned once, then not tried."""
        if self.unwritable:
            return
        try:
            self._save(result)
        except OSError as exc:
            self.unwritable = f"{exc.strerror or exc} ({display_path(exc.filename or self.folder)})"
            log.warning(
                "auto: checkpoints are not saved from %s on: %s; the search goes on, but a restarted "
                "job scores every candidate again (make the checkpoint directory writable, or free "
                "space on its volume)",
                result.name,
                self.unwritable,
            )

    @staticmethod
    def _stem(candidate: Candidate) -> str:
        return hashlib.sha256(candidate.name.encode()).hexdigest()[:16]

    def _save(self, result: Result) -> None:
        if result.status not in (COMPLETED, FAILED) or result.blame == MEMORY:
            # stopped or skipped candidates are tried again after a restart, and so are those
            # killed for memory (the job may be restarted on an instance with more)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self._stem(result.candidate)
        oof = result.oof
        if oof is not None:
            _atomic(self.folder / f"{stem}.npy", lambda fh: np.save(fh, oof, allow_pickle=False))
        record = {
            "family": result.candidate.family,
            "encoding": result.candidate.encoding,
            "params": dict(result.candidate.params),
            "status": result.status,
            "score": result.score,
            "std": result.std,
            "metrics": result.metrics,
            "fit_seconds": result.fit_seconds,
            "message": result.message,
            "host": result.host,
            "blame": result.blame,
        }
        _atomic(self.folder / f"{stem}.json", lambda fh: fh.write(json.dumps(record).encode()))

    def load(self) -> list[Result]:
        try:  # a folder the training user cannot enter (left by a run as another user)
            if not self.folder.is_dir():
                return []
            paths = sorted(p for p in self.folder.iterdir() if p.suffix == ".json")  # glob hides EACCES
        except OSError as exc:  # checkpoints only spare a restart work: never end the job
            log.warning(
                "auto: checkpoints cannot be read: %s (%s); the search scores every candidate again "
                "(give the training user access to the checkpoint directory)",
                exc.strerror or exc,
                display_path(exc.filename or self.folder),
            )
            return []
        results: list[Result] = []
        for path in paths:
            try:
                record = json.loads(path.read_text())
                _check(record)
                candidate = Candidate(record["family"], record["encoding"], record["params"])
                oof = None
                if record["status"] == COMPLETED:
                    # an empty or truncated file (a partial restore, a full disk) raises EOFError
                    oof = np.load(path.with_suffix(".npy"), allow_pickle=False)
                    if oof.ndim not in (1, 2) or not np.issubdtype(oof.dtype, np.number):
                        raise ValueError(f"its predictions are a {oof.ndim}-d {oof.dtype} array")
                results.append(
                    Result(
                        candidate,
                        record["status"],
                        record["score"],
                        record["std"],
                        record["metrics"],
                        record["fit_seconds"],
                        0.0,
                        record.get("message", "") + " (from a checkpoint)",
                        oof,
                        host=record.get("host", ""),
                        blame=record.get("blame", ""),
                    )
                )
            except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
                log.warning("auto: ignoring checkpoint %s: %s", path.name, exc)
        if results:
            log.info("auto: resuming with %d finished candidate(s) from %s", len(results), self.folder)
        return results


def _check(record: object) -> None:
    """Refuse a record whose fields are not what :meth:`Checkpoints.save` writes (an older or
    foreign writer, a hand edit): a null score or time would fail later, as a bug of ours."""
    if not isinstance(record, dict):
        raise TypeError("not a JSON object")
    if record.get("status") not in (COMPLETED, FAILED):
        raise ValueError(f"status {record.get('status')!r}")
    for name in ("family", "encoding", "message"):
        if not isinstance(record.get(name, ""), str):
            raise TypeError(f"{name} is not a string")
    if not isinstance(record.get("params"), dict):
        raise TypeError("params is not an object")
    numbers = ["fit_seconds"] + (["score", "std"] if record["status"] == COMPLETED else [])
    for name in numbers:
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} is {value!r}, not a number")
    if not isinstance(record.get("metrics"), dict):
        raise TypeError("metrics is not an object")


def _atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def restore(checkpoints: Checkpoints | None, expected: Sequence[int]) -> list[Result]:
    """Checkpointed results whose predictions cover the plan's held-out rows (``expected`` shape)."""
    if checkpoints is None:
        return []
    kept = []
    for result in checkpoints.load():
        if result.oof is not None and tuple(result.oof.shape[:1]) != tuple(expected[:1]):
            log.warning("auto: ignoring checkpointed %s: its predictions do not match the data", result.name)
            continue
        kept.append(result)
    return kept
