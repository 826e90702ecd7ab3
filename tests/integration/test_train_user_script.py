"""Script mode through the real `container/train`: the user's entry point runs instead of a built-in
algorithm, the way the AWS training toolkit runs it (code dir, SM_* environment, `--key value`
arguments), with requirements and local packages installed first, failures reported by cause, and
a stop forwarded to the script's whole process group.

pip installs go into a throwaway venv layered over the test venv (support.overlay_venv), and
PIP_NO_INDEX=1 proves they work with no network."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import tarfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from support import (
    installed_versions,
    make_ml_root,
    overlay_venv,
    read_failure,
    read_until,
    run_train,
    script_root,
    start_train,
    stop_process,
    tiny_wheel,
    write_tree,
)

OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

# Writes what the script was given to model/seen.json, so the tests can compare it exactly.
RECORDER = textwrap.dedent(
    """\
    import json, os, sys
    seen = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "SAGEMAKER_"))},
    }
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as fh:
        json.dump(seen, fh)
    print("user script ran", flush=True)
    """
)


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> str:
    return overlay_venv(tmp_path_factory.mktemp("venv") / "overlay")


def seen(root: Path) -> dict[str, Any]:
    return json.loads((root / "model" / "seen.json").read_text())


def test_plain_script_gets_toolkit_arguments_and_environment(tmp_path, python):
    hyperparameters = {
        "n-estimators": 100,
        "learning_rate": 0.05,
        "use-custom-ensemble": True,
        "verbose": False,
        "criterion": "gini",
        "layers": [64, 32],
        "weights": {"rf": 2, "gb": 1},
        "seed": None,
        "k": 3,
        "sagemaker_region": "us-east-1",
        "sagemaker_container_log_level": 20,
        "_tuning_objective_metric": "validation:auc",
    }
    root = script_root(tmp_path, "train.py", {"train.py": RECORDER}, hyperparameters)
    result = run_train(root, python=python)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "user script ran" in result.stdout
    got = seen(root)
    # str() of each decoded value, sorted keys, dicts as k=v, None empty, one letter -> -k:
    # exactly the AWS training toolkit's command line; reserved keys are not passed.
    assert got["argv"] == [
        "--criterion", "gini",
        "-k", "3",
        "--layers", "[64, 32]",
        "--learning_rate", "0.05",
        "--n-estimators", "100",
        "--seed", "",
        "--use-custom-ensemble", "True",
        "--verbose", "False",
        "--weights", "gb=1,rf=2",
    ]  # fmt: skip
    assert Path(got["cwd"]) == root / "code"
    env = got["env"]
    assert json.loads(env["SM_USER_ARGS"]) == got["argv"]
    assert env["SM_MODULE_DIR"] == str(tmp_path / "source")
    assert env["SM_USER_ENTRY_POINT"] == "train.py" and env["SAGEMAKER_PROGRAM"] == "train.py"
    assert env["SM_MODEL_DIR"] == str(root / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    # documented by the toolkit beside SM_TRAINING_ENV; a script reading them got a KeyError
    assert json.loads(env["SM_RESOURCE_CONFIG"])["hosts"] == ["algo-1"]
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["TrainingInputMode"] == "File"
    assert env["SM_HP_N-ESTIMATORS"] == "100" and env["SM_HP_CRITERION"] == "gini"
    assert env["SM_HP_WEIGHTS"] == '{"gb":1,"rf":2}' and env["SM_HP_SEED"] == ""
    assert json.loads(env["SM_HPS"])["use-custom-ensemble"] is True
    assert not any(k.startswith("SM_HP_SAGEMAKER") or k == "SM_HP__TUNING_OBJECTIVE_METRIC" for k in env)
    assert (root / "code" / "train.py").is_file()
    assert read_failure(root) is None


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        # The generic Estimator writes str(): JSON-decoding keeps "None" and "True" as text,
        # as the toolkit does, and str() gives the same words back.
        (
            {"a1": "True", "a2": "None", "a3": "5", "a4": "gini", "a5": "[1, 2]"},
            ["True", "None", "5", "gini", "[1, 2]"],
        ),
        # SDK v3 ModelTrainer: strings raw, everything else json.dumps'd.
        (
            {"a1": "true", "a2": "null", "a3": "5.0", "a4": '"x y"', "a5": '{"b": 1, "a": "z"}'},
            ["True", "", "5.0", "x y", "a=z,b=1"],
        ),
    ],
    ids=["str-spelling", "json-spelling"],
)
def test_every_client_spelling_reaches_the_script_as_the_toolkit_passes_it(
    tmp_path, python, spelling, expected
):
    source = write_tree(tmp_path / "source", {"train.py": RECORDER})
    params = {"sagemaker_program": "train.py", "sagemaker_submit_directory": str(source), **spelling}
    root = make_ml_root(
        tmp_path / "ml", channels={"train": {"a.csv": "1\n"}}, hyperparameters=params, encoding="raw"
    )
    result = run_train(root, python=python)
    assert result.returncode == 0, result.stdout
    argv = seen(root)["argv"]
    assert argv[0::2] == ["--a1", "--a2", "--a3", "--a4", "--a5"]
    assert argv[1::2] == expected


def test_module_entry_point_from_a_package_source_dir(tmp_path, python):
    """A source dir with setup.py is pip-installed (offline) and its entry point runs as a module."""
    files = {
        "setup.py": "from setuptools import setup\nsetup(name='byoltestpkg', version='0.1', packages=['byoltestpkg'])\n",
        "byoltestpkg/__init__.py": "VALUE = 42\n",
        "byoltestpkg/trainer.py": RECORDER
        + "import byoltestpkg\nprint('package value', byoltestpkg.VALUE)\n",
    }
    root = script_root(tmp_path, "byoltestpkg.trainer", files, {"epochs": 2})
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "package value 42" in result.stdout
    assert "Successfully installed byoltestpkg-0.1" in result.stdout  # pip's output is in the log
    assert seen(root)["argv"] == ["--epochs", "2"]
    check = subprocess.run(
        [python, "-c", "import byoltestpkg, sys; print(byoltestpkg.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "site-packages" in check.stdout  # installed, not just found in the working directory


def test_the_source_directory_is_on_pythonpath_as_the_toolkit_puts_it(tmp_path, python):
    """A script in a sub-folder imports the source directory's packages, as under the toolkit
    (PYTHONPATH starts with /opt/ml/code); a relative import in it says how to fix that."""
    files = {
        "common/__init__.py": "",
        "common/util.py": "X = 7\n",
        "scripts/train.py": "from common import util\nprint('util says', util.X)\n",
        "pkg/__init__.py": "",
        "pkg/helper.py": "",
        "pkg/train.py": "from . import helper\n",
    }
    root = script_root(tmp_path, "scripts/train.py", files)
    result = run_train(root, python=python)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "util says 7" in result.stdout

    relative = script_root(tmp_path / "relative", "pkg/train.py", files)
    result = run_train(relative, python=python)
    assert result.returncode == 1
    first = read_failure(relative).splitlines()[0]
    assert first.startswith("ImportError: attempted relative import with no known parent package"), first
    assert "import absolutely from the source directory, which is on PYTHONPATH" in first, first


def test_shell_script_entry_point(tmp_path, python):
    files = {
        "train.sh": """\
            echo "shell args: $*"
            echo "$@" > "$SM_MODEL_DIR/args.txt"
            pwd > "$SM_MODEL_DIR/cwd.txt"
            """
    }
    root = script_root(tmp_path, "train.sh", files, {"alpha": 0.5, "name": "x"})
    result = run_train(root, python=python)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shell args: --alpha 0.5 --name x" in result.stdout
    assert (root / "model" / "args.txt").read_text().split() == ["--alpha", "0.5", "--name", "x"]
    assert Path((root / "model" / "cwd.txt").read_text().strip()) == root / "code"


def test_requirements_and_local_package_install_offline(tmp_path, python):
    """requirements.txt naming a vendored package by path, plus the source dir's own setup.py."""
    files = {
        "requirements.txt": "./vendor/byolhelper\n",
        "vendor/byolhelper/setup.py": "from setuptools import setup\nsetup(name='byolhelper', version='1.2', py_modules=['byolhelper'])\n",
        "vendor/byolhelper/byolhelper.py": "def greet():\n    return 'hello from byolhelper'\n",
        "setup.py": "from setuptools import setup\nsetup(name='byolcustomlib', version='0.3', packages=['byolcustomlib'])\n",
        "byolcustomlib/__init__.py": "NAME = 'custom'\n",
        "train.py": RECORDER
        + "import byolhelper, byolcustomlib\nprint(byolhelper.greet(), byolcustomlib.NAME)\n",
    }
    root = script_root(tmp_path, "train.py", files)
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from byolhelper custom" in result.stdout
    assert result.stdout.index("byolhelper-1.2") < result.stdout.index(
        "byolcustomlib-0.3"
    )  # requirements first


def test_a_script_that_saves_no_model_is_warned_naming_what_it_wrote_instead(tmp_path, python):
    """The job completes, as with the toolkit, but an empty model.tar.gz would only show when
    deploying: the log says so, and names a model saved to the working directory by mistake."""
    files = {"train.py": "import pickle\npickle.dump({'w': 1}, open('model.pkl', 'wb'))\n"}
    root = script_root(tmp_path, "train.py", files)
    result = run_train(root, python=python)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, result.stdout
    assert f"the user script train.py saved nothing in {root / 'model'} (SM_MODEL_DIR)" in warnings[0]
    assert f"it wrote model.pkl into its working directory {root / 'code'}, which is not" in warnings[0]

    saved = script_root(tmp_path / "saved", "train.py", {"train.py": RECORDER})
    result = run_train(saved, python=python)
    assert result.returncode == 0 and "WARNING" not in result.stdout, result.stdout


def _install_failure(tmp_path: Path, python: str, requirements: str) -> str:
    """The failure file's first line after installing ``requirements`` offline failed; the
    script must not have run."""
    root = script_root(tmp_path, "train.py", {"requirements.txt": requirements, "train.py": RECORDER})
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (root / "model" / "seen.json").exists()  # the script never ran
    return read_failure(root).splitlines()[0]


def test_requirements_failure_names_the_package_and_pips_error(tmp_path, python):
    first = _install_failure(tmp_path, python, "byoc-no-such-package-xyz==9.9\n")
    assert first.startswith(
        "pip could not install byoc-no-such-package-xyz==9.9 (from requirements.txt): ERROR:"
    )
    assert "No matching distribution found for byoc-no-such-package-xyz==9.9" in first


def test_requirements_that_conflict_name_both_and_not_pips_help_link(tmp_path, python):
    """pip's last line for a conflict is a generic "ResolutionImpossible: for help visit ...": the
    failure named a package "help". It names the clashing requirements and who asked for them."""
    root = _wheels_root(tmp_path, "byoc-unrelated==2.0\nbyoc-unrelated<2\n")  # pip sees the clash offline
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 1, result.stdout + result.stderr
    first = read_failure(root).splitlines()[0]
    assert first.startswith("pip could not install "), first
    assert "byoc-unrelated<2" in first and "byoc-unrelated==2.0" in first and "conflict" in first, first
    assert "help" not in first.split(":")[0] and "image" not in first, first
    assert "The user requested byoc-unrelated==2.0" in first, first


IMAGE_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib")


def _wheels_root(tmp_path: Path, requirements: str) -> Path:
    """A script-mode root whose source dir vendors tiny wheels (./wheels) that requirements.txt
    installs with no index: one named like the image's scikit-learn at another version, one that
    needs numpy<1, and one that needs nothing of the image's."""
    files = {
        "requirements.txt": "--no-index\n--find-links ./wheels\n" + requirements,
        "train.py": RECORDER
        + "from importlib import metadata\nprint('sklearn', metadata.version('scikit-learn'))\n",
    }
    root = script_root(tmp_path, "train.py", files)
    wheels = tmp_path / "source" / "wheels"
    tiny_wheel(wheels, "scikit-learn", "0.1.0")
    tiny_wheel(wheels, "needs-old-numpy", "1.0", ["numpy<1"])
    tiny_wheel(wheels, "byoc-unrelated", "2.0", ["six"])
    return root


@pytest.mark.parametrize(
    ("requirement", "named"),
    [
        ("scikit-learn==0.1.0\n", "requirements.txt asks for scikit-learn==0.1.0"),
        ("./wheels/scikit_learn-0.1.0-py3-none-any.whl\n", "requirements.txt asks for scikit-learn 0.1.0"),
        ("needs-old-numpy\n", "needs-old-numpy 1.0 depends on numpy<1"),
    ],
)
def test_a_requirement_that_would_replace_the_images_packages_fails_before_replacing_them(
    tmp_path, requirement, named
):
    """A pin of another scikit-learn (by name or by file), or a package that needs another numpy,
    trained the model with a library the same image's server does not have (pip replaced it in
    the job's interpreter).  The job fails before pip replaces anything, naming the package, what
    asked for which version, the image's version and the fixes."""
    python = overlay_venv(tmp_path / "venv")
    before = installed_versions(python, IMAGE_PACKAGES)
    root = _wheels_root(tmp_path, requirement)
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (root / "model" / "seen.json").exists()  # the script never ran
    first = read_failure(root).splitlines()[0]
    package = "numpy" if "numpy" in requirement else "scikit-learn"
    assert first.startswith(
        f"requirements.txt would replace the image's {package} {before[package]} ({named}"
    ), first
    assert "drop that pin from requirements.txt" in first, first
    assert "build an image FROM this one" in first, first
    assert installed_versions(python, IMAGE_PACKAGES) == before


def test_a_requirement_that_leaves_the_images_packages_alone_installs_as_before(tmp_path):
    python = overlay_venv(tmp_path / "venv")
    before = installed_versions(python, IMAGE_PACKAGES)
    root = _wheels_root(tmp_path, "byoc-unrelated\n")
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully installed byoc-unrelated-2.0" in result.stdout, result.stdout
    assert f"sklearn {before['scikit-learn']}" in result.stdout
    assert installed_versions(python, [*IMAGE_PACKAGES, "byoc-unrelated"]) == {
        **before,
        "byoc-unrelated": "2.0",
    }


def test_a_requirements_line_pip_cannot_parse_is_named_by_its_line(tmp_path, python):
    first = _install_failure(tmp_path, python, "# pinned\nnumpy\npandas>=>1\n")
    assert "requirements.txt line 3 is not a requirement pip understands" in first, first
    assert "'pandas>=>1'" in first and "make the package reachable" not in first, first


@pytest.mark.parametrize(
    ("requirements", "number", "named", "rel"),
    [
        (
            "numpy\n./wheels/mypkg-1.0-py3-none-any.whl\n",
            2,
            "./wheels/mypkg-1.0-py3-none-any.whl",
            "wheels/mypkg-1.0-py3-none-any.whl",
        ),
        ("# vendored\n-e ./mypkg\n", 2, "-e ./mypkg", "mypkg"),
        ("file:vendor/x.tar.gz\n", 1, "file:vendor/x.tar.gz", "vendor/x.tar.gz"),
        (
            "mypkg @ file:./vendor/mypkg-1.0.tar.gz ; python_version >= '3'\n",
            1,
            "mypkg @ file:./vendor/mypkg-1.0.tar.gz ; python_version >= '3'",
            "vendor/mypkg-1.0.tar.gz",
        ),
        ("-r base.txt\n", 1, "-r base.txt", "base.txt"),
        ("--find-links ./wheels\nmypkg==1.0\n", 1, "--find-links ./wheels", "wheels"),
        ("mypkg==1.0\n-f wheels\n", 2, "-f wheels", "wheels"),
    ],
    ids=["wheel", "editable", "file-url", "name-at-file-url", "nested-file", "find-links", "f"],
)
def test_a_requirements_line_naming_a_local_file_not_uploaded_is_named_with_the_fix(
    tmp_path, python, requirements, number, named, rel
):
    """A wheel, project folder or archive requirements.txt names by path, or a ``--find-links``
    folder, left out of source_dir: the failure named only "requirements.txt" (pip's OSError, for
    ``-e`` its message about VCS URLs, for ``--find-links`` "No matching distribution").  It names the line, the path it resolves to (pip runs in the code directory), that the
    uploaded source directory lacks it, and both fixes; pip's own output stays in the log."""
    root = script_root(tmp_path, "train.py", {"requirements.txt": requirements, "train.py": RECORDER})
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (root / "model" / "seen.json").exists()  # the script never ran
    code = root / "code"
    first = read_failure(root).splitlines()[0]
    assert first == (
        f"requirements.txt line {number} ({named}) names {code / rel}, which is not in the source directory "
        f"that was uploaded ({code}): put {rel} into source_dir (the code channel's sourcedir.tar.gz under "
        "network isolation), or drop the line"
    ), first
    assert "pip install" in result.stdout and "ERROR" in result.stdout, (
        result.stdout
    )  # pip's output is logged


def test_a_requirements_path_outside_the_source_directory_says_only_that_directory_is_uploaded(
    tmp_path, python
):
    """A path outside the source directory (an absolute one, or ../) exists only if the image holds
    it: the failure says so, and to ship the file in source_dir and name it relative to it."""
    missing = tmp_path / "elsewhere" / "mypkg-1.0-py3-none-any.whl"
    requirements = f"numpy\n{missing}\n../wheels/other-1.0-py3-none-any.whl\n"
    root = script_root(tmp_path, "train.py", {"requirements.txt": requirements, "train.py": RECORDER})
    result = run_train(root, python=python, env=OFFLINE)
    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    code = root / "code"
    assert failure.splitlines()[0] == (
        f"requirements.txt line 2 ({missing}) names {missing}, which does not exist: it is outside the "
        f"source directory that was uploaded ({code}), the only files of yours the job has; put "
        "mypkg-1.0-py3-none-any.whl into source_dir and name it by its path there "
        "(./mypkg-1.0-py3-none-any.whl), or drop the line; requirements.txt line 3 names a missing file too "
        f"({root / 'wheels' / 'other-1.0-py3-none-any.whl'})"
    ), failure
    assert "pip output (last lines):" in failure


def test_requirements_into_an_unwritable_image_name_the_site_packages_not_the_file(tmp_path):
    """`docker run --user 1000` cannot write the image's /opt/venv: pip's Permission denied was
    followed by "fix requirements.txt or make the package reachable", which is not what is wrong."""
    python = overlay_venv(tmp_path / "venv")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    files = {
        "requirements.txt": "./vendor/byolhelper\n",
        "vendor/byolhelper/setup.py": "from setuptools import setup\nsetup(name='byolhelper', version='1.2', py_modules=['byolhelper'])\n",
        "vendor/byolhelper/byolhelper.py": "X = 1\n",
        "train.py": RECORDER,
    }
    root = script_root(tmp_path, "train.py", files)
    Path(site).chmod(0o555)
    try:
        result = run_train(root, python=python, env=OFFLINE, unprivileged=True)
    finally:
        Path(site).chmod(0o755)
    assert result.returncode == 1, result.stdout[-3000:]
    first = read_failure(root).splitlines()[0]
    assert first.startswith("pip could not install requirements.txt (from requirements.txt): ERROR:"), first
    assert (
        f"{site} (the image's packages) is not writable by uid {os.getuid()}: run the container as root"
        in first
    )
    assert "make the package reachable" not in first


def tarball_root(tmp_path: Path, source: Path, arcname: str) -> Path:
    """An ML root (``tmp_path/ml-tar``) running train.py from tmp_path/sourcedir.tar.gz, which
    holds ``source`` packed as ``arcname``."""
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=arcname)
    return make_ml_root(
        tmp_path / "ml-tar",
        channels={"train": {"a.csv": "1\n"}},
        hyperparameters={"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive)},
    )


def test_tarball_and_code_channel_sources(tmp_path, python):
    """sourcedir.tar.gz given as a path, and as an s3:// URI whose tarball arrives as the `code`
    channel (SDK v2 under network isolation)."""
    source = write_tree(tmp_path / "source", {"train.py": RECORDER})
    tar_root = tarball_root(tmp_path, source / "train.py", "train.py")
    archive = tmp_path / "sourcedir.tar.gz"
    assert run_train(tar_root, python=python).returncode == 0
    assert Path(seen(tar_root)["cwd"]) == tar_root / "code"

    channel_root = make_ml_root(
        tmp_path / "ml-channel",
        channels={"train": {"a.csv": "1\n"}, "code": {"sourcedir.tar.gz": archive.read_bytes()}},
        hyperparameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": "s3://bucket/job/source/sourcedir.tar.gz",
        },
    )
    result = run_train(channel_root, python=python)
    assert result.returncode == 0, result.stdout
    assert seen(channel_root)["env"]["SM_MODULE_DIR"] == "s3://bucket/job/source/sourcedir.tar.gz"


@pytest.mark.parametrize(
    ("escaping", "link"), [("../escaped.py", None), ("data", "/etc")], ids=["dot-dot", "link-out"]
)
def test_a_tarball_with_a_member_outside_the_code_directory_unpacks_nothing(tmp_path, escaping, link):
    """The member is refused, and so were the ones before it, which were already unpacked into
    the code directory (tarfile checks each member as it reaches it)."""
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("train.py", "helper.py"):
            info = tarfile.TarInfo(name)
            info.size = len(RECORDER.encode())
            tar.addfile(info, io.BytesIO(RECORDER.encode()))
        info = tarfile.TarInfo(escaping)
        if link is not None:
            info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info, io.BytesIO(b""))
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.csv": "1\n"}},
        hyperparameters={"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive)},
    )
    result = run_train(root)
    assert result.returncode != 0, result.stdout + result.stderr
    first = read_failure(root).splitlines()[0]
    assert first.startswith(f"source code archive {archive} cannot be unpacked ("), first
    assert f"'{escaping}'" in first, first
    assert list((root / "code").iterdir()) == []
    assert not (root / "escaped.py").exists()
    assert list((root / "model").iterdir()) == []


def test_a_tarball_of_the_source_folder_itself_names_where_the_entry_point_is(tmp_path):
    """`tar -czf sourcedir.tar.gz src` packs the folder, so train.py lands in code/src/: the failure
    says where it is and both fixes, rather than only that the source directory holds `src`."""
    root = tarball_root(tmp_path, write_tree(tmp_path / "src", {"train.py": RECORDER}), "src")
    result = run_train(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert read_failure(root).splitlines()[0] == (
        f"entry point 'train.py' is not in the source directory {root / 'code'} (it holds: src); it is at "
        "src/train.py: the upload holds the folder src around the code, so set entry_point to src/train.py, "
        "or pack the folder's contents rather than the folder (tar -czf sourcedir.tar.gz -C src .)"
    )
    assert list((root / "model").iterdir()) == []


def test_sagemaker_program_environment_variable_selects_script_mode(tmp_path, python):
    root = make_ml_root(tmp_path / "ml", channels={"train": {"a.csv": "1\n"}}, hyperparameters={"x": 1})
    write_tree(root / "code", {"train.py": RECORDER})  # already staged where SageMaker puts it
    result = run_train(root, python=python, env={"SAGEMAKER_PROGRAM": "train.py"})
    assert result.returncode == 0, result.stdout
    assert seen(root)["argv"] == ["-x", "1"]  # one letter: -x, as the toolkit does


@pytest.mark.parametrize("key", ["sagemaker_progam", "SAGEMAKER_PROGRAM"])
def test_misspelt_sagemaker_program_is_refused_not_replaced_by_a_builtin(tmp_path, key):
    """A reserved-looking key is stripped: the built-in decision tree trained (exit 0) and the
    user's script never ran."""
    source = write_tree(tmp_path / "source", {"train.py": RECORDER})
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.csv": "".join(f"{i % 2},{i}\n" for i in range(40))}},
        hyperparameters={key: "train.py", "sagemaker_submit_directory": str(source)},
    )
    result = run_train(root)
    first_line = (read_failure(root) or "").splitlines()[0]
    assert result.returncode == 1, first_line or result.stdout[-2000:]
    assert first_line.startswith(
        f"hyperparameter '{key}' looks like 'sagemaker_program' misspelt, and no entry point is given"
    ), first_line
    assert list((root / "model").iterdir()) == []


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_sagemaker_program_is_named_as_empty_not_as_misspelt(tmp_path, value):
    """sagemaker_program given as null or "" was called a misspelling of itself ("hyperparameter
    'sagemaker_program' looks like 'sagemaker_program' misspelt")."""
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.csv": "".join(f"{i % 2},{i}\n" for i in range(40))}},
        hyperparameters={"sagemaker_program": value},
    )
    result = run_train(root)
    first_line = (read_failure(root) or "").splitlines()[0]
    assert result.returncode == 1, first_line or result.stdout[-2000:]
    assert first_line.startswith(
        f"hyperparameter 'sagemaker_program' is {'null' if value is None else 'empty'}: it names no entry point"
    ), first_line
    assert "misspelt" not in first_line
    assert list((root / "model").iterdir()) == []


def test_uncaught_exception_leads_the_failure_file(tmp_path, python):
    files = {
        "train.py": "import sys\nprint('starting', flush=True)\nraise ValueError(\"column 'age' holds text\")\n"
    }
    root = script_root(tmp_path, "train.py", files)
    result = run_train(root, python=python)
    assert result.returncode == 1
    assert "starting" in result.stdout  # the user's output reached the log
    assert "Traceback (most recent call last)" in result.stderr  # stderr streamed too
    failure = read_failure(root)
    assert failure.splitlines()[0].startswith(
        "ValueError: column 'age' holds text (raised by the user script train.py at train.py line 3, exit code 1)"
    )
    assert "Traceback" in failure  # the details follow the cause


def test_the_failure_names_the_line_of_the_source_directory_that_raised(tmp_path, python):
    """The user's file and line lead the failure file: of a helper module (the deepest frame in the
    source directory, not scikit-learn's), of a file that does not compile (the entry point itself:
    Python prints no "Traceback" line then), and a missing module says how to provide it."""
    cases = {
        "helper": {
            "train.py": "import helper\nhelper.fit()\n",
            "helper.py": "from sklearn.linear_model import LinearRegression\n\n"
            "def fit():\n    LinearRegression().fit([[1]], ['a'])\n",
        },
        "syntax": {"train.py": "import os\nx = = 1\n"},
        "missing": {"train.py": "import os\nimport xgboost_not_installed.core\n"},
        # messages longer than the stderr kept (64 KiB): the exception's start was lost with its name
        "many lines": {"train.py": "raise ValueError('bad rows:\\n' + '\\n'.join(map(str, range(20000))))\n"},
        "one long line": {"train.py": "raise ValueError('bad rows: ' + 'x' * 200000)\n"},
    }
    first = {}
    for name, files in cases.items():
        root = script_root(tmp_path / name, "train.py", files)
        result = run_train(root, python=python)
        assert result.returncode == 1, result.stdout + result.stderr
        first[name] = read_failure(root).splitlines()[0]
        assert list((root / "model").iterdir()) == []
    assert first["helper"].startswith("ValueError: "), first["helper"]
    assert first["helper"].endswith("(raised by the user script train.py at helper.py line 4, exit code 1)")
    assert first["syntax"] == (
        "SyntaxError: invalid syntax (raised by the user script train.py at train.py line 2, exit code 1)"
    )
    assert first["many lines"] == (
        "ValueError: bad rows: (raised by the user script train.py at train.py line 1, exit code 1)"
    )
    assert first["one long line"] == (  # cut, so that where it came from fits SageMaker's 1,024 characters
        f"ValueError: bad rows: {'x' * 478}... (raised by the user script train.py at train.py line 1, exit code 1)"
    )
    assert first["missing"] == (
        "ModuleNotFoundError: No module named 'xgboost_not_installed' (raised by the user script train.py "
        "at train.py line 2, exit code 1); if 'xgboost_not_installed' is a package, add the package that "
        "provides it to requirements.txt in the source directory (pip installs it before your code runs); "
        "if it is your own module, put xgboost_not_installed.py (or the folder xgboost_not_installed/) there"
    )


SAVE_AS_UTF8 = "Python reads a program as UTF-8: save the file as UTF-8"
OR_DECLARE = " (or declare its encoding on its first line, such as # -*- coding: latin-1 -*-)"


@pytest.mark.parametrize(
    ("program", "files", "said"),
    [
        (
            "train.py",
            {"train.py": "import os\n\nNAME = 'caf\u00e9'\n".encode("latin-1")},
            f"train.py: not UTF-8 text (byte 0xe9 at offset 22, line 3); {SAVE_AS_UTF8}{OR_DECLARE} "
            "(the user script train.py, exit code 1)",
        ),
        (
            "train.py",
            {
                "train.py": b"import helper\n",
                "helper.py": "X = 1\nNAME = 'caf\u00e9'\n".encode("latin-1"),
            },
            f"helper.py: not UTF-8 text (byte 0xe9 at offset 17, line 2); {SAVE_AS_UTF8}{OR_DECLARE} "
            "(imported by the user script train.py at train.py line 1, exit code 1)",
        ),
        (
            "train.py",
            {"train.py": "print('trained')\n".encode("utf-16")},
            f"train.py: UTF-16 text, not UTF-8; {SAVE_AS_UTF8} (the user script train.py, exit code 1)",
        ),
        (
            "pkg.train",
            {"pkg/__init__.py": b"", "pkg/train.py": "NAME = 'caf\u00e9'\n".encode("latin-1")},
            f"pkg/train.py: not UTF-8 text (byte 0xe9 at offset 11, line 1); {SAVE_AS_UTF8}{OR_DECLARE} "
            "(the user script pkg.train, exit code 1)",
        ),
    ],
    ids=["latin1", "latin1_module", "utf16", "module_entry_point"],
)
def test_a_script_that_is_not_utf8_is_named_with_its_byte_and_the_fix(tmp_path, python, program, files, said):
    """Python's words were the failure: "The user script train.py exited with code 1; the last line
    of its stderr: SyntaxError: Non-UTF-8 code starting with '\\xe9' in file /opt/ml/code/train.py
    on line 3, but no encoding declared; see https://peps.python.org/pep-0263/", or for an imported
    module "SyntaxError: (unicode error) 'utf-8' codec can't decode byte 0xe9 in position 3" (a
    position in a string literal). Now the file, the byte's offset and line, and the fix, as serving
    says it of an inference program (user_script.program_text, errors.not_utf8_at)."""
    root = script_root(tmp_path, program, {name: "" for name in files})
    for name, data in files.items():
        (tmp_path / "source" / name).write_bytes(data)
    result = run_train(root, python=python)
    assert result.returncode == 1, result.stdout + result.stderr
    assert read_failure(root).splitlines()[0] == said
    assert list((root / "model").iterdir()) == []


def test_exit_code_passes_through(tmp_path, python):
    root = script_root(
        tmp_path, "train.py", {"train.py": "import sys\nprint('bad config', file=sys.stderr)\nsys.exit(3)\n"}
    )
    result = run_train(root, python=python)
    assert result.returncode == 3
    assert read_failure(root).splitlines()[0] == (
        "The user script train.py exited with code 3; the last line of its stderr: bad config"
    )


def test_a_failed_script_leaves_no_partial_model(tmp_path):
    """A script that saved part of its model and then failed left it in model/, which SageMaker
    packs into model.tar.gz: the failure file said the job failed, the model directory held a
    model anyway."""
    script = """\
        import os
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pkl"), "w") as fh:
            fh.write("half a model")
        os.makedirs(os.path.join(os.environ["SM_MODEL_DIR"], "code"))
        raise ValueError("the second fit failed")
        """
    root = script_root(tmp_path, "train.py", {"train.py": script})
    result = run_train(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert read_failure(root).splitlines()[0].startswith("ValueError: the second fit failed (raised by")
    assert list((root / "model").iterdir()) == []


def test_a_stopped_script_leaves_no_partial_model(tmp_path):
    """The failure file said "no model was saved" while model/ kept what the script had saved
    before the stop, which SageMaker packs into model.tar.gz."""
    script = """\
        import os, time
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "part.pkl"), "w") as fh:
            fh.write("half a model")
        print("ready", flush=True)
        time.sleep(600)
        """
    root = script_root(tmp_path, "train.py", {"train.py": script})
    proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": "3"})
    read_until(proc, r"^ready$")
    out = stop_process(proc, timeout=60)
    assert proc.returncode == 143, out
    assert "no model was saved" in read_failure(root).splitlines()[0]
    assert list((root / "model").iterdir()) == [], out


def test_a_script_killed_by_a_realtime_signal_is_named_not_an_internal_error(tmp_path):
    """signal.Signals has no member for 35..63 but SIGRTMIN/SIGRTMAX: naming the signal raised
    ValueError, reported as a bug in byoc (exit 2) instead of the script's end."""
    script = "import os\nos.kill(os.getpid(), 40)\n"
    root = script_root(tmp_path, "train.py", {"train.py": script})
    result = run_train(root)
    assert result.returncode == 128 + 40, result.stdout + result.stderr
    assert read_failure(root).splitlines()[0] == "The user script train.py was killed by signal 40"


def test_the_failure_names_the_exception_that_ended_the_script(tmp_path, python):
    """A multi-line message: its type and first line, not its last line.  A handled exception
    (logged with its traceback) before a deliberate exit: the exit code, not that exception."""
    multiline = 'raise ValueError("All the 5 fits failed.\\nBelow are more details:\\n  bad label")\n'
    handled = """\
        import logging, sys
        try:
            import byoc_no_such_accelerator
        except ImportError:
            logging.exception("no accelerator, falling back")
        print("accuracy 0.41 is below the 0.8 gate", file=sys.stderr)
        sys.exit(2)
        """
    first = {}
    for name, script in (("multiline", multiline), ("handled", textwrap.dedent(handled))):
        root = script_root(tmp_path / name, "train.py", {"train.py": script})
        result = run_train(root, python=python)
        assert result.returncode == {"multiline": 1, "handled": 2}[name], result.stdout + result.stderr
        first[name] = read_failure(root).splitlines()[0]
    assert first["multiline"] == (
        "ValueError: All the 5 fits failed. (raised by the user script train.py at train.py line 1, exit code 1)"
    )
    assert first["handled"] == (
        "The user script train.py exited with code 2; the last line of its stderr: accuracy 0.41 is below "
        "the 0.8 gate"
    )


def test_a_failure_file_the_script_wrote_is_kept(tmp_path, python):
    script = """\
        import os, sys
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as fh:
            fh.write("my own reason: the label column is empty")
        sys.exit(1)
        """
    root = script_root(tmp_path, "train.py", {"train.py": script})
    result = run_train(root, python=python)
    assert result.returncode == 1
    assert read_failure(root) == "my own reason: the label column is empty"


def test_sigkill_is_reported_as_out_of_memory(tmp_path, python):
    script = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    root = script_root(tmp_path, "train.py", {"train.py": script})
    result = run_train(root, python=python)
    assert result.returncode == 137
    first = read_failure(root).splitlines()[0]
    assert "ran out of memory" in first and "killed by the kernel" in first
    assert "GiB of memory (" in first  # the container's memory figure


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.slow
def test_sigterm_reaches_the_whole_process_group_then_kill_after_grace(tmp_path, python):
    """The script ignores SIGTERM (after noting it) and has a child that ignores it too: both get
    the signal, both are killed when the grace period ends, and the failure file says stopped."""
    script = """\
        import os, signal, subprocess, sys, time
        marks = os.environ["SM_OUTPUT_DATA_DIR"]
        os.makedirs(marks, exist_ok=True)
        def noted(signum, frame):
            open(os.path.join(marks, "script-got-sigterm"), "w").close()
        signal.signal(signal.SIGTERM, noted)
        child = subprocess.Popen([sys.executable, "-c",
            "import os, signal, time\\n"
            "signal.signal(signal.SIGTERM, lambda s, f: open(os.path.join(%r, 'child-got-sigterm'), 'w').close())\\n"
            "time.sleep(600)" % marks])
        with open(os.path.join(marks, "pids"), "w") as fh:
            fh.write(f"{os.getpid()} {child.pid}")
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """
    root = script_root(tmp_path, "train.py", {"train.py": script})
    proc = start_train(root, python=python, env={"BYOC_STOP_GRACE_SECONDS": "3"})
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "ready":
                break
        pids_file = root / "output" / "data" / "pids"
        deadline = time.monotonic() + 30
        while not pids_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        script_pid, child_pid = map(int, pids_file.read_text().split())
        time.sleep(0.5)  # let the child install its handler
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, "".join(lines) + out
    marks = root / "output" / "data"
    assert (marks / "script-got-sigterm").exists() and (marks / "child-got-sigterm").exists()
    assert not _alive(script_pid) and not _alive(child_pid)
    first = read_failure(root).splitlines()[0]
    assert first.startswith("Training job stopped by SIGTERM") and "user script train.py" in first
    assert "killing its process group" in out


def _ended(pid: int, command: str) -> bool:
    """Whether ``pid`` (running ``command``) has ended, polled for up to 30 s; a process still
    running then is killed here, so a failing test leaves nothing behind."""
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _alive(pid):
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip() == command.encode():
            os.kill(pid, signal.SIGKILL)
    return False


@pytest.mark.parametrize(
    ("ending", "status", "streams"),
    [
        ("", 0, "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL"),
        ("raise ValueError('the fit failed')\n", 1, "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL"),
        ("sys.exit(3)\n", 3, ""),  # the child holds train's stdout and the script's stderr pipe
    ],
    ids=["exit-0", "exception", "exit-3-child-holds-output"],
)
def test_a_child_the_script_left_running_is_ended_when_the_script_ends(tmp_path, ending, status, streams):
    """Outside Docker nothing ended a process the script started and never waited for (in a
    container PID 1's exit does): `train` returned and `sleep 600` ran on; holding the script's
    stderr, it also held up the failure report.  It is ended, and logged; the exit code is the
    script's."""
    script = (
        "import os, subprocess, sys\n"
        "out = os.environ['SM_OUTPUT_DATA_DIR']\n"
        "os.makedirs(out, exist_ok=True)\n"
        f"child = subprocess.Popen(['sleep', '600'], {streams})\n"
        "with open(os.path.join(out, 'child.pid'), 'w') as fh:\n"
        "    fh.write(str(child.pid))\n" + ending
    )
    root = script_root(tmp_path, "train.py", {"train.py": script})
    try:
        result = run_train(root, timeout=120)
    finally:
        pid = int((root / "output" / "data" / "child.pid").read_text())
        ended = _ended(pid, "sleep 600")
    assert ended, f"the script's child {pid} still ran after train returned"
    assert result.returncode == status, result.stdout + result.stderr
    assert "ended 1 process the user script train.py left running (it did not wait for it" in result.stdout
    if status:
        assert (
            read_failure(root).splitlines()[0].startswith(("ValueError: the fit failed", "The user script"))
        )
    else:
        assert read_failure(root) is None


# Starts `sleep 600` as a daemon does: fork, setsid, fork again, the middle process exits at once
# (so `sleep` is an orphan in a session of its own, outside the script's), streams on /dev/null.
DAEMONISING_SCRIPT = """\
import os, sys, time
out = os.environ["SM_OUTPUT_DATA_DIR"]
os.makedirs(out, exist_ok=True)
read, write = os.pipe()
if os.fork() == 0:
    os.setsid()
    daemon = os.fork()
    if daemon == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.execvp("sleep", ["sleep", "600"])
    os.write(write, str(daemon).encode())
    os._exit(0)
os.close(write)
daemon = int(os.read(read, 32))
os.wait()
with open(os.path.join(out, "daemon.pid"), "w") as fh:
    fh.write(str(daemon))
"""


@pytest.mark.parametrize("ending", ["exit", "stop"])
def test_a_daemon_the_script_started_in_a_session_of_its_own_is_ended_with_the_job(tmp_path, ending):
    """A daemon (double fork into a new session) left the script's session, where train looked for
    what the script left running: outside Docker it outlived `train`, whether the script exited or
    the job was stopped.  train is a child subreaper, so the orphan is its own child, and ended."""
    script = DAEMONISING_SCRIPT + (
        'print("ready", flush=True)\ntime.sleep(600)\n' if ending == "stop" else ""
    )
    root = script_root(tmp_path, "train.py", {"train.py": script})
    pid_file = root / "output" / "data" / "daemon.pid"
    try:
        if ending == "stop":
            proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": "3"})
            read_until(proc, r"^ready$")
            out = stop_process(proc, timeout=60)
            status = proc.returncode
        else:
            result = run_train(root, timeout=120)
            out, status = result.stdout + result.stderr, result.returncode
    finally:
        pid = int(pid_file.read_text())
        ended = _ended(pid, "sleep 600")
    assert ended, f"the script's daemon {pid} still ran after train returned"
    assert status == {"exit": 0, "stop": 143}[ending], out
    if ending == "exit":
        assert "ended 1 process the user script train.py left running" in out
        assert f"sleep 600 (pid {pid})" in out
