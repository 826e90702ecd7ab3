"""The local paths a requirements.txt names that are missing, read as pip reads the file: what
is flagged, where it resolves, and what is left to pip (names, URLs, paths that exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from byoc.requirement_paths import MissingPath, failure_reason, missing
from byoc.user_script import MODEL_UPLOAD, TRAINING_UPLOAD


def flagged(tmp_path: Path, text: str, **files: str) -> list[tuple[str, int, str, Path]]:
    """(file name, line number, line, resolved path) of each missing path ``text`` names, for
    pip running in ``tmp_path/code`` (which holds ``files``)."""
    code = tmp_path / "code"
    code.mkdir()
    for name, content in files.items():
        path = code / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (code / "requirements.txt").write_text(text)
    return [(m.file.name, m.number, m.text, m.path) for m in missing(code / "requirements.txt", code)]


def test_nothing_local_or_everything_there_is_not_flagged(tmp_path):
    text = (
        "numpy>=1.0  # a comment with ./wheels/x.whl\n"
        "# ./wheels/commented-out.whl\n"
        "requests[socks] ; python_version >= '3.8'\n"
        "mypkg @ https://example.com/mypkg-1.0.tar.gz\n"
        "-e git+https://github.com/o/r.git#egg=r\n"
        "--find-links ./wheels\n"
        "./wheels/there-1.0-py3-none-any.whl --hash=sha256:00\n"
        "-e ./proj[dev]\n"
        "-r base.txt\n"
    )
    files = {"wheels__there-1.0-py3-none-any.whl": "", "proj__setup.py": "", "base.txt": "six\n"}
    assert flagged(tmp_path, text, **files) == []


def test_each_form_pip_reads_as_a_path_resolves_against_the_directory_pip_runs_in(tmp_path):
    code = tmp_path / "code"
    text = (
        "./wheels/a-1.0-py3-none-any.whl\n"
        "b-1.0.tar.gz\n"
        "-e ./proj_c\n"
        "--editable=proj_d\n"
        "file:vendor/e.tar.gz\n"
        "f @ file:./vendor/f.zip ; python_version >= '3'\n"
        "./g[extra]\n"
        "-c constraints.txt\n"
    )
    assert [(n, str(p.relative_to(code))) for _, n, _, p in flagged(tmp_path, text)] == [
        (1, "wheels/a-1.0-py3-none-any.whl"),
        (2, "b-1.0.tar.gz"),
        (3, "proj_c"),
        (4, "proj_d"),
        (5, "vendor/e.tar.gz"),
        (6, "vendor/f.zip"),
        (7, "g"),
        (8, "constraints.txt"),
    ]


def test_continued_lines_comments_and_variables_are_read_as_pip_reads_them(tmp_path, monkeypatch):
    monkeypatch.setenv("WHEELS", "vendored")
    text = "./wheels/x.whl \\\n  --hash=sha256:00\n\n${WHEELS}/y.whl # why\n${UNSET_BYOC_VAR}/z.whl\n"
    got = [(n, line, p.name, p.parent.name) for _, n, line, p in flagged(tmp_path, text)]
    assert got == [
        (1, "./wheels/x.whl   --hash=sha256:00", "x.whl", "wheels"),
        (4, "vendored/y.whl", "y.whl", "vendored"),
        (5, "${UNSET_BYOC_VAR}/z.whl", "z.whl", "${UNSET_BYOC_VAR}"),
    ]


def test_an_included_file_is_read_too_its_own_includes_relative_to_it_its_paths_to_pip(tmp_path):
    """pip resolves ``-r``/``-c`` against the including file, a requirement's path against its
    working directory."""
    files = {"reqs__base.txt": "-r more.txt\n./wheels/w.whl\n", "reqs__more.txt": "-r requirements.txt\n"}
    got = flagged(tmp_path, "-r reqs/base.txt\n", **files)
    code = tmp_path / "code"
    assert got == [  # in pip's order: an included file where the line including it is
        ("more.txt", 1, "-r requirements.txt", code / "reqs" / "requirements.txt"),
        ("base.txt", 2, "./wheels/w.whl", code / "wheels" / "w.whl"),
    ]


def test_a_find_links_folder_is_looked_for_beside_the_file_then_where_pip_runs(tmp_path):
    """pip takes a ``--find-links`` path relative to the requirements file when it is there, else
    as written (relative to its working directory); a ``file:`` URL is a path too, another URL
    pip's to reach."""
    text = (
        "--find-links ./wheels\n"
        "-f vendored\n"
        f"--find-links=file://{tmp_path}/local\n"
        "-fother\n"
        "--find-links https://example.com/wheels/\n"
        "-r reqs/more.txt\n"
    )
    files = {"reqs__more.txt": "-f here\n-f there\n", "reqs__here__x.whl": "", "there__y.whl": ""}
    code = tmp_path / "code"
    assert [(f, n, line, p) for f, n, line, p in flagged(tmp_path, text, **files)] == [
        ("requirements.txt", 1, "--find-links ./wheels", code / "wheels"),
        ("requirements.txt", 2, "-f vendored", code / "vendored"),
        ("requirements.txt", 3, f"--find-links=file://{tmp_path}/local", tmp_path / "local"),
        ("requirements.txt", 4, "-fother", code / "other"),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "./w/x.whl\n-e ../y\n",
            "requirements.txt line 1 (./w/x.whl) names {code}/w/x.whl, which is not in the source directory that "
            "was uploaded ({code}): put w/x.whl into source_dir (the code channel's sourcedir.tar.gz under "
            "network isolation), or drop the line; requirements.txt line 2 names a missing file too ({root}/y)",
        ),
        (
            "-r reqs.txt\n",
            "requirements.txt line 1 (-r reqs.txt) names {code}/reqs.txt, which is not in the source directory "
            "that was uploaded ({code}): put reqs.txt into source_dir (the code channel's sourcedir.tar.gz "
            "under network isolation), or drop the line",
        ),
    ],
)
def test_the_reason_names_the_line_the_path_and_the_fix(tmp_path, text, reason):
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text(text)
    absent = missing(code / "requirements.txt", code)
    assert failure_reason(absent, code, TRAINING_UPLOAD) == reason.format(code=code, root=tmp_path)


def test_a_models_inference_code_is_told_where_its_files_ship():
    """The same missing wheel in a model's inference code (serving installs its requirements.txt):
    the fix names model.tar.gz's code/, not a training job's code channel."""
    code = Path("/m/code")
    absent = [MissingPath(code / "requirements.txt", 1, "./w/x.whl", code / "w" / "x.whl")]
    reason = failure_reason(absent, code, MODEL_UPLOAD)
    assert "put w/x.whl into source_dir (code/ in model.tar.gz), or drop the line" in reason, reason
