"""The model directory: ``model.joblib`` (the fitted pipeline) + ``model.json`` (what it is).

``model.json`` makes the model self-describing: the server validates requests against its
feature schema, maps predicted indices back to the original class labels, and refuses a
``model.joblib`` whose sha256 differs from the one recorded at training time.

Contract of the pipeline in ``model.joblib``: it takes a pandas DataFrame whose columns are
``feature_names`` in order (numeric features as float64, categorical ones as object/str,
missing values as NaN/None).  For classification ``predict`` returns class *indices* into
``classes`` and ``predict_proba`` returns one column per entry of ``classes``; for regression
``predict`` returns the value.

Saving is atomic: files are staged in a hidden directory inside the model directory (same
file system, so ``os.replace`` is a rename) and ``model.json`` is renamed last; it is the
commit marker, and :func:`load` refuses a directory without it.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from byoc import oserrors
from byoc.errors import ModelLoadError, a_type
from byoc.json_objects import json_words

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
METADATA_FILE = "model.json"
COMPILED_FILE = "model.compiled.npz"  # the compiled form byoc.compiled writes beside model.joblib
STAGING_PREFIX = ".byoc-staging-"

# errno -> what to do when a model file cannot be read (serve, evaluate: not the training user)
READ_FIXES = {
    errno.EACCES: "make the model's files readable by uid {uid}, the user this container runs as "
    "(model.tar.gz keeps the modes they had when it was packed: chmod -R a+rX the model directory "
    "before packing), or run the container as root",
    errno.EPERM: "make the model's files readable by uid {uid}, the user this container runs as, "
    "or run the container as root",
    errno.ELOOP: "remove the symbolic link loop",
    errno.ENAMETOOLONG: "shorten the file or directory names",
}

# what a model file shorter than it was written asks of the user
CUT_SHORT = (
    "cut short by an interrupted copy, upload or download: restore it from the training job's "
    "model.tar.gz, whole"
)
# what a model.json that contradicts model.joblib asks of the user
FROM_ONE_JOB = (
    "the two files come from different training jobs or model.json was edited: restore both from "
    "one model.tar.gz"
)

REGRESSION = "regression"
BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
BOOLEAN_TARGET = "boolean"  # model.json target.type: the label column held booleans
PROBLEM_TYPES = (REGRESSION, BINARY, MULTICLASS)
FEATURE_KINDS = ("numeric", "categorical")  # byoc.preprocessing's NUMERIC and CATEGORICAL


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not the number 1


@dataclass(frozen=True)
class Entry:
    """What a model.json entry must be: ``test`` passes its value, ``must_be`` says it."""

    test: Callable[[Any], bool]
    must_be: str
    required: bool = False


# model.json's entries whose type serve and evaluate rely on, checked as model.json is read
# (:func:`read_metadata`): a hand edit of another type is refused naming the key and what it must be,
# not passed on as something else ("classes": "abc" read as three classes, true as format_version 1)
# or met later as a failure naming neither (a feature kind "banana": the warm-up prediction failed).
ENTRIES = {
    "format_version": Entry(_integer, f"an integer ({FORMAT_VERSION} for this image)", required=True),
    "classes": Entry(
        lambda v: v is None or isinstance(v, list), "a list of the class labels (null for regression)"
    ),
    "features": Entry(
        lambda v: isinstance(v, list) and all(isinstance(f, dict) for f in v),
        "a list of objects, one per feature",
        required=True,
    ),
    "files": Entry(lambda v: isinstance(v, dict), 'an object of file name -> {"sha256": ..., "bytes": ...}'),
    "compiled": Entry(lambda v: v is None or isinstance(v, dict), "an object (or null: no compiled form)"),
}
# the entries of each object in "features"
FEATURE_ENTRIES = {
    "name": Entry(lambda v: isinstance(v, str), "a string, the column's name", required=True),
    "kind": Entry(lambda v: v in FEATURE_KINDS, f"one of {', '.join(FEATURE_KINDS)}", required=True),
    "dtype": Entry(lambda v: isinstance(v, str), "a string"),
    "categories": Entry(lambda v: isinstance(v, list), "a list of the categories training saw"),
    "optional": Entry(lambda v: isinstance(v, bool), "true or false"),
}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickled pipeline loads and predicts the same."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in (
        "byoc",
        "scikit-learn",
        "numpy",
        "pandas",
        "scipy",
        "joblib",
        "pyarrow",
        "treelite",
        "onnxruntime",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def label_at(metadata: Mapping[str, Any]) -> int | None:
    """The label's 0-based column in training's files (model.json ``target.index``), or None."""
    target = metadata.get("target")
    index = target.get("index") if isinstance(target, Mapping) else None
    return index if type(index) is int else None


@dataclass(frozen=True)
class Feature:
    """One input column as the model expects it."""

    name: str
    kind: str  # "numeric" or "categorical"
    dtype: str  # the training frame's dtype, for messages
    categories: tuple[Any, ...] = ()
    # a JSON record may leave its key out (read as missing): training's JSON Lines records did
    # (byoc.absent_keys); False for every other feature and for models trained before
    optional: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype}
        if self.kind == "categorical":
            out["categories"] = list(self.categories)
        if self.optional:
            out["optional"] = True
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Feature:
        return cls(
            name=str(raw["name"]),
            kind=str(raw["kind"]),
            dtype=str(raw.get("dtype", "")),
            categories=tuple(raw.get("categories") or ()),
            optional=raw.get("optional") is True,
        )


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded model: the fitted pipeline and its description."""

    estimator: Any
    metadata: Mapping[str, Any]
    path: Path | None = None

    @property
    def problem_type(self) -> str:
        return str(self.metadata["problem_type"])

    @property
    def is_classifier(self) -> bool:
        return self.problem_type != REGRESSION

    @property
    def features(self) -> tuple[Feature, ...]:
        return tuple(Feature.from_dict(f) for f in self.metadata["features"])

    @property
    def feature_names(self) -> list[str]:
        return [str(f["name"]) for f in self.metadata["features"]]

    @property
    def classes(self) -> list[Any]:
        return list(self.metadata.get("classes") or [])

    @property
    def served_classes(self) -> list[Any]:
        """The classes as the server answers them: JSON-native booleans when model.json's
        ``target.type`` says training's label column held booleans (its classes are the
        categories ``true``/``false``, as :mod:`byoc.values` spells every boolean); else, and for
        models trained before ``target.type``, the classes as listed."""
        target = self.metadata.get("target")
        if not (isinstance(target, dict) and target.get("type") == BOOLEAN_TARGET):
            return self.classes
        from byoc.values import FALSE, TRUE

        booleans = {TRUE: True, FALSE: False}
        return [booleans[c] if isinstance(c, str) and c in booleans else c for c in self.classes]

    @property
    def algorithm(self) -> str:
        return str(self.metadata.get("algorithm", ""))


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays, paths and sets as plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save(
    model_dir: Path,
    estimator: Any,
    metadata: Mapping[str, Any],
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write the model atomically and return the path of model.json.

    ``metadata`` must hold at least problem_type, algorithm and features; format version,
    timestamps, library versions and the checksums are added here.  ``extra_files`` (such as
    the compiled form) are written beside model.joblib and listed with their sha256.
    """
    missing = [k for k in ("problem_type", "algorithm", "features") if k not in metadata]
    if missing:
        raise ValueError(f"model metadata lacks {missing}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_dir))
    try:
        # A full disk met while a staged file is flushed names no file, and the staging
        # directory is gone with the failure: the model directory is the path to name.
        with oserrors.naming(model_dir):
            _stage_and_commit(staging, model_dir, estimator, metadata, extra_files or {})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir / METADATA_FILE


def _stage_and_commit(
    staging: Path,
    model_dir: Path,
    estimator: Any,
    metadata: Mapping[str, Any],
    extra_files: Mapping[str, bytes],
) -> None:
    """Write every file into ``staging``, fsync them, then rename them in, model.json last."""
    joblib_path = staging / MODEL_FILE
    joblib.dump(estimator, joblib_path)
    staged = [joblib_path]
    for name, content in extra_files.items():
        staged.append(staging / name)
        staged[-1].write_bytes(content)
    document = dict(metadata)
    document.update(
        format_version=FORMAT_VERSION,
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        versions=library_versions(),
        files={path.name: {"sha256": sha256_of(path), "bytes": path.stat().st_size} for path in staged},
    )
    json_path = staging / METADATA_FILE
    json_path.write_text(
        json.dumps(document, indent=2, default=_json_default, allow_nan=False) + "\n", encoding="utf-8"
    )
    for handle in (*staged, json_path):
        with open(handle, "rb") as fh:
            os.fsync(fh.fileno())
    for path in staged:
        os.replace(path, model_dir / path.name)
    os.replace(json_path, model_dir / METADATA_FILE)


def clear(model_dir: Path) -> list[str]:
    """Empty ``model_dir`` before a job writes its model, returning the names it held.

    SageMaker packs the whole directory into model.tar.gz, and serve runs any code/inference.py
    it finds there: what an earlier attempt of a retried job (or an earlier run on the same local
    root) left would be served beside, or instead of, the new model.  A symbolic link is removed,
    never followed.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    held = sorted(entry.name for entry in model_dir.iterdir())
    for name in held:
        entry = model_dir / name
        with oserrors.naming(entry):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return held


def discard_staging(model_dir: Path) -> None:
    """Remove leftovers of an interrupted :func:`save` (called on failure paths)."""
    model_dir = Path(model_dir)
    if model_dir.is_dir():
        for entry in model_dir.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def reading(model_dir: Path) -> Iterator[None]:
    """Report a model file the system will not let this process read (another uid's 0600 file
    in model.tar.gz, an unreadable directory) as a ModelLoadError naming it and the fix, not a
    traceback."""
    try:
        yield
    except OSError as exc:
        error = oserrors.as_user_error(exc, Path(model_dir), "loading the model", READ_FIXES)
        if error is None:
            raise
        raise ModelLoadError(error.message) from exc


def locate(directory: Path) -> Path:
    """The model directory in an unpacked model.tar.gz: ``directory`` itself when it holds
    model.json, else the one folder under it, at any depth, that does (``tar -czf model.tar.gz
    model`` unpacks to ``<directory>/model/model.json``); ``directory`` when none does, for
    :func:`load` to say what is there instead.  serve, multi-model loads and evaluate all find
    the model here."""
    directory = Path(directory)
    if (directory / METADATA_FILE).is_file():
        return directory
    unlisted: list[OSError] = []
    found = _folders_holding_metadata(directory, unlisted)
    if len(found) > 1:
        shown = ", ".join(str(folder) for folder in found[:5]) + (
            f" and {len(found) - 5} more" if len(found) > 5 else ""
        )
        raise ModelLoadError(
            f"{directory}: no {METADATA_FILE} at its top but {len(found)} folders holding one ({shown}), "
            "so which model to load is unclear; put one model in each model.tar.gz, its files at the "
            "top (tar -czf model.tar.gz -C <folder> .)"
        )
    if not found:
        for exc in unlisted:  # a folder this uid cannot list may be the one holding the model
            if (error := oserrors.as_user_error(exc, directory, "loading the model", READ_FIXES)) is not None:
                raise ModelLoadError(error.message) from exc
        return directory
    log.info(
        "model found in %s, not at the top of %s: model.tar.gz holds it under a top-level folder",
        found[0],
        directory,
    )
    return found[0]


def _folders_holding_metadata(directory: Path, unlisted: list[OSError] | None = None) -> list[Path]:
    """Folders below ``directory`` holding model.json, hidden folders (interrupted saves'
    staging, .git) left out; the errors of folders that could not be listed go to ``unlisted``."""
    found = []
    for root, dirs, files in walk(directory, unlisted):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if METADATA_FILE in files and root != directory:
            found.append(root)
    return sorted(found)


def walk(
    directory: Path, unlisted: list[OSError] | None = None
) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk`` of an unpacked model that follows symbolic links (a model folder may be one;
    a model file leading out of its folder is refused at load, :func:`outside_link`), each real
    directory once, so a link loop ends; prune ``dirs`` in place as with os.walk.
    A folder that cannot be listed is passed by, its error appended to ``unlisted`` when given."""
    seen: set[str] = set()
    onerror = unlisted.append if unlisted is not None else None
    for root, dirs, files in os.walk(directory, followlinks=True, onerror=onerror):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        yield Path(root), dirs, files


LINK_OUT_FIX = (
    "a model's files are read within its directory only; pack the files themselves into model.tar.gz "
    "(tar --dereference stores what a link points to), or links within the directory"
)


def outside_link(path: Path, top: Path) -> str:
    """'<path> is a symbolic link to <target>, outside the model directory <top>' when ``path`` is a
    symbolic link whose target, every link on the way followed, lies outside the directory ``top``
    (resolved alike); '' otherwise.  A model's files are read through links (``locate`` walks into a
    linked folder, the sha256 check and joblib read a linked model.joblib whole, code imports a linked
    module), so a link leading out would have another model's files, or any file of the container,
    read as this model's.  serve and evaluate refuse such a model.json, model.joblib or compiled file
    (:func:`load`), a multi-model load any such link in the model's directory."""
    if not path.is_symlink():
        return ""
    top, target = Path(os.path.realpath(top)), Path(os.path.realpath(path))
    if target.is_relative_to(top):
        return ""
    return f"{path} is a symbolic link to {target}, outside the model directory {top}"


def _refuse_links_out(folder: Path, names: Iterable[str]) -> None:
    """Refuse a model file of ``folder`` (``names``) that is a symbolic link leading out of it
    (:func:`outside_link`), or a link loop, naming it and the fix; links within the folder load."""
    for name in names:
        path = folder / name
        if outside := outside_link(path, folder):
            raise ModelLoadError(f"{outside}: {LINK_OUT_FIX}")
        if path.is_symlink():
            try:
                os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # is_file() says False: "missing" would name no loop
                    raise ModelLoadError(
                        f"{path} is a symbolic link loop: {READ_FIXES[errno.ELOOP]}"
                    ) from exc


def dangling_link(path: Path) -> str:
    """'<path> is a symbolic link to <target>, which does not exist', or '' when it is not one."""
    if path.is_symlink() and not path.exists():
        return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist"
    return ""


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".gz", ".tar.bz2", ".tar.xz")
"""Names of archives, which a model directory holds when its model.tar.gz was packed twice."""


def _instead(model_dir: Path) -> str:
    """What the model directory holds instead of model.json, and what to do about it: an empty
    one, or another program's model (:func:`locate` has found no model.json below it)."""
    if dangling := dangling_link(model_dir):
        return f"; {dangling}: point it at the unpacked model directory"
    if not model_dir.exists():  # the image has no /opt/ml: docker run ... serve without a model mounted
        return (
            f"; {model_dir} does not exist: SageMaker unpacks model.tar.gz there; locally, mount the "
            "unpacked model (docker run -v <folder holding model.json>:/opt/ml/model ...) or set "
            "SAGEMAKER_BASE_DIR to the folder holding model/"
        )
    if not model_dir.is_dir():
        return (
            f"; {model_dir} is a file, not a directory: the directory of the unpacked model.tar.gz goes there"
        )
    try:
        entries = sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(STAGING_PREFIX))
    except OSError:  # no directory, or one this uid cannot list: the path says enough
        return ""
    if not entries:
        return "; the directory is empty: the training job saved no model (model.tar.gz was empty)"
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    if archives := [name for name in entries if name.lower().endswith(ARCHIVE_SUFFIXES)]:
        return (
            f"; it holds {', '.join(archives[:3])}, an archive: SageMaker unpacks model.tar.gz into this "
            "directory once, so an archive packed inside it stays packed; pack the model's files "
            "themselves (tar -czf model.tar.gz -C <folder holding model.json> .)"
        )
    if lost := model_json_lost(entries):
        return f"; it holds {shown}, {lost}"
    ours = (
        f"; a {MODEL_FILE} byoc's train wrote needs its {METADATA_FILE}: {REPACK}"
        if MODEL_FILE in entries
        else ""
    )
    return (
        f"; it holds {shown}: a model your own training script saved is served by a model_fn in "
        f'code/inference.py (README "Inference hooks"){ours}'
    )


REPACK = (
    "re-pack the whole model directory train wrote, model.json with it (tar -czf model.tar.gz -C "
    "<model directory> .), or use the training job's model.tar.gz"
)


def model_json_lost(entries: Collection[str]) -> str:
    """What a folder holding ``entries`` (file names) but no model.json is, when its files are
    byoc's: model.compiled.npz, which no other program writes, means model.json was lost in a hand
    re-pack, and a model_fn is not the fix; '' otherwise (model.joblib a script may save too)."""
    if COMPILED_FILE not in entries:
        return ""
    return f"byoc's model files without the {METADATA_FILE} train writes beside them: {REPACK}"


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """model.json of ``model_dir``, checked to be byoc's; a file this uid cannot read named."""
    with reading(model_dir):
        return _read_metadata(Path(model_dir))


def _read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / METADATA_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{path}: missing; the model directory must hold {METADATA_FILE} and {MODEL_FILE} "
            f"written by byoc's train{_instead(model_dir)}"
        )
    raw = path.read_bytes()
    if raw.startswith(LFS_POINTER):
        raise ModelLoadError(f"{path}: {_another_kind(path)}")
    try:  # a byte order mark is what an editor may add to a hand-edited model.json
        metadata = json.loads(raw.decode("utf-8-sig"))
    except ValueError as exc:
        raise ModelLoadError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise ModelLoadError(
            f"{path}: holds {json_words(metadata)}, not the object byoc's train writes; "
            "restore model.json from the training job's model.tar.gz"
        )
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(f"{path}: {_format_mismatch(version, metadata)}")
    _check_entries(path, metadata, ENTRIES, "")  # also refuses true, which equals 1
    for number, feature in enumerate(metadata["features"]):
        name = feature.get("name")
        named = f" ({json.dumps(name)})" if isinstance(name, str) else ""
        _check_entries(path, feature, FEATURE_ENTRIES, f" of features[{number}]{named}")
    return metadata


def _check_entries(path: Path, document: Mapping[str, Any], entries: Mapping[str, Entry], of: str) -> None:
    """Refuse the first entry of ``document`` (``of`` says where it sits in model.json) that is not
    what ``entries`` says it must be, naming the key."""
    for key, entry in entries.items():
        if key not in document:
            if entry.required:
                raise ModelLoadError(f"{path}: no {key!r}{of}; it must be {entry.must_be}: {RESTORE}")
        elif not entry.test(document[key]):
            raise ModelLoadError(
                f"{path}: {key!r}{of} is {_shown(document[key])}, not {entry.must_be}: {RESTORE}"
            )


RESTORE = "a hand edit or another program wrote it; restore model.json from the training job's model.tar.gz"


def _shown(value: Any) -> str:
    """A model.json value as JSON words, with the value when it is a short scalar: 'a string ("abc")'."""
    words = json_words(value)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = json.dumps(value)
        return f"{words} ({text if len(text) <= 40 else text[:39] + '…'})"
    return words


def _format_mismatch(version: Any, metadata: Mapping[str, Any]) -> str:
    """Why a model.json's format_version is not this image's, and the fix that works: a newer
    byoc's model is served by that image (retraining is the other way), none at all is not byoc's."""
    if version is None:
        return (
            "has no format_version, so byoc's train did not write it; restore model.json from the "
            "training job's model.tar.gz, or serve a model your own training script saved with a "
            'model_fn in code/inference.py (README "Inference hooks")'
        )
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        versions = metadata.get("versions")
        writer = versions.get("byoc") if isinstance(versions, dict) else None
        current = library_versions().get("byoc", "?")
        by = f" (byoc {writer})" if writer and writer != current else ""
        return (
            f"format_version {version} is a newer byoc's{by} than this image's (byoc {current}, "
            f"format_version {FORMAT_VERSION}); serve it with the image that trained it, or retrain "
            "the model with this image"
        )
    if not _integer(version):
        return f"'format_version' is {_shown(version)}, not {ENTRIES['format_version'].must_be}: {RESTORE}"
    return f"format_version {version!r} is not {FORMAT_VERSION}; retrain the model with this image"


def load(model_dir: Path, *, verify: bool = True, compiled: bool = True) -> ModelArtifact:
    """Load and check the model in an unpacked model.tar.gz (see :func:`locate`); every failure
    names the file at fault.  ``compiled``: as :func:`load_located`'s."""
    model_dir = Path(model_dir)
    with reading(model_dir):
        return _load(locate(model_dir), verify, compiled)


def load_located(folder: Path, *, verify: bool = True, compiled: bool = True) -> ModelArtifact:
    """:func:`load` of the folder :func:`locate` returned already: a caller that had to locate
    the model first (serve, to find its code/) does not walk the directory a second time.
    ``compiled=False`` (a server with BYOC_COMPILED_INFERENCE=off, and evaluate, which scores with
    scikit-learn: neither reads the compiled file): a compiled file that fails its check is a
    WARNING, not a refusal."""
    folder = Path(folder)
    with reading(folder):
        return _load(folder, verify, compiled)


COMPILED_OFF = "a server with BYOC_COMPILED_INFERENCE=off serves model.joblib without it"


def _load(model_dir: Path, verify: bool, compiled: bool = True) -> ModelArtifact:
    _refuse_links_out(model_dir, [METADATA_FILE])
    metadata = _read_metadata(model_dir)
    listed = metadata.get("files") or {}  # an object: read_metadata checked it
    compiled_files = set(_compiled_file(metadata)) - {MODEL_FILE}
    read = sorted({MODEL_FILE, *listed, *compiled_files})
    _refuse_links_out(model_dir, [name for name in read if Path(name).name == name])
    joblib_path = model_dir / MODEL_FILE
    if not joblib_path.is_file():
        raise ModelLoadError(
            f"{joblib_path}: missing; {METADATA_FILE} refers to it: restore both from one "
            "model.tar.gz of the training job"
        )
    if verify:
        for name in read:
            if Path(name).name != name:
                raise ModelLoadError(f"{model_dir / METADATA_FILE}: lists {name!r}, which is not a file name")
            try:
                _check_listed(model_dir / name, listed.get(name))
            except ModelLoadError as exc:
                if name not in compiled_files:
                    raise
                if compiled:
                    raise ModelLoadError(f"{exc}; {COMPILED_OFF}") from exc
                log.warning(
                    "%s; the file is not read: model.joblib's scikit-learn pipeline answers, as with "
                    "BYOC_COMPILED_INFERENCE=off",
                    exc,
                )
    differ = _versions_differ(metadata)
    try:
        estimator = joblib.load(joblib_path)
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in READ_FIXES:
            raise  # the environment's, reported by reading()
        if another := _another_kind(joblib_path):  # its sha256 recorded again, or model.json edited to match
            hint = f"; {another}"
        elif _cut_short(joblib_path, exc):
            hint = f"; the file ends early, {CUT_SHORT}"
        elif differ:
            hint = f"; it was written with {differ}: serve it with an image of those versions or retrain"
        else:
            hint = ""
        raise ModelLoadError(f"{joblib_path}: cannot be loaded ({type(exc).__name__}: {exc}){hint}") from exc
    if differ:
        log.warning(
            "%s was written with %s: answers may differ from training's; retrain with this image, or "
            "serve with one of those versions",
            joblib_path,
            differ,
        )
    if not callable(getattr(estimator, "predict", None)):  # its sha256 recorded again, or model.json edited
        raise ModelLoadError(
            f"{joblib_path}: holds {a_type(estimator)} without a predict method, not the fitted "
            "pipeline byoc's train writes: restore it from the training job's model.tar.gz"
        )
    # model.json's entries are of the types ENTRIES and FEATURE_ENTRIES say (read_metadata): what
    # check_agrees reads of them cannot fail otherwise than by its own refusals
    check_agrees(estimator, metadata, model_dir / METADATA_FILE)
    return ModelArtifact(estimator=estimator, metadata=metadata, path=model_dir)


def _check_listed(path: Path, record: Any) -> None:
    """A file model.json lists is there, with the sha256 ``record`` gives."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing; {METADATA_FILE} lists it")
    _check_sha256(path, record if isinstance(record, dict) else {})


def _check_sha256(path: Path, record: Mapping[str, Any]) -> None:
    """Refuse a file whose sha256 is not the one model.json recorded for it (``record``), saying
    when it is shorter than recorded: an interrupted copy, not a replaced file."""
    expected = record.get("sha256")
    if expected is None:
        raise ModelLoadError(
            f"{path}: {METADATA_FILE} records no sha256 for it, so it cannot be checked; "
            "restore model.json from the training job's model.tar.gz"
        )
    actual = sha256_of(path)
    if expected == actual:
        return
    size, recorded = path.stat().st_size, record.get("bytes")
    cause = _another_kind(path) or (
        f"it has {size} of the {recorded} bytes recorded, {CUT_SHORT}"
        if isinstance(recorded, int) and size < recorded
        else "the file is corrupt or was replaced"
    )
    raise ModelLoadError(
        f"{path}: sha256 {actual[:12]}… does not match {expected!s:.12}… recorded in {METADATA_FILE}; {cause}"
    )


LFS_POINTER = b"version https://git-lfs.github.com/spec/"
PICKLE_PREFIX = b"\x80"  # the PROTO opcode a pickle of protocol 2 or later starts with
ZIP_PREFIX = b"PK\x03\x04"  # a zip archive's first local header: numpy.savez's .npz
# how the files train writes begin: a file cut short begins so too
LEADING_BYTES = {MODEL_FILE: PICKLE_PREFIX, ".npz": ZIP_PREFIX}


def _another_kind(path: Path) -> str:
    """Why ``path``, which failed its sha256 check (or, its sha256 recorded again, to unpickle), is
    another file than the one train wrote rather than the file cut short: a Git LFS pointer (a model kept in Git LFS, packed without ``git lfs
    pull``), or a start no file of that name written by train has; '' when it may be either."""
    with open(path, "rb") as fh:
        head = fh.read(len(LFS_POINTER))
    if head.startswith(LFS_POINTER):
        return (
            "it is a Git LFS pointer, not the file: fetch the file itself (git lfs pull) before packing "
            "model.tar.gz"
        )
    leading = LEADING_BYTES.get(path.name) or LEADING_BYTES.get(path.suffix)
    if leading is None or not head or head.startswith(leading):
        return ""
    return (
        f"it is not the {path.name} byoc's train writes (it starts with {head[:16]!r}): restore it from "
        "the training job's model.tar.gz"
    )


def _cut_short(path: Path, exc: Exception) -> bool:
    """Whether unpickling failed because the file ends early: an EOFError (an empty or compressed
    file), or a plain pickle (protocol 2 or later) without its closing STOP opcode, whatever
    error the cut made the unpickler raise (IndexError, ValueError, UnpicklingError)."""
    if isinstance(exc, EOFError):
        return True
    with open(path, "rb") as fh:
        if fh.read(1) != PICKLE_PREFIX:  # not a plain pickle (compressed, or another format): cannot tell
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"."


# the libraries whose versions decide whether a pickled pipeline loads and predicts the same
PICKLE_LIBRARIES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib")


def _versions_differ(metadata: Mapping[str, Any]) -> str:
    """'scikit-learn 1.3.2 (this image: 1.9.1), ...' for the libraries whose version in model.json
    is not this image's; empty when they agree or model.json does not say."""
    recorded = metadata.get("versions")
    if not isinstance(recorded, dict):
        return ""
    current = library_versions()
    return ", ".join(
        f"{name} {recorded[name]} (this image: {current[name]})"
        for name in PICKLE_LIBRARIES
        if name in recorded and name in current and str(recorded[name]) != current[name]
    )


def _compiled_file(metadata: Mapping[str, Any]) -> list[str]:
    """The compiled form's file (byoc.compiled reads it), checked like the listed files even when
    model.json's ``files`` leaves it out, so it is never loaded unverified or from outside."""
    entry = metadata.get("compiled")
    name = entry.get("file") if isinstance(entry, dict) else None
    return [str(name)] if name else []


def _is_regressor(estimator: Any) -> bool:
    """scikit-learn's ``is_regressor``; False for an object that is no scikit-learn estimator (it
    raises AttributeError for one without ``__sklearn_tags__``): which it is cannot be told."""
    from sklearn.base import is_regressor

    try:
        return bool(is_regressor(estimator))
    except AttributeError:
        return False


def check_agrees(estimator: Any, metadata: Mapping[str, Any], where: Path) -> None:
    """Refuse a model.json that does not describe ``estimator``: the server maps predicted indices
    to model.json's classes and reads its problem type, so a mismatch (a hand edit, files of two
    jobs) would answer wrong labels or class indices as regression values, not fail."""
    problem_type = metadata.get("problem_type")
    if problem_type not in PROBLEM_TYPES:
        raise ModelLoadError(
            f"{where}: problem_type {problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}; "
            "restore model.json from the training job's model.tar.gz"
        )
    try:
        predicted: int | None = len(estimator.classes_)
    except (AttributeError, TypeError):  # a regressor, or a classifier that does not say
        predicted = None
    classes = metadata.get("classes") or []
    if problem_type == REGRESSION and predicted is not None:
        raise ModelLoadError(
            f"{where}: problem_type is {REGRESSION} but {MODEL_FILE} holds a classifier of {predicted} "
            f"classes; {FROM_ONE_JOB}"
        )
    if problem_type != REGRESSION and predicted is None and _is_regressor(estimator):
        raise ModelLoadError(
            f"{where}: problem_type is {problem_type} but {MODEL_FILE} holds a regressor; {FROM_ONE_JOB}"
        )
    names = [str(f.get("name")) if isinstance(f, Mapping) else None for f in metadata.get("features") or []]
    try:
        fitted = [str(name) for name in estimator.feature_names_in_]
    except (AttributeError, TypeError):  # fitted on an array, or a pipeline that does not say
        fitted = None
    if fitted is not None and names != fitted:
        raise ModelLoadError(
            f"{where}: its features {names[:10]!r} are not the {len(fitted)} columns {MODEL_FILE} was "
            f"fitted on, in order ({fitted[:10]!r}); a request's columns would be read as others: "
            "restore both from one model.tar.gz"
        )
    if problem_type != REGRESSION and predicted is not None and predicted != len(classes):
        raise ModelLoadError(
            f"{where}: lists {len(classes)} classes {list(classes)[:10]!r} but {MODEL_FILE}'s classifier "
            f"predicts {predicted}; {FROM_ONE_JOB}"
        )
