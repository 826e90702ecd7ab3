"""byoc.artifact.load: what a model directory must hold, and every refusal naming the file."""

from __future__ import annotations

import codecs
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from byoc import artifact
from byoc.errors import ModelLoadError


def _model_dir(tmp_path: Path, estimator: Any, y: list[Any], problem_type: str, **extra: Any) -> Path:
    """``estimator`` fitted on one numeric feature ``x`` and saved as train saves a model."""
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    pipeline = Pipeline([("model", estimator.fit(X, y))])
    features = [artifact.Feature("x", "numeric", "float64").to_dict()]
    metadata = {"problem_type": problem_type, "algorithm": "decision_tree", "features": features, **extra}
    artifact.save(tmp_path / "model", pipeline, metadata)
    return tmp_path / "model"


def _classifier_dir(tmp_path: Path) -> Path:
    return _model_dir(
        tmp_path, DecisionTreeClassifier(), [0, 0, 1, 1], artifact.BINARY, classes=["no", "yes"]
    )


def _regressor_dir(tmp_path: Path) -> Path:
    return _model_dir(tmp_path, DecisionTreeRegressor(), [0.0, 0.5, 1.0, 1.5], artifact.REGRESSION)


def test_a_model_json_an_editor_saved_with_a_byte_order_mark_loads(tmp_path):
    model_dir = _classifier_dir(tmp_path)
    path = model_dir / artifact.METADATA_FILE
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    assert artifact.load(model_dir).classes == ["no", "yes"]


def _features(*names: str) -> list[dict[str, Any]]:
    return [artifact.Feature(name, "numeric", "float64").to_dict() for name in names]


def _two_feature_dir(tmp_path: Path) -> Path:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    pipeline = Pipeline([("model", DecisionTreeRegressor().fit(X, [0.0, 0.5, 1.0, 1.5]))])
    metadata = {
        "problem_type": artifact.REGRESSION,
        "algorithm": "decision_tree",
        "features": _features("a", "b"),
    }
    artifact.save(tmp_path / "model", pipeline, metadata)
    return tmp_path / "model"


def _edit(model_dir: Path, **changes: Any) -> None:
    path = model_dir / artifact.METADATA_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    document.update(changes)
    path.write_text(json.dumps(document), encoding="utf-8")


@pytest.mark.parametrize(
    ("make", "changes", "fragments"),
    [
        # three labels for two columns of probabilities; one label for an index of 1 (a 500)
        (_classifier_dir, {"classes": ["no", "yes", "maybe"]}, ["lists 3 classes", "predicts 2"]),
        (_classifier_dir, {"classes": ["no"]}, ["lists 1 classes", "predicts 2"]),
        # class indices served as regression values
        (_classifier_dir, {"problem_type": "regression"}, ["regression", "holds a classifier of 2 classes"]),
        (
            _regressor_dir,
            {"problem_type": "binary_classification", "classes": ["a", "b"]},
            ["holds a regressor"],
        ),
        (_classifier_dir, {"problem_type": "classification"}, ["'classification' is not one of"]),
        # headerless CSV columns are read in model.json's order: another order or name misreads them
        (
            _two_feature_dir,
            {"features": _features("b", "a")},
            ["['b', 'a'] are not the 2 columns", "['a', 'b']"],
        ),
        (_two_feature_dir, {"features": _features("a")}, ["['a'] are not the 2 columns"]),
    ],
)
def test_a_model_json_that_does_not_describe_model_joblib_is_refused_naming_it(
    tmp_path, make, changes, fragments
):
    """The server labels answers from model.json: one that disagrees with the pickled estimator
    would answer wrong labels that look right, so it is refused at load."""
    model_dir = make(tmp_path)
    _edit(model_dir, **changes)
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message.startswith(f"{model_dir / artifact.METADATA_FILE}: "), message
    assert all(fragment in message for fragment in fragments), message
    assert "restore both from one model.tar.gz" in message or "restore model.json" in message


def test_a_model_under_a_top_level_folder_loads_and_the_log_says_where(tmp_path, caplog):
    """``tar -czf model.tar.gz model/`` unpacks to /opt/ml/model/model/: the model is there."""
    _classifier_dir(tmp_path / "model")  # tmp_path/model/model/model.json
    (tmp_path / "model" / ".byoc-staging-x").mkdir()  # hidden folders are never a model
    (tmp_path / "model" / ".byoc-staging-x" / artifact.METADATA_FILE).write_text("{}")
    with caplog.at_level(logging.INFO, logger="byoc.artifact"):
        model = artifact.load(tmp_path / "model")
    assert model.path == tmp_path / "model" / "model" and model.classes == ["no", "yes"]
    assert f"model found in {tmp_path / 'model' / 'model'}, not at the top of {tmp_path / 'model'}" in (
        caplog.text
    )
    assert artifact.locate(tmp_path / "model" / "model") == tmp_path / "model" / "model"


def test_a_model_folder_reached_by_a_symbolic_link_is_found_and_a_link_loop_ends(tmp_path):
    _classifier_dir(tmp_path / "elsewhere")
    (tmp_path / "unpacked").mkdir()
    (tmp_path / "unpacked" / "model").symlink_to(tmp_path / "elsewhere" / "model")
    (tmp_path / "unpacked" / "loop").symlink_to(tmp_path / "unpacked")
    assert artifact.locate(tmp_path / "unpacked") == tmp_path / "unpacked" / "model"


def _with_compiled_file(model_dir: Path) -> Path:
    """``model_dir`` with a compiled file model.json lists and names as its compiled form."""
    compiled = model_dir / artifact.COMPILED_FILE
    compiled.write_bytes(b"PK\x03\x04 what training wrote")
    listed = {"sha256": artifact.sha256_of(compiled), "bytes": compiled.stat().st_size}
    files = {**json.loads((model_dir / artifact.METADATA_FILE).read_text())["files"], compiled.name: listed}
    _edit(model_dir, compiled={"file": compiled.name, "steps": []}, files=files)
    return compiled


@pytest.mark.parametrize("name", [artifact.METADATA_FILE, artifact.MODEL_FILE, artifact.COMPILED_FILE])
def test_a_model_file_linking_out_of_the_model_directory_is_refused_naming_it_and_links_within_load(
    tmp_path, name
):
    """A model.json, model.joblib or compiled file that is a symbolic link leading out of the model
    directory was read through it: serve and evaluate loaded another model's file (its sha256 matched,
    model.json copied beside) as this model's.  Now one line names the link, where it leads and the
    fix, by the rule a multi-model load applies; a link within the directory loads."""
    other = _classifier_dir(tmp_path / "other")
    _with_compiled_file(other)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for file in other.iterdir():
        if file.name == name:
            (model_dir / name).symlink_to(file)
        else:
            (model_dir / file.name).write_bytes(file.read_bytes())
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message == (
        f"{model_dir / name} is a symbolic link to {(other / name).resolve()}, outside the model directory "
        f"{model_dir.resolve()}: {artifact.LINK_OUT_FIX}"
    ), message
    assert "tar --dereference" in message and "\n" not in message

    (model_dir / name).unlink()
    (model_dir / "kept").mkdir()
    (model_dir / "kept" / name).write_bytes((other / name).read_bytes())
    (model_dir / name).symlink_to(Path("kept") / name)  # within the directory: read there
    assert artifact.load(model_dir).classes == ["no", "yes"]


@pytest.mark.parametrize("name", [artifact.METADATA_FILE, artifact.MODEL_FILE])
def test_a_model_file_that_is_a_symbolic_link_loop_is_named_as_one(tmp_path, name):
    """A model.json that is a link loop was "missing" (is_file() says False for it), and the line
    went on to say the directory held model.json; it ends with the loop named now."""
    model_dir = _classifier_dir(tmp_path)
    (model_dir / name).unlink()
    (model_dir / name).symlink_to(name)
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    assert str(raised.value) == f"{model_dir / name} is a symbolic link loop: remove the symbolic link loop"


def test_several_model_folders_and_none_at_the_top_are_refused_naming_them(tmp_path):
    _classifier_dir(tmp_path / "unpacked" / "a")
    _regressor_dir(tmp_path / "unpacked" / "b")
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(tmp_path / "unpacked")
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'unpacked'}: no model.json at its top but 2 folders"), message
    assert f"{tmp_path / 'unpacked' / 'a' / 'model'}, {tmp_path / 'unpacked' / 'b' / 'model'}" in message
    assert "put one model in each model.tar.gz" in message


def test_a_model_directory_without_model_json_says_what_it_holds_instead(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="the directory is empty: the training job saved no model"):
        artifact.load(tmp_path / "empty")
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "decision-tree-model.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(tmp_path / "pickle")
    assert (
        "it holds decision-tree-model.pkl: a model your own training script saved is served by a model_fn"
        in str(raised.value)
    )


def test_byoc_model_files_without_model_json_are_named_as_byocs_not_another_programs(tmp_path):
    """model.joblib and model.compiled.npz are the files train writes beside model.json: a directory
    holding them without it (model.json left out of a hand-made model.tar.gz) was called "a model
    your own training script saved", to be served by a model_fn."""
    model_dir = _classifier_dir(tmp_path)
    (model_dir / artifact.COMPILED_FILE).write_bytes(b"PK\x03\x04")
    (model_dir / artifact.METADATA_FILE).unlink()
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert (
        "it holds model.compiled.npz, model.joblib, byoc's model files without the model.json train writes"
        in message
    ), message
    assert "re-pack the whole model directory train wrote" in message and "model_fn" not in message, message
    (model_dir / artifact.COMPILED_FILE).unlink()  # model.joblib alone: a script may save one too
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert "a model your own training script saved is served by a model_fn" in message, message
    assert "a model.joblib byoc's train wrote needs its model.json: re-pack the whole model" in message


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("compiled", "yes", "'compiled' is a string (\"yes\"), not an object (or null"),
        ("compiled", [1], "'compiled' is a list, not an object (or null"),
        ("classes", 2, "'classes' is a number (2), not a list of the class labels"),
        ("files", "x", "'files' is a string (\"x\"), not an object of file name"),
        ("features", 1, "'features' is a number (1), not a list of objects, one per feature"),
        ("features", [1], "'features' is a list, not a list of objects, one per feature"),
        ("features", [{"name": 1, "kind": "numeric"}], "'name' of features[0] is a number (1), not a string"),
        # passed, for serve to stop with "cannot serve this model (KeyError: 'kind')"
        (
            "features",
            [{"name": "x", "dtype": "float64"}],
            "no 'kind' of features[0] (\"x\"); it must be one of numeric, categorical: ",
        ),
        # passed, to be refused as "its features ['None'] are not the 1 columns model.joblib was fitted on"
        (
            "features",
            [{"kind": "numeric", "dtype": "float64"}],
            "no 'name' of features[0]; it must be a string, the column's name: ",
        ),
        ("format_version", True, "'format_version' is a boolean (true), not an integer"),
    ],
    ids=[
        "compiled-string",
        "compiled-list",
        "classes-number",
        "files-string",
        "features-number",
        "features-of-numbers",
        "feature-name-number",
        "feature-kind-missing",
        "feature-name-missing",
        "format-version-true",
    ],
)
def test_a_model_json_entry_of_the_wrong_shape_is_a_load_error_naming_model_json_not_a_traceback(
    tmp_path, key, value, fragment
):
    """README: a corrupt model stops serve with one line naming the file.  A hand-edited model.json
    whose ``compiled``, ``classes`` or ``features`` is not the shape train writes stopped serve with
    a traceback (AttributeError: 'str' object has no attribute 'get'; TypeError: object of type
    'int' has no len()).  The entries tables refuse each one as model.json is read, naming the key
    and what it must be: loading has no catch-all left to reach (a generic "not the model.json
    byoc's train writes")."""
    from byoc.serving.builtin import ModelHandler
    from byoc.serving.settings import ServingSettings

    model_dir = _classifier_dir(tmp_path)
    path = model_dir / artifact.METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    for load in (artifact.load, lambda folder: ModelHandler.load(folder, ServingSettings())):
        with pytest.raises(ModelLoadError) as raised:
            load(model_dir)
        message = str(raised.value)
        assert message.startswith(f"{path}: ") and fragment in message, message
        assert message.endswith(artifact.RESTORE), message


@pytest.mark.parametrize("problem_type", [artifact.BINARY, artifact.REGRESSION])
def test_a_model_joblib_holding_no_estimator_is_named_not_model_json(tmp_path, problem_type):
    """A model.joblib that unpickles to something without predict (its sha256 recorded again, as
    a hand re-pack may do) was refused as "model.json: not the model.json byoc's train writes
    (AttributeError: ... __sklearn_tags__ ...)" for a classifier, blaming the wrong file, and loaded for
    a regressor, to fail at the warm-up.  The line names model.joblib and what it holds."""
    import joblib

    model_dir = _classifier_dir(tmp_path)
    joblib.dump({"not": "a pipeline"}, model_dir / artifact.MODEL_FILE)
    record = {"sha256": artifact.sha256_of(model_dir / artifact.MODEL_FILE), "bytes": 1}
    _edit(model_dir, problem_type=problem_type, files={artifact.MODEL_FILE: record})
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    assert str(raised.value) == (
        f"{model_dir / artifact.MODEL_FILE}: holds a dict without a predict method, not the fitted pipeline "
        "byoc's train writes: restore it from the training job's model.tar.gz"
    )


def _kind(document: dict[str, Any], kind: str) -> None:
    document["features"][0]["kind"] = kind


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        # two letters for two classes passed the class-count check: labels "a" and "b" were served
        (lambda d: d.update(classes="ab"), "'classes' is a string (\"ab\"), not a list of the class labels"),
        (lambda d: d.update(format_version=True), "'format_version' is a boolean (true), not an integer (1 "),
        # served until the warm-up prediction failed, naming neither model.json nor the kinds
        (
            lambda d: _kind(d, "banana"),
            '\'kind\' of features[0] ("x") is a string ("banana"), not one of numeric, categorical',
        ),
    ],
    ids=["classes", "format_version", "kind"],
)
def test_a_model_json_entry_of_the_wrong_type_that_passed_is_refused_naming_the_key(tmp_path, edit, fragment):
    """A string counted as a list of classes, true as 1 (Python's True == 1), any kind of feature:
    each hand edit passed model.json's reading and was served as something else."""
    model_dir = _classifier_dir(tmp_path)
    path = model_dir / artifact.METADATA_FILE
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and fragment in message, message
    assert message.endswith("restore model.json from the training job's model.tar.gz"), message


def test_a_model_directory_that_does_not_exist_or_is_a_file_says_so(tmp_path):
    """``docker run -p 8080:8080 IMAGE serve`` without mounting a model (the image has no /opt/ml):
    "/opt/ml/model/model.json: missing; the model directory must hold model.json and model.joblib",
    as for an empty directory, without saying the directory itself is not there."""
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(tmp_path / "model")
    message = str(raised.value)
    assert f"; {tmp_path / 'model'} does not exist:" in message, message
    assert "docker run -v" in message and "SAGEMAKER_BASE_DIR" in message, message
    (tmp_path / "model").write_text("x")
    with pytest.raises(ModelLoadError, match=f"; {tmp_path / 'model'} is a file, not a directory"):
        artifact.load(tmp_path / "model")


@pytest.mark.parametrize("archive", ["model.tar.gz", "model.tgz", "model.zip", "MODEL.TAR"])
def test_a_model_directory_holding_an_archive_says_it_was_packed_twice(tmp_path, archive):
    """A model.tar.gz holding another model.tar.gz (the training job's artefact packed again):
    SageMaker unpacks the outer one only.  The message sent the user to model_fn for "a model your
    own training script saved"."""
    (tmp_path / "unpacked").mkdir()
    (tmp_path / "unpacked" / archive).write_bytes(b"\x1f\x8b\x08\x00")
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(tmp_path / "unpacked")
    message = str(raised.value)
    assert f"it holds {archive}, an archive:" in message, message
    assert "tar -czf model.tar.gz -C" in message and "model_fn" not in message, message


@pytest.mark.parametrize(
    ("compiled_file", "fragment"),
    [
        ("model.compiled.npz", "model.json records no sha256 for it"),
        ("../model.compiled.npz", "which is not a file name"),
    ],
)
def test_a_compiled_file_model_json_does_not_list_is_never_loaded_unverified(
    tmp_path, compiled_file, fragment
):
    """byoc.compiled loads model.json's ``compiled.file``: one left out of ``files`` (or a path
    outside the model directory) would be read without its sha256 check."""
    model_dir = _classifier_dir(tmp_path)
    (model_dir / "model.compiled.npz").write_bytes(b"not what training wrote")
    (tmp_path / "model.compiled.npz").write_bytes(b"not what training wrote")
    _edit(model_dir, compiled={"file": compiled_file, "steps": []})
    with pytest.raises(ModelLoadError, match=fragment):
        artifact.load(model_dir)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_compiled_file_does_not_stop_a_server_that_switched_compiled_inference_off(
    tmp_path, caplog, damage
):
    """BYOC_COMPILED_INFERENCE=off "ignores" the compiled form (README), yet a corrupt or missing
    model.compiled.npz still stopped serve: the documented switch could not get a model whose
    model.joblib is intact served.  With it on, the refusal names the switch."""
    from byoc.serving.builtin import ModelHandler
    from byoc.serving.settings import ServingSettings

    model_dir = _classifier_dir(tmp_path)
    compiled = model_dir / "model.compiled.npz"
    compiled.write_bytes(b"what training wrote")
    listed = {"sha256": artifact.sha256_of(compiled), "bytes": compiled.stat().st_size}
    files = {**json.loads((model_dir / artifact.METADATA_FILE).read_text())["files"], compiled.name: listed}
    _edit(model_dir, compiled={"file": compiled.name, "steps": []}, files=files)
    if damage == "corrupt":
        compiled.write_bytes(b"what training wrote, flipped")
    else:
        compiled.unlink()
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    assert str(raised.value).startswith(f"{compiled}: ") and "BYOC_COMPILED_INFERENCE=off" in str(
        raised.value
    )
    with caplog.at_level(logging.WARNING, logger="byoc.artifact"):
        handler = ModelHandler.load(model_dir, ServingSettings(compiled_inference=False))
    assert handler.predictor.model.classes == ["no", "yes"]
    assert f"{compiled}: " in caplog.text and "BYOC_COMPILED_INFERENCE=off" in caplog.text, caplog.text
    with pytest.raises(ModelLoadError):
        ModelHandler.load(model_dir, ServingSettings(compiled_inference=True))


def test_a_model_written_with_other_library_versions_names_them(tmp_path, caplog):
    """A pickle of another scikit-learn may not load, or load and answer otherwise: the line that
    refuses it, or a warning when it loads, names the versions on both sides."""
    model_dir = _classifier_dir(tmp_path)
    _edit(model_dir, versions={"scikit-learn": "0.0.1", "numpy": np.__version__})
    with caplog.at_level(logging.WARNING, logger="byoc.artifact"):
        artifact.load(model_dir)
    assert "scikit-learn 0.0.1 (this image: " in caplog.text and "numpy" not in caplog.text
    joblib_file = model_dir / artifact.MODEL_FILE
    joblib_file.write_bytes(
        b"\x80\x02csklearn.module_of_a_later_release\nEstimator\n."
    )  # PROTO 2, as joblib writes
    digest = artifact.sha256_of(joblib_file)
    _edit(model_dir, files={artifact.MODEL_FILE: {"sha256": digest}})
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert (
        "ModuleNotFoundError" in message and "it was written with scikit-learn 0.0.1 (this image: " in message
    )


def test_a_model_json_that_is_not_an_object_says_so(tmp_path):
    """An array or a string is not a model.json with a wrong format_version: "retrain" would not help."""
    model_dir = _classifier_dir(tmp_path)
    (model_dir / artifact.METADATA_FILE).write_text("[]", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="holds a list, not the object byoc's train writes"):
        artifact.load(model_dir)


@pytest.mark.parametrize(
    ("version", "fragments"),
    [
        (
            2,
            [
                "format_version 2 is a newer byoc's (byoc 9.0.0) than this image's (byoc ",
                "serve it with the image",
            ],
        ),
        (None, ["has no format_version, so byoc's train did not write it", "model_fn"]),
        (0, ["format_version 0 is not 1; retrain the model with this image"]),
    ],
)
def test_a_model_json_of_another_format_says_which_fix_works(tmp_path, version, fragments):
    """A newer byoc's model is not fixed by retraining with this older image: say who wrote it."""
    model_dir = _classifier_dir(tmp_path)
    path = model_dir / artifact.METADATA_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    document["versions"]["byoc"] = "9.0.0"
    document.pop("format_version")
    if version is not None:
        document["format_version"] = version
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and all(fragment in message for fragment in fragments), message


def test_a_model_directory_with_only_model_json_asks_for_both_files(tmp_path):
    model_dir = _classifier_dir(tmp_path)
    (model_dir / artifact.MODEL_FILE).unlink()
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    assert str(raised.value) == (
        f"{model_dir / artifact.MODEL_FILE}: missing; model.json refers to it: restore both from one "
        "model.tar.gz of the training job"
    )


@pytest.mark.parametrize("keep", [0, 0.1, 0.3, 0.5, 0.6, 0.75, 0.9, 0.99])
def test_a_cut_short_model_joblib_says_it_ends_early(tmp_path, keep):
    """An interrupted copy whose sha256 was recorded again (or a model.json edited to match) fails
    to unpickle with an empty EOFError or a ValueError from joblib's arrays: say what happened."""
    model_dir = _classifier_dir(tmp_path)
    joblib_file = model_dir / artifact.MODEL_FILE
    data = joblib_file.read_bytes()
    joblib_file.write_bytes(data[: int(len(data) * keep)])
    _edit(model_dir, files={artifact.MODEL_FILE: {"sha256": artifact.sha256_of(joblib_file)}})
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message.startswith(f"{joblib_file}: cannot be loaded ("), message
    assert "the file ends early, cut short by an interrupted copy" in message, message


def test_a_cut_short_model_joblib_whose_sha256_differs_says_how_much_is_there(tmp_path):
    model_dir = _classifier_dir(tmp_path)
    joblib_file = model_dir / artifact.MODEL_FILE
    whole = joblib_file.stat().st_size
    joblib_file.write_bytes(joblib_file.read_bytes()[:100])
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message.startswith(f"{joblib_file}: sha256 "), message
    assert f"it has 100 of the {whole} bytes recorded, cut short by an interrupted copy" in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 21491\n",
            "is a Git LFS pointer, not the file: fetch the file itself (git lfs pull)",
        ),
        (
            b"hello, not a pickle\n",
            "is not the model.joblib byoc's train writes (it starts with b'hello, not a pic'",
        ),
    ],
)
def test_a_model_joblib_replaced_by_a_shorter_file_of_another_kind_is_not_called_cut_short(
    tmp_path, content, fragment
):
    """A smaller file of another kind was said to be "cut short by an interrupted copy": a model
    kept in Git LFS and packed without ``git lfs pull`` leaves the pointer file in its place."""
    model_dir = _classifier_dir(tmp_path)
    joblib_file = model_dir / artifact.MODEL_FILE
    joblib_file.write_bytes(content)
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message.startswith(f"{joblib_file}: sha256 ") and fragment in message, message
    assert "cut short" not in message, message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            b"hello, not a pickle but a text file long enough to be read as one: " * 40,
            "is not the model.joblib byoc's train writes (it starts with b'hello, not a pic'",
        ),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 21491\n",
            "is a Git LFS pointer, not the file: fetch the file itself (git lfs pull)",
        ),
    ],
)
def test_a_model_joblib_of_another_kind_whose_sha256_matches_says_it_is_not_a_model_train_wrote(
    tmp_path, content, fragment
):
    """model.json edited (or its sha256 recorded again) to match a file that is no pickle: a bare
    "cannot be loaded (UnpicklingError: Memo value not found at index 101)", naming no cause."""
    model_dir = _classifier_dir(tmp_path)
    joblib_file = model_dir / artifact.MODEL_FILE
    joblib_file.write_bytes(content)
    _edit(model_dir, files={artifact.MODEL_FILE: {"sha256": artifact.sha256_of(joblib_file)}})
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(model_dir)
    message = str(raised.value)
    assert message.startswith(f"{joblib_file}: cannot be loaded ("), message
    assert fragment in message and "cut short" not in message, message


def test_a_model_json_that_is_a_git_lfs_pointer_says_so(tmp_path):
    """Said "not readable JSON (Expecting value: line 1 column 1 (char 0))"."""
    model_dir = _classifier_dir(tmp_path)
    (model_dir / artifact.METADATA_FILE).write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:1\n"
    )
    with pytest.raises(
        ModelLoadError, match=r"model.json: it is a Git LFS pointer, not the file: .*git lfs pull"
    ):
        artifact.load(model_dir)


def test_a_model_directory_that_is_a_dangling_link_names_the_link_and_its_target(tmp_path):
    (tmp_path / "model").symlink_to(tmp_path / "gone")
    with pytest.raises(ModelLoadError) as raised:
        artifact.load(tmp_path / "model")
    assert f"{tmp_path / 'model'} is a symbolic link to {tmp_path / 'gone'}, which does not exist" in str(
        raised.value
    )


def test_the_feature_kinds_model_json_may_hold_are_the_encoders_own():
    """artifact checks model.json without importing scikit-learn, so it names the kinds itself; they
    must stay the encoder's (a kind added there and not here would refuse every model using it)."""
    from byoc import preprocessing

    assert set(artifact.FEATURE_KINDS) == {preprocessing.NUMERIC, preprocessing.CATEGORICAL}
