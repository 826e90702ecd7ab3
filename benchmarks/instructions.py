"""Instructions per single-row CSV request, counted by valgrind's callgrind: load-independent.

Wall-clock and CPU time move with the machine's load (other processes on the same cores) and
with the machine itself (the bare ceiling's CPU per request was 0.258 ms on one machine of the
CI type and 0.482 ms on another); an instruction count does neither, so a change to the request
path can be judged on a busy machine to well under 1%.  For each model this runs itself under
``valgrind --tool=callgrind --instr-atstart=no``: the child loads the model as the server does
(``benchmarks.serving.load_handler``, one math-library thread, ``gc.freeze()`` as ``serve``
does before forking), makes warm-up requests, and only then is instrumentation switched on
(``callgrind_control -i on``) for ``--requests`` requests, and off after them.  The counted
process hashes strings with ``PYTHONHASHSEED=0`` unless the variable is set.

Two paths (``--path``):

- ``app`` (default): the WSGI app ``create_app`` builds around the handler, called with the
  environ gunicorn gives a single-row POST /invocations (Content-Length framing,
  ``wsgi.input_terminated``): byoc's whole request path less gunicorn's own parsing and the
  access line, which the bare ceiling pays too.
- ``handler``: the handler alone (``benchmarks.serving.invoke_in_process``, the "handler
  in-process" column of benchmarks/serving.py).

Models are trained by the real ``container/train`` as benchmarks/single_row.py trains them
(``--keep DIR`` keeps the ML roots and reuses them).  ``--checkout DIR`` counts another
worktree's (or a ``git archive``'s) ``container/`` code on the same models, for an A/B; the
callgrind files stay in ``--out`` (``callgrind_annotate FILE``: where the instructions go).

    .venv/bin/python benchmarks/instructions.py [--models decision_tree,svm,knn,linear,random_forest]
        [--path app|handler] [--requests 200] [--keep DIR] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = "decision_tree,svm,knn,linear,random_forest"


def gunicorn_environ(body: bytes) -> dict:
    """The WSGI environ gunicorn's worker gives a single-row CSV POST /invocations."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/invocations",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "text/csv",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_ACCEPT": "text/csv",
        "HTTP_HOST": "127.0.0.1:8080",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def child(root: Path, checkout: Path, path: str, requests: int, flag: Path) -> None:
    """Under callgrind: load, warm up, signal ``flag``.ready, wait for ``flag``.go, make the
    requests, signal ``flag``.done and wait for its removal (instrumentation off)."""
    import functools
    import gc

    sys.path[:0] = [str(checkout / "tests"), str(checkout), str(checkout / "container")]
    from threadpoolctl import threadpool_limits

    from benchmarks.serving import invoke_in_process, load_handler, single_row_bodies
    from benchmarks.synthetic import synthetic_frame

    model_handler, settings = load_handler(root)
    threadpool_limits(1)
    body, _ = single_row_bodies(synthetic_frame(2000, seed=2))["csv row"]
    if path == "handler":
        run = functools.partial(invoke_in_process, model_handler, settings, body)
    else:
        from byoc.serving.app import create_app

        app = create_app(
            model_handler, environ={"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"}
        )

        def start_response(status: str, headers: list, exc_info: object = None) -> None:
            if status != "200 OK":
                raise SystemExit(f"the app answered {status}")

        def run() -> bytes:
            return b"".join(app(gunicorn_environ(body), start_response))

    for _ in range(50):
        run()
    gc.collect()
    gc.freeze()
    flag.with_suffix(".ready").touch()
    while not flag.with_suffix(".go").exists():
        time.sleep(0.05)
    for _ in range(requests):
        run()
    flag.with_suffix(".done").touch()
    while flag.with_suffix(".done").exists():
        time.sleep(0.05)


def count(root: Path, checkout: Path, path: str, requests: int, out: Path) -> int:
    """Instructions per request of ``root``'s model through ``checkout``'s code."""
    out.parent.mkdir(parents=True, exist_ok=True)
    flag = out.with_suffix("")
    for suffix in (".ready", ".go", ".done"):
        flag.with_suffix(suffix).unlink(missing_ok=True)
    argv = [sys.executable, __file__, "--child", str(root), str(checkout), path, str(requests), str(flag)]
    # one string-hash seed, so two runs of the same code hash and probe alike (a random seed changes
    # dict and set probe counts and set iteration order from run to run)
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def wait_for(suffix: str) -> None:
        while not flag.with_suffix(suffix).exists():
            if proc.poll() is not None:
                raise SystemExit(f"the counted process ended early:\n{proc.stderr.read()[-3000:]}")
            time.sleep(0.2)

    wait_for(".ready")
    subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
    flag.with_suffix(".go").touch()
    wait_for(".done")
    subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, check=True)
    flag.with_suffix(".done").unlink()
    proc.communicate()
    totals = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True).stdout
    match = re.search(r"^\s*([\d,]+)(?: \([^)]*\))?\s+PROGRAM TOTALS", totals, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no totals in {out}")
    return int(match.group(1).replace(",", "")) // requests


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        root, checkout, path, requests, flag = sys.argv[2:7]
        child(Path(root), Path(checkout), path, int(requests), Path(flag))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--path", choices=("app", "handler"), default="app")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the trained ML roots here")
    parser.add_argument("--train-rows", type=int, default=10000)
    parser.add_argument("--checkout", type=Path, action="append", default=[], help="also count this code")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "byoc-instructions")
    args = parser.parse_args()

    sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]
    from benchmarks.single_row import describe, trained

    args.retrain = False
    print(
        f"instructions per single-row CSV request ({args.path} path, {args.requests} requests, callgrind)\n"
    )
    print("| checkout | model | instructions / request |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        roots = {name: trained(base, name, args) for name in args.models.split(",")}
        for k, checkout in enumerate([REPO, *args.checkout]):
            for name, root in roots.items():
                out = args.out / f"{k}-{name.replace(' ', '_')}-{args.path}.callgrind"
                per_request = count(root, checkout.resolve(), args.path, args.requests, out)
                print(f"| {describe(checkout)} | {name} | {per_request:,} |", flush=True)
    print(f"\ncallgrind files: {args.out} (callgrind_annotate FILE)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
