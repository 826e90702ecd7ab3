"""The packages a user's requirements.txt may not replace: derived from what is installed, and
pip's conflict with one of them named (the installs themselves: test_train_user_script.py,
test_serve_hooks.py)."""

from __future__ import annotations

from importlib import metadata

from byoc import image_packages


def test_the_held_packages_are_the_roots_and_what_they_need_at_their_installed_versions():
    held = image_packages.held()
    for name in ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "flask", "gunicorn", "orjson"):
        assert held[name] == metadata.version(name), name
    assert held["threadpoolctl"] == metadata.version("threadpoolctl")  # scikit-learn's, not listed
    assert "importlib-metadata" not in held  # flask needs it only before Python 3.10


def test_the_packages_compiled_models_run_on_are_held_but_not_what_they_require():
    """A requirements.txt could replace the onnxruntime (or onnx, treelite) the server's compiled
    models run on; what those require (protobuf, flatbuffers, ...) user packages legitimately
    upgrade, so it stays free unless a root needs it."""
    held = image_packages.held()
    for name in ("onnxruntime", "onnx", "treelite"):
        assert held[name] == metadata.version(name), name
    for name in ("protobuf", "flatbuffers", "ml-dtypes", "packaging", "typing-extensions"):
        assert name not in held, name


def test_the_constraints_file_pins_each_held_package():
    with image_packages.constraints() as path:
        lines = path.read_text(encoding="utf-8").splitlines()
    assert f"numpy=={metadata.version('numpy')}" in lines
    assert len(lines) == len(image_packages.held())
    assert not path.exists()


def test_a_conflict_with_a_held_package_names_who_asked_and_the_images_version():
    causes = [
        "needs-old-numpy 1.0 depends on numpy<1",
        "The user requested scikit-learn==0.1",
        "The user requested (constraint) numpy==2.4.6",
        "The user requested (constraint) scikit-learn==1.9.1",
    ]
    message = image_packages.clash(causes, "requirements.txt")
    assert message is not None
    assert message.startswith(
        "requirements.txt would replace the image's numpy 2.4.6 (needs-old-numpy 1.0 depends on numpy<1) "
        "and scikit-learn 1.9.1 (requirements.txt asks for scikit-learn==0.1): "
    ), message


def test_a_conflict_between_the_users_own_requirements_is_not_the_images():
    causes = ["The user requested six==1.0", "The user requested six<1"]
    assert image_packages.clash(causes, "requirements.txt") is None
