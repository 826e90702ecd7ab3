"""`make demo`: the whole product on this machine in one command, without Docker or network.

Every step runs the real entry points (`container/train`, `container/serve`, `container/evaluate`)
against ML roots laid out like /opt/ml, and fails the demo (exit 1, naming the step and what did not
happen) when what it shows did not happen: CI runs `make demo`, so a broken product path fails it.

1. built-in algorithm: `train` fits the ensemble on local_test/test_dir, prints the metrics and the
   model's files; `serve` (gunicorn) answers the sample payloads as text/csv and application/json
   and stops on SIGTERM, as SageMaker stops a container;
2. AutoML: `algorithm=auto` on the same channels with a 25 s budget: the exploration, the
   leaderboard's top 3 and where report.html is; the chosen model served and asked one request;
3. bring your own library: examples/byol's train.py in script mode (its requirements.txt and its
   custom_ml_lib package pip-installed offline into a throwaway venv that sees this one's packages),
   then served through its inference.py hooks from the model's code/ folder, as the SDK repacks it;
4. multi-model endpoint: one `serve` with SAGEMAKER_MULTI_MODEL=true loads the models of steps 1
   and 2 under two names, invokes each, lists them, unloads them;
5. Processing: `evaluate` scores step 1's model on the validation channel and writes
   evaluation.json, SageMaker's model-quality format that Pipelines and the model registry read.

Models are trained once and reused by the later steps. Step 1 writes local_test/test_dir/{model,
output}, the others local_test/demo/ (report.html stays there to open): both are git-ignored and
replaced on every run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "local_test" / "test_dir"
DEMO = REPO / "local_test" / "demo"
PAYLOADS = REPO / "local_test" / "payloads"
BYOL = REPO / "examples" / "byol"
AUTO_BUDGET_SECONDS = 25
TRAIN_TIMEOUT_SECONDS = 600
WORKERS = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
OFFLINE = {"PIP_NO_INDEX": "1"}  # requirements.txt asks for what is installed: pip must not look further
CSV_ASKING_JSON = {"Content-Type": "text/csv", "Accept": "application/json"}
sys.path.insert(0, str(REPO / "tests"))

import support  # the project's one set of helpers to lay out ML roots and start train/serve/evaluate


class DemoFailed(Exception):
    """What a step shows did not happen (a non-200, a missing file, a non-zero exit)."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise DemoFailed(message)


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def short(name: str, width: int = 60) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."


def untimed(line: str) -> str:
    """A log line without its timestamp."""
    return re.sub(r"^\d{4}-\d\d-\d\d [\d:,]+ ", "", line.rstrip())


def reset_outputs(root: Path) -> None:
    """A previous run's model or failure file would stop this one (failures are never overwritten)."""
    for name in ("model", "output"):
        shutil.rmtree(root / name, ignore_errors=True)
        (root / name).mkdir()


def channels_of(root: Path, names: tuple[str, ...]) -> dict[str, dict[str, bytes]]:
    """The files of ``root``'s channels, to lay out another ML root on the same data."""
    data = root / "input" / "data"
    return {name: {p.name: p.read_bytes() for p in sorted((data / name).iterdir())} for name in names}


def request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
) -> tuple[int, str, str]:
    method = method or ("POST" if body is not None else "GET")
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def call(
    base: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> str:
    """One request, printed with its answer; anything but 200 fails the step."""
    status, ctype, text = request(base + path, body, headers, method)
    shown_headers = ", ".join(f"{k}: {v}" for k, v in (headers or {}).items())
    print(f"\n{method} {path}" + (f" ({shown_headers})" if shown_headers else "") + f" -> {status} {ctype}")
    print(text.rstrip() if len(text) < 2000 else text[:2000] + " ...")
    check(status == 200, f"{method} {path} answered {status}, not 200: {text[:500]}")
    return text


@contextlib.contextmanager
def serving(root: Path, env: dict[str, str] | None = None, python: str | None = None) -> Iterator[str]:
    """`container/serve` on a free port, once /ping answers; yields its URL. Stopped with SIGTERM
    afterwards; a server that does not exit 0 then fails the step."""
    server, port = support.start_serve(root, env={**WORKERS, **(env or {})}, python=python)
    extra = "".join(f"{k}={v} " for k, v in (env or {}).items())
    print(f"$ {extra}SAGEMAKER_BASE_DIR={shown(root)} container/serve   (on 127.0.0.1:{port})")
    finished = False
    try:
        support.wait_for_ping(port, server, timeout=120)
        print("GET /ping -> 200")
        yield f"http://127.0.0.1:{port}"
        finished = True
    finally:
        output = support.stop_process(server, timeout=35)
        print(f"\nSIGTERM -> serve exited with {server.returncode}")
        if not finished and output:
            print(f"serve's log (last lines):\n{output[-3000:]}", file=sys.stderr)
    check(server.returncode == 0, f"serve exited with {server.returncode}:\n{output[-4000:]}")


def train_shown(root: Path, log: Path, keep: Callable[[str], bool], **kwargs: Any) -> str:
    """`container/train` on ``root``; prints the lines ``keep`` accepts (without their timestamps),
    writes all of them to ``log`` and fails the step, with output/failure, on a non-zero exit."""
    print(f"$ SAGEMAKER_BASE_DIR={shown(root)} container/train   (whole log: {shown(log)})")
    proc = support.start_train(root, **kwargs)
    assert proc.stdout is not None
    watchdog = threading.Timer(TRAIN_TIMEOUT_SECONDS, proc.kill)  # a hung job must not hang CI
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if keep(line):
                print("  " + untimed(line), flush=True)
        code = proc.wait()
    finally:
        watchdog.cancel()
    log.write_text("".join(lines), encoding="utf-8")
    failure = support.read_failure(root)
    check(code == 0, f"train exited with {code}: {failure or ''.join(lines[-20:])}")
    return "".join(lines)


def builtin() -> None:
    """Step 1: the built-in ensemble trained, served and asked for predictions."""
    print(f"$ SAGEMAKER_BASE_DIR={shown(ROOT)} container/train")
    reset_outputs(ROOT)
    code = support.run_train(ROOT, timeout=TRAIN_TIMEOUT_SECONDS, capture=False).returncode
    check(code == 0, f"train exited with {code}: {support.read_failure(ROOT) or ''}")
    metrics = support.read_metrics(ROOT)
    check(metrics.get("validation"), "output/data/metrics.json holds no validation metrics")
    print("\nmetrics (output/data/metrics.json):\n" + json.dumps(metrics, indent=2))
    model = ROOT / "model"
    print(
        f"\nmodel written to {shown(model)}/: "
        + ", ".join(f"{p.name} ({p.stat().st_size:,} bytes)" for p in sorted(model.iterdir()))
    )
    section("serve the built-in model")
    with serving(ROOT) as url:
        call(url, "GET", "/execution-parameters")
        csv_payload = (PAYLOADS / "payload.csv").read_bytes()
        call(url, "POST", "/invocations", csv_payload, {"Content-Type": "text/csv", "Accept": "text/csv"})
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "output=predicted_label,probability",
        }
        call(url, "POST", "/invocations", (PAYLOADS / "records.json").read_bytes(), headers)


def saved_model(automl: dict[str, Any]) -> str:
    """What model.json's details.automl says was saved: one candidate, a blend or a stack."""
    if automl["stacked_members"]:
        what = f"stack of {', '.join(short(name, 40) for name in automl['stacked_members'])}"
    else:
        members = [f"{short(m['name'], 40)} ({m['weight']:.2f})" for m in automl["members"]]
        what = ("blend of " if len(members) > 1 else "") + ", ".join(members)
    score = automl["held_out_score"]
    shown_score = "n/a" if score is None else f"{score:.4f}"
    return f"{what}; held-out {automl['objective']}={shown_score} on {automl['evaluation']}"


def automl() -> None:
    """Step 2: algorithm=auto on step 1's channels, its leaderboard and report, its model served."""
    root = support.make_ml_root(
        DEMO / "automl",
        channels=channels_of(ROOT, ("train", "validation")),
        content_types={"train": "text/csv", "validation": "text/csv"},
        hyperparameters={
            "algorithm": "auto",
            "target": "deposit",
            "max_runtime_seconds": AUTO_BUDGET_SECONDS,
        },
    )
    config = root / "input" / "config" / "hyperparameters.json"
    print(f"{shown(config)} (each value JSON-encoded, as the SDK writes it): {config.read_text()}")
    log = train_shown(
        root,
        DEMO / "automl-train.log",
        lambda line: (
            ("byoc.automl" in line and not re.search(r"auto candidate |auto: skipping ", line))
            or line.startswith("validation:")
        ),
    )
    scored, skipped = log.count("auto candidate "), log.count("auto: skipping ")
    print(f"  (the whole log has {scored} 'auto candidate' lines and {skipped} 'auto: skipping' lines)")
    data = root / "output" / "data"
    for name in ("leaderboard.csv", "exploration.json", "report.html"):
        check((data / name).is_file(), f"algorithm=auto wrote no output/data/{name}")
    exploration = json.loads((data / "exploration.json").read_text(encoding="utf-8"))
    classes = ", ".join(f"{k} {v['share']:.1%}" for k, v in exploration["target"].get("classes", {}).items())
    print(
        f"\nexploration.json: {exploration['rows']} rows, {exploration['columns']} columns "
        f"({exploration['numeric_columns']} numeric, {exploration['categorical_columns']} categorical); "
        f"target: {classes}; warnings: {exploration['warnings'] or 'none'}"
    )
    with open(data / "leaderboard.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    completed = [row for row in rows if row["candidate_status"] == "Completed"]
    check(completed, f"leaderboard.csv has no Completed candidate ({len(rows)} rows)")
    print(
        f"\nleaderboard.csv: top 3 of {len(completed)} completed candidates ({len(rows)} rows; "
        "weight: the candidate's share of the saved model)"
    )
    for row in completed[:3]:
        print(
            f"  {row['rank']:>2}. {row['objective_metric']}={float(row['objective_value']):.4f}  "
            f"weight {float(row['ensemble_weight'] or 0):.2f}  {short(row['candidate_name'])}"
        )
    chosen = json.loads((root / "model" / "model.json").read_text(encoding="utf-8"))["details"]["automl"]
    check(chosen["members"] or chosen["stacked_members"], "model.json names no member of the saved model")
    print(f"saved model (model.json details.automl): {saved_model(chosen)}")
    print(f"\nreport: {shown(data / 'report.html')} (open it in a browser)")
    section("serve the AutoML model")
    with serving(root) as url:
        call(url, "POST", "/invocations", (PAYLOADS / "payload.csv").read_bytes(), CSV_ASKING_JSON)


def byol() -> None:
    """Step 3: examples/byol trained in script mode and served through its inference hooks."""
    base = DEMO / "byol"
    python = support.overlay_venv(base / "venv")  # pip installs custom_ml_lib there, not into this venv
    hyperparameters = {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": str(BYOL),
        "use-custom-ensemble": "true",
        "ensemble-rf": "true",
        "ensemble-gb": "false",
        "ensemble-lr": "true",
        "target": "deposit",
    }
    root = support.make_ml_root(
        base / "ml",
        channels=channels_of(ROOT, ("train",)),
        content_types={"train": "text/csv"},
        hyperparameters=hyperparameters,
    )
    print(
        f"entry point {shown(BYOL)}/train.py, its package and requirements.txt; pip offline (PIP_NO_INDEX=1)"
    )
    log = train_shown(
        root,
        DEMO / "byol-train.log",
        lambda line: bool(re.match(r"Successfully installed|member |train:|.*running the user script", line)),
        python=python,
        env=OFFLINE,
    )
    check("Successfully installed custom_ml_lib" in log, "script mode did not install custom_ml_lib")
    files = sorted(p.name for p in (root / "model").iterdir())
    check("model.joblib" in files, f"train.py wrote no model.joblib to SM_MODEL_DIR (only {files})")
    print(f"\nmodel written to {shown(root / 'model')}/: {', '.join(files)}")
    section("serve it through examples/byol/inference.py")
    endpoint = base / "endpoint"  # model.tar.gz as the SDK repacks it for entry_point="inference.py"
    shutil.copytree(root / "model", endpoint / "model")
    shutil.copytree(
        BYOL, endpoint / "model" / "code", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    print(
        f"model/code/ = a copy of {shown(BYOL)}: inference.py's model_fn, input_fn, predict_fn and "
        "output_fn answer; custom_ml_lib is imported from code/ (this venv has none), as on an endpoint"
    )
    payload = (PAYLOADS / "payload.csv").read_bytes()
    with serving(endpoint, env=OFFLINE) as url:
        answer = call(url, "POST", "/invocations", payload, CSV_ASKING_JSON)
    predictions = json.loads(answer).get("predictions")
    rows = len(payload.splitlines())
    check(
        isinstance(predictions, list) and len(predictions) == rows,
        f"inference.py's hooks answered {answer[:300]}, not {rows} predictions",
    )


def multi_model() -> None:
    """Step 4: one multi-model server holding step 1's and step 2's models."""
    base = DEMO / "multi-model"
    models = {"builtin": ROOT / "model", "automl": DEMO / "automl" / "model"}
    for name, source in models.items():  # where SageMaker unpacks each model.tar.gz
        shutil.copytree(source, base / "models" / name / "model")
    with serving(base, env={"SAGEMAKER_MULTI_MODEL": "true"}) as url:
        for name in models:
            load = {"model_name": name, "url": str(base / "models" / name / "model")}
            call(url, "POST", "/models", json.dumps(load).encode(), {"Content-Type": "application/json"})
        listed = json.loads(call(url, "GET", "/models"))
        names = sorted(m["modelName"] for m in listed["models"])
        check(names == sorted(models), f"GET /models listed {names}, not {sorted(models)}")
        for name in models:
            payload = (PAYLOADS / "payload.csv").read_bytes()
            call(url, "POST", f"/models/{name}/invoke", payload, CSV_ASKING_JSON)
        for name in models:
            call(url, "DELETE", f"/models/{name}")
        listed = json.loads(call(url, "GET", "/models"))
        check(not listed["models"], f"GET /models still lists {listed['models']} after the unloads")


def evaluation() -> None:
    """Step 5: the Processing step's `evaluate` on step 1's model and validation channel."""
    base = DEMO / "processing"  # laid out as a Processing job's /opt/ml/processing
    shutil.copytree(ROOT / "model", base / "model")
    shutil.copytree(ROOT / "input" / "data" / "validation", base / "test")
    args = (
        "--model",
        str(base / "model"),
        "--test",
        str(base / "test"),
        "--output",
        str(base / "evaluation"),
    )
    print("$ container/evaluate " + " ".join(shown(Path(a)) if a.startswith("/") else a for a in args))
    result = support.run_evaluate(base, *args)
    for line in (result.stdout + result.stderr).splitlines():
        if not line.startswith("test:"):  # the same values as evaluation.json, printed below
            print("  " + untimed(line))
    message = base / "output" / "message"
    check(
        result.returncode == 0,
        f"evaluate exited with {result.returncode}: "
        + (message.read_text(encoding="utf-8") if message.exists() else ""),
    )
    path = base / "evaluation" / "evaluation.json"
    check(path.is_file(), f"evaluate wrote no {shown(path)}")
    report = json.loads(path.read_text(encoding="utf-8"))
    metrics = report.get("binary_classification_metrics")
    check(metrics, f"evaluation.json has no binary_classification_metrics: {list(report)}")
    print(f"\n{shown(path)} (curves shortened here):")
    for name, metric in metrics.items():
        if name.endswith("_curve"):
            points = next((len(v) for v in metric.values() if isinstance(v, list)), "?")
            print(f"  {name}: {points} points")
        else:
            print(f"  {name}: {json.dumps(metric)}")


STEPS: list[tuple[str, Callable[[], None]]] = [
    ("1/5 built-in algorithm: train, serve, predict", builtin),
    (f"2/5 AutoML: algorithm=auto, {AUTO_BUDGET_SECONDS} s budget", automl),
    ("3/5 bring your own library: examples/byol", byol),
    ("4/5 multi-model endpoint: load, invoke, list, unload", multi_model),
    ("5/5 Processing: evaluate -> evaluation.json", evaluation),
]


def main() -> int:
    start = time.monotonic()
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir(parents=True)
    took = []
    for title, step in STEPS:
        section(title)
        began = time.monotonic()
        try:
            step()
        except (DemoFailed, AssertionError) as exc:  # AssertionError: support's waits (no /ping in time)
            print(f"\nmake demo FAILED at step {title}: {exc}", file=sys.stderr)
            return 1
        took.append(f"{title.split()[0]} {time.monotonic() - began:.0f} s")
    section(f"all {len(STEPS)} steps passed in {time.monotonic() - start:.0f} s ({', '.join(took)})")
    print(f"outputs: {shown(ROOT)}/model, {shown(ROOT)}/output, {shown(DEMO)}/ (git-ignored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
