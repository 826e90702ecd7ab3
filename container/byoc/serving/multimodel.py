"""Multi-model endpoints: which models are loaded, and each worker's cache of their handlers.

SageMaker drives a multi-model container with POST /models (load), GET /models (list),
GET /models/<name>, DELETE /models/<name> and POST /models/<name>/invoke.  gunicorn's
workers are separate processes and SageMaker's calls land on whichever worker accepts
them, so the answer to "is model X loaded?" cannot live in one worker's memory:

- :class:`ModelIndex` is that answer, shared by all workers: a directory with one small
  JSON file per loaded model, created with an atomic ``link`` (two loads of one name: one
  wins, the other gets 409) and removed with an atomic ``rename`` (two unloads: one wins,
  the other gets 404).  Each entry carries a token that changes on every load, so a worker
  never mistakes a reloaded model for the copy it already holds.
- :class:`ModelRegistry` is one worker's cache of *handlers* keyed by model name, built
  by the handler factory it is given (byoc's own model, or a model with inference hooks).
  It loads a model the first time that worker is asked for it, bounded by a memory budget
  with least-recently-used eviction.  Eviction drops only the worker's copy: the model
  stays loaded in the index and is read again from its directory on the next request, so
  every worker gives the same answers whatever it happens to hold.

A handler is published in the cache only once its factory returned, so a request never
sees a half-loaded model; a request that holds a handler keeps it alive while an eviction
or unload drops the cache's reference.  Whenever the cache drops a handler (unload, eviction,
a copy another worker's unload or reload made stale, a load refused after it was built) the
registry's ``release`` closes it: a model's inference code leaves the worker's sys.path and
sys.modules with it, so no model loaded later imports an unloaded model's modules.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote, urlparse

from byoc import artifact
from byoc.errors import ModelLoadError, UserError
from byoc.memory_limit import container_memory_bytes
from byoc.serving import memory

log = logging.getLogger("byoc.serving.multimodel")

H = TypeVar("H")
HandlerFactory = Callable[[Path], H]

MAX_NAME_CHARS = 1024
# gunicorn's limit_request_line (serve keeps its default): "POST /models/<name>/invoke HTTP/1.1"
# longer than this is a 414, so a name whose URL spelling does not fit leaves that room.
MAX_REQUEST_LINE = 4094
MAX_URL_NAME_BYTES = MAX_REQUEST_LINE - len("POST /models//invoke HTTP/1.1")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A loaded scikit-learn model takes about as much memory as its pickle holds bytes, plus
# Python's object headers: benchmarks/multimodel.py measures the resident size of loaded
# models against this estimate (see README, "Multi-model endpoints").
MEMORY_PER_FILE_BYTE = 1.5
MEMORY_PER_MODEL = 256 * 1024
# Without BYOC_MULTI_MODEL_MEMORY_MB, loaded models may take this share of the container's
# memory; the rest is each worker's Python, libraries and request buffers.
DEFAULT_MEMORY_SHARE = 0.5
# A worker trusts its cache without reading a model's index entry only when its last sync came
# this long after the index's last change (see ModelRegistry._sync).
SETTLE_NS = 2_000_000_000


class ModelNotLoaded(UserError):
    """GET, DELETE or invoke of a model that is not loaded (SageMaker loads it and retries)."""

    code = "model_not_loaded"
    status = 404


class ModelNotFound(UserError):
    """POST /models with a url that holds no model."""

    code = "model_not_found"
    status = 404


class ModelAlreadyLoaded(UserError):
    code = "model_already_loaded"
    status = 409


class ModelRejected(UserError):
    """The model directory exists but cannot be served: corrupt, incomplete or incompatible."""

    code = "bad_model"
    status = 400


class InsufficientMemory(UserError):
    """507: the model does not fit the memory budget even with every other model evicted."""

    code = "insufficient_memory"
    status = 507


def mebibytes(size: float) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def memory_budget(model_memory_mb: int | None, container_bytes: int | None = None) -> int:
    """Bytes all workers together may spend on loaded models (each worker gets its share)."""
    if model_memory_mb:
        return model_memory_mb * 1024 * 1024
    if container_bytes is None:
        container_bytes = container_memory_bytes()
    return int(container_bytes * DEFAULT_MEMORY_SHARE)


@dataclass(frozen=True)
class IndexEntry:
    """One loaded model as every worker sees it."""

    name: str
    url: str
    token: str

    def describe(self) -> dict[str, str]:
        return {"modelName": self.name, "modelUrl": self.url}


class ModelIndex:
    """The loaded models, shared by every worker process through a directory.

    Entries are files named by the hash of the model name (names are opaque strings),
    written in full under a hidden name and then linked into place, so a reader sees a
    complete entry or none.
    """

    SUFFIX = ".json"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.directory / (hashlib.sha256(name.encode("utf-8")).hexdigest() + self.SUFFIX)

    def _hidden(self) -> Path:
        return self.directory / f".{uuid.uuid4().hex}"

    @staticmethod
    def _read(path: Path) -> IndexEntry | None:
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return IndexEntry(name=raw["modelName"], url=raw["modelUrl"], token=raw["token"])

    def add(self, name: str, url: str) -> IndexEntry:
        """Record ``name`` as loaded from ``url``; ModelAlreadyLoaded when it already is."""
        entry = IndexEntry(name=name, url=url, token=uuid.uuid4().hex)
        staged = self._hidden()
        staged.write_text(json.dumps({"modelName": name, "modelUrl": url, "token": entry.token}))
        try:
            os.link(staged, self._path(name))
        except FileExistsError:
            raise ModelAlreadyLoaded(
                f"model {name!r} is already loaded; unload it (DELETE /models/{name}) before loading it again"
            ) from None
        finally:
            staged.unlink(missing_ok=True)
        return entry

    def get(self, name: str) -> IndexEntry | None:
        return self._read(self._path(name))

    def remove(self, name: str) -> IndexEntry:
        """Take ``name`` out of the index; ModelNotLoaded when it is not in it."""
        claimed = self._hidden()
        try:
            os.rename(self._path(name), claimed)
        except FileNotFoundError:
            raise ModelNotLoaded(f"model {name!r} is not loaded") from None
        try:
            entry = self._read(claimed)
        finally:
            claimed.unlink(missing_ok=True)
        return entry or IndexEntry(name=name, url="", token="")

    def discard(self, entry: IndexEntry) -> None:
        """Remove ``entry`` if it is still the current one for its name (a newer load stays)."""
        claimed = self._hidden()
        try:
            os.rename(self._path(entry.name), claimed)
        except FileNotFoundError:
            return
        try:
            current = self._read(claimed)
            if current is not None and current.token != entry.token:
                with contextlib.suppress(FileExistsError):
                    os.link(claimed, self._path(entry.name))
        finally:
            claimed.unlink(missing_ok=True)

    def entries(self) -> list[IndexEntry]:
        """Every loaded model, sorted by name."""
        found = []
        for path in self.directory.glob("*" + self.SUFFIX):
            entry = self._read(path)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: e.name)

    def version(self) -> int:
        """Changes whenever an entry is added or removed (the directory's modification time)."""
        return os.stat(self.directory).st_mtime_ns

    def page(self, limit: int, token: str | None) -> tuple[list[IndexEntry], str | None]:
        """Up to ``limit`` entries after the one ``token`` names, and the token for the next page."""
        entries = self.entries()
        if token:
            after = decode_page_token(token)
            entries = [e for e in entries if e.name > after]
        page = entries[:limit]
        more = len(entries) > limit
        return page, (encode_page_token(page[-1].name) if more and page else None)


def encode_page_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def decode_page_token(token: str) -> str:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise UserError(
            f"next_page_token {token[:64]!r} is not a token this server issued; "
            "pass the nextPageToken of the previous GET /models unchanged",
            code="bad_page_token",
        ) from None


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UserError('"model_name" must be a non-empty string', code="bad_model_name")
    # control characters (C0, DEL, C1: Unicode's Cc) print as nothing or move a log line's text
    if len(name) > MAX_NAME_CHARS or any(unicodedata.category(ch) == "Cc" for ch in name):
        raise UserError(
            f'"model_name" must be at most {MAX_NAME_CHARS} printable characters', code="bad_model_name"
        )
    dots = next((part for part in name.split("/") if part in (".", "..")), None)
    if dots is not None:  # RFC 3986 removes dot segments: /models/../invoke reaches /invoke
        raise UserError(
            f'"model_name" {name!r} holds the path segment {dots!r}, which HTTP clients remove from '
            "/models/<name>/invoke URLs, so the model could never be invoked; name it without "
            "'.' or '..' between slashes",
            code="bad_model_name",
        )
    if name.startswith("/"):  # the server merges /models//a/invoke into /models/a/invoke: model a's
        raise UserError(
            f"\"model_name\" {name[:64]!r} starts with '/': /models/<name>/invoke would read "
            "/models//..., which the server merges into another model's URL; name it without the "
            "leading '/'",
            code="bad_model_name",
        )
    try:  # the index keys entries by the name's UTF-8 bytes; JSON's "\ud800" decodes to a lone surrogate
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UserError(
            f'"model_name" holds {name[exc.start]!r} at character {exc.start + 1}, half of a UTF-16 '
            "surrogate pair that encodes no character; send the name as UTF-8 text",
            code="bad_model_name",
        ) from None
    encoded = len(quote(name, safe=""))  # as a client spells it in the URL, every byte escaped at worst
    if encoded > MAX_URL_NAME_BYTES:
        raise UserError(
            f'"model_name" takes {encoded:,} bytes percent-encoded in /models/<name>/invoke, more than '
            f"the {MAX_URL_NAME_BYTES:,} the server's {MAX_REQUEST_LINE:,}-byte request line leaves it, so "
            "the model could never be invoked or unloaded; use a shorter name (fewer non-ASCII characters)",
            code="bad_model_name",
        )
    return name


def model_path(url: Any) -> Path:
    """The local directory a load request names: an absolute path or a file:// URL."""
    if not isinstance(url, str) or not url.strip():
        raise UserError('"url" must be the model directory, e.g. /opt/ml/models/<name>/model', code="bad_url")
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise UserError(
            f'"url" {url!r} names the host {parsed.netloc!r}: a file URL takes three slashes, '
            f"file:///{parsed.netloc}{parsed.path} (or give the path itself)",
            code="bad_url",
        )
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme:
        raise UserError(
            f'"url" {url!r}: only local directories can be loaded (SageMaker downloads the model '
            "under /opt/ml/models first)",
            code="bad_url",
        )
    else:
        path = Path(url)
    if not path.is_absolute():
        raise UserError(f'"url" {url!r} must be an absolute path', code="bad_url")
    return path


def check_model_dir(path: Path) -> None:
    """ModelNotFound unless ``path`` is a directory holding files (a path the file system
    refuses, e.g. too long, is not found either: the caller's mistake, not a fault of ours)."""
    try:
        found = path.is_dir() and next(model_files(path), None) is not None
    except OSError as exc:
        raise ModelNotFound(
            f"{path}: {exc.strerror or exc}; give the directory SageMaker extracted the model to"
        ) from None
    if not found:
        why = artifact.dangling_link(path) or "missing or empty directory"
        raise ModelNotFound(
            f"{path}: no model there ({why}); SageMaker extracts model.tar.gz there before loading it"
        )


def model_files(path: Path) -> Iterator[Path]:
    """Every file of a model directory where it really is, no symbolic link followed: a link to a
    folder was walked through, so a model holding a link to a large tree (or a url of
    file:///proc/self, whose ``root`` is ``/``: 680,000 files, 26 s) held the worker before its
    load could be refused.  ``path`` itself may be a link (the url SageMaker gives).  A link whose
    target lies inside the directory is passed by (its target is counted where it is); one
    pointing outside is refused, naming it (:func:`_refuse_outside_link`).  A folder that cannot be
    listed is passed by, as ``os.walk`` passes it."""
    top = Path(os.path.realpath(path))
    folders = [path]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:  # a folder's links first: refused before any of its files is counted
            if entry.is_symlink():
                _refuse_outside_link(Path(entry.path), top)
        below = []
        for entry in entries:
            if entry.is_symlink():
                continue
            try:
                folder_entry = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if folder_entry:
                below.append(Path(entry.path))
            else:
                yield Path(entry.path)
        folders.extend(reversed(below))


def _refuse_outside_link(link: Path, top: Path) -> None:
    """ModelRejected for a symbolic link in a model directory (``top``) whose target lies outside
    it (:func:`artifact.outside_link`, the rule serve and evaluate apply to the files they load)."""
    if outside := artifact.outside_link(link, top):
        raise ModelRejected(f"{outside}: {artifact.LINK_OUT_FIX}")


def estimated_bytes(path: Path) -> int:
    """The memory a model directory will take once loaded (see MEMORY_PER_FILE_BYTE); a link
    pointing outside it is refused (:func:`model_files`)."""
    total = 0
    for file in model_files(path):
        try:
            total += file.stat().st_size
        except OSError:
            continue
    return int(total * MEMORY_PER_FILE_BYTE) + MEMORY_PER_MODEL


@dataclass
class Cached(Generic[H]):
    entry: IndexEntry
    handler: H
    size: int
    used_at: float


class ModelRegistry(Generic[H]):
    """One worker's handlers keyed by model name, consistent with the shared index.

    Thread-safe: loads in this process are serialised (one lock), so the memory they
    reserve is always accounted; lookups and evictions take a short lock on the cache.
    """

    def __init__(
        self,
        index: ModelIndex,
        factory: HandlerFactory[H],
        budget_bytes: int,
        *,
        size_of: Callable[[Path], int] = estimated_bytes,
        clock: Callable[[], float] = time.monotonic,
        release: Callable[[H], None] = lambda handler: None,
    ) -> None:
        self.index = index
        self.factory = factory
        self.release = release
        self.budget = budget_bytes
        self.size_of = size_of
        self.clock = clock
        self._cache: OrderedDict[str, Cached[H]] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._seen_version = -1
        self._synced_at = 0

    # -- the cache ---------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(c.size for c in self._cache.values())

    def cached_names(self) -> list[str]:
        """Models this worker holds, least recently used first."""
        with self._lock:
            return list(self._cache)

    def _drop(self, name: str, token: str | None = None) -> Cached[H] | None:
        """Forget this worker's copy of ``name`` (only if it is ``token``'s, when given)."""
        with self._lock:
            cached = self._cache.get(name)
            if cached is None or (token is not None and cached.entry.token != token):
                return None
            del self._cache[name]
        self.release(cached.handler)
        return cached

    def sync(self) -> int:
        """Drop copies of models that another worker unloaded or reloaded; returns the index
        version this cache now reflects."""
        version = self.index.version()
        synced_at = time.time_ns()
        with self._lock:  # a copy not published yet (no token) is a load's of this worker, under way
            held = [(name, cached.entry.token) for name, cached in self._cache.items() if cached.entry.token]
        dropped = False
        for name, token in held:
            current = self.index.get(name)
            if current is None or current.token != token:
                dropped = self._drop(name, token) is not None or dropped
        with self._lock:
            self._seen_version, self._synced_at = version, synced_at
        if dropped:
            memory.release_free_memory()
        return version

    def _sync(self) -> bool:
        """Sync when the index changed (at most once a second inline; the sync thread catches up).

        True when this worker's cache may be trusted without reading the model's entry: the
        index has not changed since a sync that happened well after its last change.  The
        index directory's modification time has coarse steps (a clock tick, or a second on
        some file systems), so a change in the same step as the one before leaves it equal;
        a sync SETTLE_NS after that step has seen both, and any later change moves the time.
        """
        version = self.index.version()
        with self._lock:
            seen, synced_at = self._seen_version, self._synced_at
        if version != seen or synced_at - version < SETTLE_NS:
            if time.time_ns() - synced_at < SETTLE_NS:
                return False
            self.sync()
            with self._lock:
                seen, synced_at = self._seen_version, self._synced_at
        return version == seen and synced_at - version >= SETTLE_NS

    def keep_in_sync(self, interval: float = 2.0) -> threading.Thread:
        """Free copies of models unloaded elsewhere every ``interval`` seconds, even while this
        worker gets no requests (a daemon thread; one per worker process)."""

        def sweep() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.sync()
                except Exception:  # keep sweeping; the next request syncs too
                    log.warning("model index sync failed", exc_info=True)

        thread = threading.Thread(target=sweep, name="byoc-model-sync", daemon=True)
        thread.start()
        return thread

    def _make_room(self, size: int, name: str) -> None:
        """Evict least recently used models until ``size`` more bytes fit the budget."""
        evicted = []
        with self._lock:
            used = sum(c.size for c in self._cache.values())
            while self._cache and used + size > self.budget:
                victim_name, victim = self._cache.popitem(last=False)
                used -= victim.size
                evicted.append((victim_name, victim))
        now = self.clock()
        for victim_name, victim in evicted:
            self.release(victim.handler)
            log.info(
                "evicted model %r (%s, idle %.1f s) to make room for %r (%s); %s of %s in use",
                victim_name,
                mebibytes(victim.size),
                now - victim.used_at,
                name,
                mebibytes(size),
                mebibytes(used),
                mebibytes(self.budget),
            )
        if evicted:
            del victim, evicted
            memory.release_free_memory()

    def _load(self, entry: IndexEntry) -> Cached[H]:
        """Build ``entry``'s handler in this worker (caller holds the load lock)."""
        # copies of models unloaded or reloaded elsewhere go first, whenever this worker last
        # synced: a model's code still held would be importable by the one loading now
        self.sync()
        path = model_path(entry.url)
        check_model_dir(path)
        size = self.size_of(path)
        if size > self.budget:
            raise self._too_big(entry.name, f"needs about {mebibytes(size)}")
        self._make_room(size, entry.name)
        started = time.perf_counter()
        try:
            handler = self.factory(path)
        except MemoryError:
            raise InsufficientMemory(f"model {entry.name!r}: out of memory while loading {path}") from None
        except (UserError, ModelLoadError) as exc:
            # the user's to fix, its message names the file or the failed warm-up prediction:
            # one line in the log, as the client reads it; no traceback, which says nothing more
            message = exc.message if isinstance(exc, UserError) else str(exc)
            log.warning("model %r at %s cannot be loaded: %s", entry.name, path, message)
            raise ModelRejected(f"model {entry.name!r} at {path}: {message}") from exc
        except Exception as exc:
            log.warning("model %r at %s cannot be loaded", entry.name, path, exc_info=True)
            raise ModelRejected(
                f"model {entry.name!r} at {path} cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        elapsed = time.perf_counter() - started
        measured = getattr(handler, "memory_bytes", 0)
        if isinstance(measured, int) and measured > size:
            # what the load took in resident memory (handler.load measures it) beats the files'
            # estimate: a compressed pickle, or a model_fn that builds more than it reads
            size = measured
            if size > self.budget:  # kept, it would evict every other model and still pass the budget
                self.release(handler)
                del handler
                memory.release_free_memory()
                raise self._too_big(entry.name, f"took {mebibytes(size)} once loaded")
            self._make_room(size, entry.name)
        cached = Cached(entry=entry, handler=handler, size=size, used_at=self.clock())
        with self._lock:
            self._cache[entry.name] = cached
            used = sum(c.size for c in self._cache.values())
            count = len(self._cache)
        log.info(
            "loaded model %r from %s in %.1f ms (%s); this worker holds %d models, %s of %s",
            entry.name,
            path,
            elapsed * 1000,
            mebibytes(size),
            count,
            mebibytes(used),
            mebibytes(self.budget),
        )
        return cached

    def _too_big(self, name: str, size: str) -> InsufficientMemory:
        return InsufficientMemory(
            f"model {name!r} {size} but this worker's share of the model memory budget is "
            f"{mebibytes(self.budget)}; raise BYOC_MULTI_MODEL_MEMORY_MB, run fewer workers "
            "(SAGEMAKER_MODEL_SERVER_WORKERS: each worker holds its own copy and gets an equal share) "
            "or use an instance with more memory"
        )

    # -- the API's operations ----------------------------------------------------------------

    def load(self, name: Any, url: Any) -> IndexEntry:
        """POST /models: load ``url`` as ``name`` in this worker, then publish it to all."""
        name = check_name(name)
        model_path(url)
        self._sync()
        self._refuse_loaded(name)
        with self._load_lock:
            # again: a racing load in this worker may have won while this one waited, and a loser
            # must not evict warm models (or replace the winner's copy) loading what gets a 409
            self._refuse_loaded(name)
            self._drop(name)  # a copy of an earlier load of the name, unloaded by another worker
            cached = self._load(IndexEntry(name=name, url=url, token=""))
            try:
                entry = self.index.add(name, url)
            except BaseException:  # ModelAlreadyLoaded: another worker loaded it meanwhile, keep theirs
                self._drop(name, "")
                memory.release_free_memory()
                raise
            with self._lock:
                cached.entry = entry
                self._cache[name] = cached
                self._cache.move_to_end(name)
        return entry

    def _refuse_loaded(self, name: str) -> None:
        if self.index.get(name) is not None:
            raise ModelAlreadyLoaded(
                f"model {name!r} is already loaded; unload it (DELETE /models/{name}) before loading it again"
            )

    def handler(self, name: str) -> H:
        """The handler for an invocation, loaded in this worker on first use; 404 when not loaded."""
        if self._sync():
            with self._lock:
                cached = self._cache.get(name)
                if cached is not None and cached.entry.token:  # published, and the index is unchanged
                    self._cache.move_to_end(name)
                    cached.used_at = self.clock()
                    return cached.handler
        entry = self.index.get(name)
        if entry is None:
            with self._lock:
                cached = self._cache.get(name)
                token = cached.entry.token if cached is not None else ""
            if token:  # a published copy, stale; one without a token is a POST /models's, not yet published
                self._drop(name, token)
            raise ModelNotLoaded(f"model {name!r} is not loaded; load it with POST /models first")
        hit = self._lookup(entry)
        if hit is not None:
            return hit
        with self._load_lock:
            hit = self._lookup(entry)
            if hit is not None:
                return hit
            self._drop(name)
            try:
                return self._load(entry).handler
            except (ModelNotFound, ModelRejected) as exc:
                if self.index.get(name) != entry:
                    # unloaded or reloaded while this worker read its files, which SageMaker may
                    # delete or replace once it has unloaded the model: not the model's fault
                    raise ModelNotLoaded(
                        f"model {name!r} was unloaded while this worker loaded it; load it with POST /models"
                    ) from None
                if isinstance(exc, ModelRejected):
                    raise
                # Its files are gone (removed from disk while loaded): unload it, so SageMaker's
                # next load succeeds instead of meeting a 409 forever.
                self.index.discard(entry)
                raise ModelNotLoaded(
                    f"model {name!r} is no longer at {entry.url}; load it again with POST /models"
                ) from None

    def _lookup(self, entry: IndexEntry) -> H | None:
        with self._lock:
            cached = self._cache.get(entry.name)
            if cached is None or cached.entry.token != entry.token:
                return None
            self._cache.move_to_end(entry.name)
            cached.used_at = self.clock()
            return cached.handler

    def describe(self, name: str) -> IndexEntry:
        entry = self.index.get(name)
        if entry is None:
            raise ModelNotLoaded(f"model {name!r} is not loaded")
        return entry

    def unload(self, name: str) -> IndexEntry:
        """DELETE /models/<name>: remove it for every worker; this one frees its copy now."""
        entry = self.index.remove(name)
        dropped = self._drop(name)
        if dropped is not None:
            memory.release_free_memory()
        log.info(
            "unloaded model %r (%s); this worker freed %s",
            name,
            entry.url,
            mebibytes(dropped.size if dropped is not None else 0),
        )
        return entry

    def page(self, limit: int, token: str | None) -> tuple[list[IndexEntry], str | None]:
        return self.index.page(limit, token)
