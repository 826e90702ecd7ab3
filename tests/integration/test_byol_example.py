"""examples/byol/ (the "bring your own library" quick start) trained by the real `container/train`
in script mode, offline, the way an SKLearn-style estimator with source_dir runs it; its
inference.py hooks then load the model and predict, in-process and behind the real `serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import urllib.request

import pytest

from support import (
    REPO,
    csv_bytes,
    iris_frame,
    make_ml_root,
    overlay_venv,
    read_failure,
    run_train,
    start_serve,
    stop_process,
    wait_for_ping,
)

EXAMPLE = REPO / "examples" / "byol"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("byol")
    python = overlay_venv(base / "venv")
    frame = iris_frame().sample(frac=1.0, random_state=1).reset_index(drop=True)
    root = make_ml_root(
        base / "ml",
        channels={"train": {"iris.csv": csv_bytes(frame.iloc[:120], target="target", header=True)}},
        hyperparameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": str(EXAMPLE),
            "use-custom-ensemble": "true",  # as in the quick start: the SDK json-encodes the string
            "ensemble-rf": "true",
            "ensemble-gb": "false",
            "ensemble-lr": "true",
            "cv-folds": 3,
        },
    )
    result = run_train(root, python=python, env={"PIP_NO_INDEX": "1"})
    return root, python, frame.iloc[120:], result


def test_example_trains_with_its_library_installed(trained):
    root, _, _, result = trained
    assert result.returncode == 0, result.stdout + result.stderr + str(read_failure(root))
    assert "Successfully installed custom_ml_lib-1.0.0" in result.stdout
    weights = [line for line in result.stdout.splitlines() if line.startswith("member ")]
    assert [w.split(":")[0] for w in weights] == ["member rf", "member lr"]  # gb switched off
    assert float(result.stdout.split("train:accuracy=")[1].split()[0]) > 0.9
    assert sorted(p.name for p in (root / "model").iterdir()) == ["columns.json", "model.joblib"]


def test_example_inference_hooks_predict(trained):
    root, python, test, _ = trained
    body = csv_bytes(test.drop(columns=["target"]), target=None).decode()
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(EXAMPLE)!r})
        import inference
        model = inference.model_fn({str(root / "model")!r})
        data = inference.input_fn({body!r}, "text/csv")
        body, content_type = inference.output_fn(inference.predict_fn(data, model), "application/json")
        print(json.dumps([content_type, json.loads(body)]))
        """
    )
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True, cwd=root)
    content_type, document = json.loads(out.stdout.strip().splitlines()[-1])
    assert content_type == "application/json"
    predicted = document["predictions"]
    assert len(predicted) == len(test)
    accuracy = sum(p == t for p, t in zip(predicted, test["target"], strict=True)) / len(test)
    assert accuracy > 0.85


def test_example_serves_through_its_hooks(trained, tmp_path):
    """model.tar.gz as the SDK repacks it for an entry_point + source_dir model: code/ beside the
    artefacts; serve loads inference.py's model_fn (custom_ml_lib from code/) and answers CSV."""
    root, _, test, _ = trained
    shutil.copytree(root / "model", tmp_path / "model")
    shutil.copytree(
        EXAMPLE, tmp_path / "model" / "code", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    proc, port = start_serve(tmp_path, env={"PIP_NO_INDEX": "1"})
    try:
        wait_for_ping(port, proc, timeout=120)
        body = csv_bytes(test.drop(columns=["target"]), target=None)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            predicted = json.loads(response.read())["predictions"]
    finally:
        out = stop_process(proc)
    assert len(predicted) == len(test), out
    accuracy = sum(p == t for p, t in zip(predicted, test["target"], strict=True)) / len(test)
    assert accuracy > 0.85
