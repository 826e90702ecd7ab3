"""The image's own packages, which a user's requirements.txt must not replace.

A pip install of a user's requirements (script mode, inference hooks, a multi-model endpoint's
model) runs in the interpreter that serves, or that pickles the model this image will serve.
A pin of another scikit-learn or numpy there replaced the files under a server that had already
imported them (old modules in memory, new ones on disk for the next worker and load), or trained
a model this image answers with another scikit-learn.  So every pip install byoc runs gets a
constraints file holding these packages at their installed versions: pip's own resolver then
refuses a clash before it replaces anything, and anything else installs as before.

The list is derived at run time: the distributions a model and the server are made of
(``ROOTS``) and everything they require, and the ones byoc's compiled inference runs on
(``COMPILED``) but not what those require (protobuf, packaging, flatbuffers: user packages
legitimately ask for newer ones, and byoc calls none of them), at the versions installed here.
An image built FROM this one with another version pins that version instead.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

# what a fitted model is (pickled estimators, arrays, frames) and what serves it (orjson: the
# request JSON it parses is proven json's for the version installed here, tests/unit/test_json_parse.py)
ROOTS = ("scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "joblib", "flask", "gunicorn", "orjson")
# what the server's compiled models run on (compiled.py, compiled_onnx.py): held themselves only
COMPILED = ("treelite", "onnx", "onnxruntime")

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# pip's "The conflict is caused by:" line for one of our constraints
_HELD = re.compile(r"^The user requested \(constraint\) ([A-Za-z0-9._-]+)==(\S+)$")
_REQUESTED = "The user requested "


def canonical(name: str) -> str:
    """PEP 503's normalised name: Scikit_Learn and scikit-learn are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(requirement: str) -> bool:
    """A requirement of an installed distribution that holds here (not an extra's, not another
    platform's or Python's)."""
    if ";" not in requirement:
        return True
    from packaging.markers import InvalidMarker, Marker

    try:
        return Marker(requirement.split(";", 1)[1]).evaluate({"extra": ""})
    except InvalidMarker:
        return False


def held() -> dict[str, str]:
    """{canonical name: installed version} of ROOTS and what they require, and of COMPILED,
    installed here."""
    found: dict[str, str] = {}
    # (name, whether its requirements are held too); ROOTS' are taken first (popped from the end)
    pending = [(name, False) for name in COMPILED] + [(name, True) for name in ROOTS]
    while pending:
        raw, follow = pending.pop()
        name = canonical(raw)
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist.version
        for requirement in (dist.requires or []) if follow else []:
            match = _NAME.match(requirement)
            if match and _applies(requirement):
                pending.append((match.group(1), True))
    return found


@contextlib.contextmanager
def constraints() -> Iterator[Path]:
    """A pip constraints file (``-c``) pinning the held packages to their installed versions."""
    with tempfile.TemporaryDirectory(prefix="byoc-constraints-") as folder:
        path = Path(folder, "image-packages.txt")
        text = "".join(f"{name}=={version}\n" for name, version in sorted(held().items()))
        path.write_text(text, encoding="utf-8")
        yield path


def clash(causes: list[str], source: str) -> str | None:
    """What to tell the user when pip's conflict (its "caused by" lines) is with a held package,
    or None when it is not.  pip decided the clash; this only names it."""
    pins = [(m.group(1), m.group(2)) for line in causes if (m := _HELD.match(line))]
    if not pins:
        return None
    parts = []
    for name, version in pins:
        asked = [_asker(line, source) for line in causes if not _HELD.match(line) and _mentions(line, name)]
        parts.append(f"{name} {version}" + (f" ({'; '.join(asked)})" if asked else ""))
    names = ", ".join(name for name, _ in pins)
    return (
        f"{source} would replace the image's {' and '.join(parts)}: byoc keeps the packages its "
        "server and models are made of as installed (replaced under a running server, or training a "
        "model with another version than the one serving it, they give wrong or failing answers far "
        f"from the cause); drop that pin from {source} (or choose a version of the package asking "
        f"for it that works with the image's {names}), or build an image FROM this one with the "
        "version you need (RUN pip install ...)"
    )


def _asker(line: str, source: str) -> str:
    """pip's "caused by" line as who asks: ``requirements.txt asks for numpy<1``, or pip's own
    ``needs-old-numpy 1.0 depends on numpy<1``."""
    if line.startswith(_REQUESTED):
        return f"{source} asks for {line.removeprefix(_REQUESTED)}"
    return line


def _mentions(line: str, name: str) -> bool:
    """A "caused by" line that asks for ``name`` (``x 1.0 depends on numpy<1``, ``The user
    requested numpy<1``, ``The user requested scikit-learn 0.1 (from ./x.whl)``)."""
    for part in (line.removeprefix(_REQUESTED), line.partition(" depends on ")[2]):
        match = _NAME.match(part)
        if match and canonical(match.group(1)) == canonical(name):
            return True
    return False
