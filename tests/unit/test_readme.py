"""README must match the code: its generated tables (hyperparameters, metrics, content types) and
its SageMaker SDK snippets (the SDK's real API, hyperparameters `train` accepts)."""

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_generated_sections_are_current():
    proc = subprocess.run(
        [sys.executable, "-m", "byoc.docs", str(REPO / "README.md"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"README is stale; run `make docs`:\n{proc.stdout}{proc.stderr}"


def test_readme_opens_with_the_two_setup_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    setup = text.index("make demo")
    assert setup < text.index("## Docker") < text.index("## Use it from the SageMaker Python SDK")
    assert text.index("make test") < text.index("## Docker")


def test_readme_setup_names_every_step_make_demo_and_make_test_take():
    """`make test` depends on `browser` (Chromium, installed with apt as root), which README's
    set-up did not mention: a user without root or on macOS saw it stop before any test."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    text = (REPO / "README.md").read_text(encoding="utf-8")
    setup = text[text.index("## Set-up") : text.index("## Docker")]
    for target in ("demo", "test"):
        found = re.search(rf"^{target}:(.*)$", makefile, re.M)
        assert found, f"Makefile has no {target} target"
        for step in found.group(1).split():
            assert step == "venv" or f"make {step}" in setup, f"README's set-up does not name `make {step}`"


def _python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_every_python_snippet_parses():
    blocks = _python_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        ast.parse(block)


def _accepted(target: Any) -> set[str] | None:
    """The keyword names ``target`` (a class or a method) takes; None when it takes any. A class
    whose ``__init__`` passes ``**kwargs`` on takes its bases' names too (SKLearn's role is
    Estimator's); a method that does is not checked."""
    functions = [klass.__init__ for klass in target.__mro__] if inspect.isclass(target) else [target]
    names: set[str] = set()
    for function in functions:
        parameters = inspect.signature(function).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return names if inspect.isclass(target) else None


def _literal_keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg is not None}


def _resolve(given: dict[str, Any], where: str) -> None:
    """Resolve hyperparameters as `train` does, spelled as the SDK v2 generic Estimator writes
    them (str() of each value); a refusal names the snippet."""
    from byoc.environment import decode_hyperparameter_value
    from byoc.errors import HyperparameterError
    from byoc.hyperparameters import resolve

    try:
        resolve({name: decode_hyperparameter_value(str(value)) for name, value in given.items()})
    except HyperparameterError as exc:
        pytest.fail(f"README snippet {where}: train refuses {given}: {exc}")


class _SdkSnippets:
    """Walks README's SDK v2 snippets in order, as a reader runs them one after the other."""

    RETURNS = {
        "deploy": ("sagemaker.predictor", "Predictor"),
        "transformer": ("sagemaker.transformer", "Transformer"),
    }

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}  # imported SDK classes
        self.kinds: dict[str, Any] = {}  # variable -> the SDK class of its value
        self.trains: dict[str, dict[str, Any]] = {}  # estimator variable -> its built-in hyperparameters
        self.calls = 0
        self.resolved = 0

    def resolve(self, given: dict[str, Any], where: str) -> None:
        _resolve(given, where)
        self.resolved += 1

    def block(self, source: str) -> None:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sagemaker"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    self.names[alias.asname or alias.name] = getattr(module, alias.name)
        for statement in tree.body:
            if isinstance(statement, (ast.Assign, ast.Expr)):
                for call in [n for n in ast.walk(statement.value) if isinstance(n, ast.Call)]:
                    self.call(call)
            if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call):
                target = statement.targets[0]
                assert isinstance(target, ast.Name)
                self.assign(target.id, statement.value)

    def call(self, call: ast.Call) -> None:
        """Every keyword of a call to an SDK class or to a method of an SDK object exists."""
        func, where = call.func, ast.unparse(call)[:70]
        if isinstance(func, ast.Name) and func.id in self.names:
            target = self.names[func.id]
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in self.kinds
        ):
            owner = self.kinds[func.value.id]
            target = getattr(owner, func.attr, None)
            assert target is not None, f"{where}: {owner.__name__} has no method {func.attr!r}"
            if func.attr == "set_hyperparameters" and func.value.id in self.trains:
                keywords = _literal_keywords(call)
                self.trains[func.value.id].update({k: ast.literal_eval(v) for k, v in keywords.items()})
                self.resolve(self.trains[func.value.id], where)
        else:
            return
        accepted = _accepted(target)
        unknown = set(_literal_keywords(call)) - (accepted or set())
        assert accepted is None or not unknown, f"{where}: {target.__qualname__} takes no {sorted(unknown)}"
        self.calls += 1

    def assign(self, name: str, call: ast.Call) -> None:
        self.kinds.pop(name, None)
        self.trains.pop(name, None)
        func, keywords = call.func, _literal_keywords(call)
        if isinstance(func, ast.Attribute) and func.attr in self.RETURNS:
            module, cls = self.RETURNS[func.attr]
            self.kinds[name] = getattr(importlib.import_module(module), cls)
        if not (isinstance(func, ast.Name) and func.id in self.names):
            return
        self.kinds[name] = self.names[func.id]
        if "hyperparameters" in keywords and not {"entry_point", "source_dir"} & set(keywords):
            self.trains[name] = ast.literal_eval(keywords["hyperparameters"])
            self.resolve(self.trains[name], f"{name} = {func.id}(...)")
        if func.id == "HyperparameterTuner":
            from byoc import metrics

            estimator = call.args[0]
            assert isinstance(estimator, ast.Name)
            ranges = keywords["hyperparameter_ranges"]
            assert isinstance(ranges, ast.Dict)
            lowest = {
                ast.literal_eval(key): ast.literal_eval(value.args[0])  # type: ignore[arg-type, attr-defined]
                for key, value in zip(ranges.keys, ranges.values, strict=True)
            }
            self.resolve({**self.trains[estimator.id], **lowest}, f"{name} = HyperparameterTuner(...)")
            objective = ast.literal_eval(keywords["objective_metric_name"])
            assert objective in {d["Name"] for d in metrics.metric_definitions()}, objective
            assert ast.literal_eval(keywords["objective_type"]) == metrics.objective(objective)


def test_sdk_v2_snippets_use_the_sdks_real_api_and_hyperparameters_train_accepts():
    """Each import, keyword and method of README's SageMaker SDK v2 snippets exists in the
    installed SDK, and the built-in hyperparameters they train with (set_hyperparameters and the
    tuner's ranges added) are ones `train` accepts: the AutoML snippet called set_hyperparameters
    on the random_forest estimator, keeping its n_estimators, which algorithm=auto refuses."""
    import sagemaker  # the test extras pin SDK v2 (pyproject.toml); v3's snippets run in tests/container

    assert int(sagemaker.__version__.split(".")[0]) == 2, sagemaker.__version__
    snippets = _SdkSnippets()
    for block in _python_blocks():
        if "ModelTrainer" not in block:  # SDK v3's: tests/container/test_sdk3.py runs them
            snippets.block(block)
    assert snippets.calls >= 25 and snippets.resolved >= 4, (snippets.calls, snippets.resolved)


def test_the_values_table_spells_numbers_as_categories_as_the_code_does():
    """The "Values" table's examples of a number as a category (`1.0` → `"1"`, `1e16` → `"1e+16"`)
    are byoc.values.category's spellings: it said every whole number lost its `.0`, where a float
    from 2**53 up is its repr (`9007199254740992.0`) and an integer of that value its digits."""
    from byoc import values

    text = (REPO / "README.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| a number (JSON, Parquet, npy) |"))
    examples = re.findall(r"`([^`]+)` → `\"([^`\"]+)\"`", row)
    assert len(examples) >= 3, row
    for given, spelled in examples:
        number = 2.0**53 if given == "2.0**53" else float(given)
        assert values.category(number) == spelled, given
    assert values.category(10**16) == "10000000000000000" and '`"10000000000000000"`' in row


def test_setup_quotes_the_line_make_demo_closes_with():
    """README said "the last line gives each step's time"; the last line names the outputs, the one
    before it (`=== all 5 steps passed in ... s (1/5 ... s, ...)`) gives the times."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    setup = " ".join(text[text.index("## Set-up") : text.index("## Docker")].split())
    assert "the last line gives each step's time" not in setup
    quoted = re.search(r"`=== all (\d+) steps passed in \d+ s \((1/\1 \d+ s), ", setup)
    assert quoted, "README's set-up does not quote make demo's closing line"
    demo = (REPO / "examples" / "demo.py").read_text(encoding="utf-8")
    steps = re.findall(r'^    \(f?"(\d+)/(\d+) ', demo, re.M)
    assert len(steps) == int(quoted.group(1)) and {total for _, total in steps} == {quoted.group(1)}
    closing = demo[demo.index('section(f"all {len(STEPS)} steps passed in') :]
    assert closing.count("print(") == 1 and "outputs:" in closing  # the times, then the outputs' line


def test_try_it_locally_shows_the_docker_run_train_local_sh_runs():
    """README's comment showed `docker run -v ... byoc-sklearn train`; the script runs it as the
    invoking user (`--user "$(id -u):$(id -g)"`): a model written by root is not what it does."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"^    local_test/train_local\.sh byoc-sklearn +# (docker run .*)$", text, re.M)
    assert shown, "README's Try it locally does not show train_local.sh's docker run"
    script = (REPO / "local_test" / "train_local.sh").read_text(encoding="utf-8")
    ran = re.search(r"^\s*exec (docker run .*)$", script, re.M)
    assert ran
    for option in re.findall(r"(--user|-v|--rm|train)\b", ran.group(1)):
        if option != "--rm":
            assert option in shown.group(1), f"README's comment leaves out {option}"
