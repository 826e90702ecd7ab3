"""How user hooks are bound (context or not), which exceptions keep their HTTP status, and how a
hook's failure or unusable answer is named to the client."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import logging
import re
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from byoc.errors import ConfigError, HookError, ModelLoadError, UserError
from byoc.serving import codecs, hooks
from byoc.serving.handler import InferenceRequest
from byoc.serving.hooks import ByocHooks, Context, Hook, HooksHandler, UserCode, locate_code
from byoc.serving.output import Prediction
from byoc.serving.settings import ServingSettings
from support import save_constant_model


@pytest.fixture(autouse=True)
def _own_server(tmp_path):
    """Each test is a server of its own (as each serve process is): the programs it imported leave
    sys.modules, and their folders sys.path, with it."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None)).startswith(str(tmp_path) + "/"):
            del sys.modules[name]


def _module(**functions) -> types.ModuleType:
    module = types.ModuleType("inference")
    module.__dict__.update(functions)
    return module


@pytest.mark.parametrize(
    "fn,takes_context",
    [
        (lambda input_data, model: None, False),
        (lambda input_data, model, context: None, True),
        (lambda input_data, model, context=None: None, True),
        (lambda input_data, model, extra=None: None, False),  # an optional argument is not a context
        (lambda *args: None, False),
    ],
)
def test_context_is_passed_only_to_hooks_that_take_it(fn, takes_context):
    hook = Hook.bind(_module(predict_fn=fn), "predict_fn", "inference.py")
    assert hook is not None and hook.takes_context is takes_context


@pytest.mark.parametrize("fn", [lambda body: None, lambda a, b, c, d: None, "not a function"])
def test_a_hook_with_the_wrong_shape_is_a_start_up_error(fn):
    with pytest.raises(ConfigError, match=r"input_fn\(request_body, content_type\[, context\]\)"):
        Hook.bind(_module(input_fn=fn), "input_fn", "inference.py")


class _Status(Exception):
    def __init__(self, status_code, message="nope"):
        super().__init__(message)
        self.status_code = status_code


@pytest.mark.parametrize("status,kept", [(404, True), (499, True), (400, True), (500, False), (True, False)])
def test_only_a_4xx_status_code_is_kept(status, kept):
    def predict_fn(input_data, model):
        raise _Status(status)

    hook = Hook.bind(_module(predict_fn=predict_fn), "predict_fn", "inference.py")
    with pytest.raises(UserError) as caught:
        hook(None, None, context=Context("/opt/ml/model"))
    if kept:
        assert caught.value.status == status and caught.value.message == "nope"
    else:  # the hook's own failure: a 500 naming it
        assert isinstance(caught.value, HookError) and caught.value.code == "hook_failed"
        assert caught.value.status == 500 and "nope" not in caught.value.message


def _program(tmp_path: Path, code: str, **helpers: str) -> Path:
    for name, text in helpers.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
    program = tmp_path / "inference.py"
    program.write_text(textwrap.dedent(code), encoding="utf-8")
    return program


def test_a_hook_that_raises_is_a_500_naming_the_hook_the_type_and_the_line_not_the_message(tmp_path, caplog):
    """The client learns which hook failed, how and where, so it is no anonymous internal error;
    the message (which may hold data) and the traceback stay in the log, under the request id."""
    program = _program(
        tmp_path,
        """\
        import parsing_helper_x1

        def input_fn(request_body, content_type):
            if request_body == "helper":
                return parsing_helper_x1.parse(request_body)
            raise ValueError("secret customer 42")
        """,
        parsing_helper_x1="def parse(body):\n    return int(body)\n",
    )
    hook = Hook.bind(hooks.UserModules().import_program(program), "input_fn", str(program))
    assert hook is not None
    for body, kind, where in (
        ("direct", "ValueError", "inference.py line 6"),
        ("helper", "ValueError", "parsing_helper_x1.py line 2"),
    ):
        with caplog.at_level(logging.ERROR, logger="byoc.serving"), pytest.raises(HookError) as caught:
            hook(body, "text/csv", context=Context(str(tmp_path), request_id="req-1"))
        error = caught.value
        assert (error.status, error.code) == (500, "hook_failed")
        assert error.message.startswith(f"input_fn raised {kind} at {where};"), error.message
        assert "secret" not in error.message and "invalid literal" not in error.message
    assert "req-1" in caplog.text and "secret customer 42" in caplog.text and "Traceback" in caplog.text


def test_a_failing_model_fn_is_not_turned_into_a_request_error(tmp_path):
    """model_fn runs at start-up, where HooksHandler.load stops serve with the exception itself."""
    program = _program(tmp_path, "def model_fn(model_dir):\n    raise OSError('no weights')\n")
    hook = Hook.bind(hooks.UserModules().import_program(program), "model_fn", str(program))
    assert hook is not None
    with pytest.raises(OSError, match="no weights"):
        hook(str(tmp_path), context=Context(str(tmp_path)))


@pytest.mark.parametrize(
    "output,said",
    [
        ({"predictions": [1]}, "output_fn of x.py returned a dict; "),
        (None, "output_fn of x.py returned a NoneType; "),
        (("a", "text/plain", 200), "output_fn of x.py returned a tuple of 3 items; "),
        (("a", 5), "output_fn of x.py returned the content type 5 (int, not str); "),
    ],
)
def test_an_output_fn_answer_that_is_no_body_is_a_500_naming_the_hook(tmp_path, output, said):
    """Was a TypeError: an anonymous internal error for the client, and a log without the hook."""
    fns = {
        "input_fn": lambda body, content_type: body,
        "predict_fn": lambda data, model: data,
        "output_fn": lambda prediction, accept: output,
    }
    user = {name: Hook(name, fn, False, False, str(tmp_path / "x.py")) for name, fn in fns.items()}
    handler = HooksHandler(tmp_path / "x.py", object(), user, ServingSettings(), tmp_path)
    with pytest.raises(HookError) as caught:
        handler.invoke(InferenceRequest(_Body(), "text/csv", "application/json", None, "id"))
    assert (caught.value.status, caught.value.code) == (500, "bad_output")
    assert caught.value.message.startswith(said), caught.value.message


@pytest.mark.parametrize(
    "values,said",
    [
        ([1, datetime.datetime(2020, 1, 1)], "a value of type datetime for record 2"),
        ([decimal.Decimal("1.5")], "a value of type Decimal for record 1"),
        ([b"bytes"], "a value of type bytes for record 1"),
        (np.array([b"a", b"b"]), "an array of dtype |S1"),
        (np.array([1 + 2j]), "an array of dtype complex128"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "an array of dtype datetime64[D]"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("accept", ["application/json", "text/csv", "application/x-npy"])
def test_predict_fn_values_no_format_can_write_name_predict_fn_and_the_record_for_every_accept(
    tmp_path, values, said, accept
):
    """Was an internal error blamed on byoc's output_fn, then each encoder's own refusal; and a
    typed array of bytes, complex numbers or dates was written in npy while a list of the same
    values was refused there too (byoc.serving.cells: one rule for what an answer cell is)."""
    byoc_hooks = ByocHooks(ServingSettings(), None, None)
    context = Context(str(tmp_path), content_type="text/csv", accept=accept)
    with pytest.raises(HookError) as caught:
        byoc_hooks.output_fn(values, accept, context)
    assert (caught.value.status, caught.value.code) == (500, "bad_prediction")
    assert caught.value.message.startswith(f"predict_fn returned {said}; "), caught.value.message
    assert "define output_fn" in caught.value.message


@pytest.mark.parametrize(
    "prediction,said",
    [
        (5, "an int, not a list"),
        (np.int64(5), "an int64, not a list"),
        ("yes", "a str, not a list"),
        ([[1, 2], 3], "a list whose record 1 is a list of 2 values"),
        (np.zeros((2, 2)), "an ndarray of shape (2, 2)"),
    ],
    ids=repr,
)
def test_a_prediction_that_is_not_one_value_per_record_is_named_with_its_article(tmp_path, prediction, said):
    """Was "predict_fn returned a int, not a list"."""
    byoc_hooks = ByocHooks(ServingSettings(), None, None)
    context = Context(str(tmp_path), content_type="text/csv", accept="application/json")
    with pytest.raises(HookError) as caught:
        byoc_hooks.output_fn(prediction, "application/json", context)
    assert caught.value.message.startswith(f"predict_fn returned {said}; "), caught.value.message


def _answer(tmp_path, values, accept: str) -> bytes:
    context = Context(str(tmp_path), content_type="text/csv", accept=accept)
    body, _ = ByocHooks(ServingSettings(), None, None).output_fn(values, accept, context)
    return body


def test_pandas_missing_values_and_numpy_booleans_are_cells_in_every_format(tmp_path):
    """pandas' NA (a nullable string or Int64 column's missing value) passed output_fn's check
    and every encoder refused it; CSV wrote a NumPy boolean among other values as ``True``."""
    missing = pd.Series(["a", None], dtype="string")
    assert json.loads(_answer(tmp_path, missing, "application/json")) == {
        "predictions": [{"predicted_label": "a"}, {"predicted_label": None}]
    }
    assert list(csv.reader(io.StringIO(_answer(tmp_path, missing, "text/csv").decode()))) == [["a"], [""]]
    numbers = np.load(io.BytesIO(_answer(tmp_path, [1.5, pd.NA], "application/x-npy")))
    np.testing.assert_array_equal(numbers, [1.5, np.nan])
    flags = Prediction(("predicted_label",), {"predicted_label": [np.bool_(True), "x"]}, 2)
    assert codecs.encoders()["text/csv"].encode(flags) == b"true\nx\n"


def test_answers_that_are_all_missing_are_nan_in_npy_as_beside_numbers(tmp_path):
    """npy writes a missing answer among numbers as NaN; a batch whose every answer is missing
    (None, pandas' NA) is the same float array of NaN, not a 500 for a list with no number."""
    for answers in ([None, None], [pd.NA], pd.Series([None, None], dtype="Float64")):
        numbers = np.load(io.BytesIO(_answer(tmp_path, answers, "application/x-npy")))
        assert numbers.dtype == np.float64 and np.isnan(numbers).all() and len(numbers) == len(answers)


def test_boolean_answers_in_a_list_are_a_boolean_npy_array(tmp_path):
    """A predict_fn's list of booleans (Python or NumPy) is an npy boolean array, as a model trained
    on a boolean label answers in npy; not a 500 for values with no npy form."""
    for answers in ([True, False], [np.bool_(False), True]):
        flags = np.load(io.BytesIO(_answer(tmp_path, answers, "application/x-npy")))
        assert flags.dtype == np.bool_ and flags.tolist() == [bool(a) for a in answers]


def test_an_empty_text_answer_stays_text_beside_a_missing_one(tmp_path):
    """An answer's empty string is text, not a missing value (byoc.serving.cells.is_missing): beside
    pandas' NA it stays ``""`` in JSON, where only the NA is ``null``."""
    answers = pd.Series(["", "a", None], dtype="string")
    assert json.loads(_answer(tmp_path, answers, "application/json")) == {
        "predictions": [{"predicted_label": ""}, {"predicted_label": "a"}, {"predicted_label": None}]
    }


def test_a_numpy_float32_nan_in_a_list_is_an_empty_csv_cell_as_a_python_float_nan_is(tmp_path):
    """The CSV codec's as-is shortcut looked for NaN among Python floats only, so a list of
    NumPy float32 answers wrote its NaN as ``nan`` (a category when read back)."""
    for nan in (float("nan"), np.float32("nan"), np.float16("nan")):
        body = _answer(tmp_path, [nan, type(nan)(1.5)], "text/csv")  # through output_fn
        assert list(csv.reader(io.StringIO(body.decode()))) == [[""], ["1.5"]], type(nan)
        answer = Prediction(("predicted_label",), {"predicted_label": [nan, type(nan)(1.5)]}, 2)
        assert codecs.encoders()["text/csv"].encode(answer) == b'""\n1.5\n', type(nan)  # the codec alone


def test_no_program_means_byoc_serves_and_a_named_one_must_exist(tmp_path):
    assert locate_code(tmp_path, {}) == UserCode(tmp_path, None)
    with pytest.raises(
        ConfigError, match="s3://bucket/sourcedir.tar.gz is not downloaded for a multi-model endpoint"
    ):
        locate_code(
            tmp_path,
            {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz"},
        )
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("")
    found = locate_code(
        tmp_path,
        {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz"},
    ).program
    assert found == tmp_path / "code" / "train.py"  # the repacked copy wins over an unreachable URL


@pytest.mark.parametrize("spelling", ["{}", "file://{}"])
def test_a_submit_directory_that_does_not_exist_is_named_as_missing(tmp_path, spelling):
    """SAGEMAKER_SUBMIT_DIRECTORY=/nonexistent said only "SAGEMAKER_PROGRAM='inference.py': no such
    file in /nonexistent or <model>/code", as if the directory were there without the program."""
    save_constant_model(tmp_path / "model", 1.0)
    gone = tmp_path / "nonexistent"
    submit = spelling.format(gone)
    with pytest.raises(ConfigError) as raised:
        locate_code(tmp_path / "model", {"SAGEMAKER_SUBMIT_DIRECTORY": submit})
    assert str(raised.value).startswith(f"SAGEMAKER_SUBMIT_DIRECTORY={submit}: {gone} does not exist; "), (
        raised.value
    )
    gone.write_text("")
    with pytest.raises(ConfigError, match=f"{gone} is a file, not a directory; "):
        locate_code(
            tmp_path / "model", {"SAGEMAKER_SUBMIT_DIRECTORY": submit, "SAGEMAKER_PROGRAM": "serve.py"}
        )
    gone.unlink()
    gone.mkdir()  # there, without the program: the message as before
    with pytest.raises(ConfigError) as raised:
        locate_code(tmp_path / "model", {"SAGEMAKER_SUBMIT_DIRECTORY": submit})
    assert str(raised.value).startswith("SAGEMAKER_PROGRAM='inference.py': no such file in "), raised.value


# Module-level sources, each with the helper module it may import: what serve's getattr finds
# after importing one is what the static reading (evaluate's) must find without importing it.
_BINDING_FORMS = {
    "def": "def predict_fn(data, model):\n    return data\n",
    "async-def": "async def model_fn(model_dir):\n    return None\n",
    "class": "class transform_fn:\n    pass\n",
    "lambda": "predict_fn = lambda data, model: data\n",
    "chained": "a = predict_fn = model_fn = print\n",
    "unpacked": "x, (predict_fn, *rest) = 1, (print, 2, 3)\n",
    "annotated": "predict_fn: object = print\n",
    "annotated-only": "predict_fn: object\n",
    "import": "from helper import predict_fn\n",
    "import-as": "from helper import other as model_fn\nimport helper as transform_fn\n",
    "if": "if True:\n    def predict_fn(data, model):\n        return data\n",
    "elif": "import sys\nif sys.maxsize < 0:\n    pass\nelif sys.maxsize:\n    predict_fn = print\n",
    "try-except": "try:\n    import no_such_module\nexcept ImportError as error:\n    predict_fn = print\n",
    "try-finally": "try:\n    pass\nfinally:\n    from helper import predict_fn\n",
    "with": "import contextlib\nwith contextlib.nullcontext(print) as predict_fn:\n    pass\n",
    "for": "for predict_fn in [print]:\n    pass\n",
    "while": "while True:\n    model_fn = print\n    break\n",
    "nested": "if True:\n    for _ in [1]:\n        try:\n            predict_fn = print\n        except Exception:\n            pass\n",
    "walrus": "if (predict_fn := print):\n    pass\n",
    "walrus-in-comprehension": "[(model_fn := x) for x in [print]]\n",
    "global": "def setup():\n    global predict_fn\n    predict_fn = print\n\nsetup()\n",
    "match": "match [print]:\n    case [predict_fn]:\n        pass\n",
    "in-function": "def f():\n    predict_fn = print\n",
    "in-class": "class A:\n    model_fn = print\n",
    "comprehension-variable": "[predict_fn for predict_fn in [print]]\n",
    "lambda-argument": "g = lambda predict_fn: predict_fn\n",
}


@pytest.mark.parametrize("source", _BINDING_FORMS.values(), ids=_BINDING_FORMS.keys())
def test_the_static_reading_finds_the_hooks_serve_binds(tmp_path, source):
    import ast

    from byoc.serving.static_hooks import module_bindings

    (tmp_path / "helper.py").write_text("def predict_fn(data, model):\n    return data\n\nother = print\n")
    (tmp_path / "inference.py").write_text(source)
    module = hooks.UserModules().import_program(tmp_path / "inference.py")
    bound = [name for name in hooks.HOOK_ARGUMENTS if getattr(module, name, None) is not None]
    read = module_bindings(ast.parse(source))
    assert read.open_ended == ()
    assert read.hooks(hooks.HOOK_ARGUMENTS) == bound


@pytest.mark.parametrize(
    "source,said",
    [
        ("from helper import *\n", ("from helper import * (line 1)",)),
        ("if True:\n    from .helper import *\n", ("from .helper import * (line 2)",)),
        ("def __getattr__(name):\n    return print\n", ("a module __getattr__",)),
        ("exec('predict_fn = print')\n", ("exec(...) (line 1)",)),
        ("eval('(predict_fn := print)')\n", ("eval(...) (line 1)",)),
        ("def setup():\n    globals()['predict_fn'] = print\n\nsetup()\n", ("globals() (line 2)",)),
        ("vars()['model_fn'] = print\n", ("vars() (line 1)",)),
        ("import sys\nsetattr(sys.modules[__name__], 'predict_fn', print)\n", ("sys.modules (line 2)",)),
    ],
)
def test_what_the_source_cannot_tell_is_said_so(source, said):
    import ast

    from byoc.serving.static_hooks import module_bindings

    read = module_bindings(ast.parse(source))
    assert read.open_ended == said
    assert read.hooks(hooks.HOOK_ARGUMENTS) == []


def test_the_programs_an_endpoint_may_load_are_the_ones_serve_loads(tmp_path):
    """programs_for is serve's own rule (locate_code) asked under each SAGEMAKER_PROGRAM a file of
    the model's code folders could be named by."""
    save_constant_model(tmp_path / "model", 1.0)
    (tmp_path / "code").mkdir()
    for name in ("inference.py", "custom.py", "notes.txt"):
        (tmp_path / "code" / name).write_text("")
    (tmp_path / "model" / "code").mkdir()
    (tmp_path / "model" / "code" / "inner.py").write_text("")
    (tmp_path / "model" / "code" / "custom.py").write_text("")
    found = hooks.programs_for(tmp_path, {})
    assert found == {
        tmp_path / "code" / "inference.py": None,
        tmp_path / "code" / "custom.py": "custom.py",
        tmp_path / "model" / "code" / "inner.py": "inner.py",
    }
    for program, name in found.items():
        assert locate_code(tmp_path, {"SAGEMAKER_PROGRAM": name} if name else {}).program == program
    # the environment naming one: that one alone, as serve would load it
    assert hooks.programs_for(tmp_path, {"SAGEMAKER_PROGRAM": "inner"}) == {
        tmp_path / "model" / "code" / "inner.py": "inner"
    }
    assert hooks.programs_for(tmp_path, {"SAGEMAKER_PROGRAM": "absent.py"}) == {}


class _Body:
    def read(self) -> bytes:
        return b"1,2\n"

    def line_slices(self, whole_records=None):
        return iter([self.read()])


@pytest.mark.parametrize(
    "accept,content_type",
    [
        ("application/json;q=0.9, text/csv;q=0.5", "application/json"),
        ("text/csv;q=0.5, application/json;q=0.9", "application/json"),
        ("text/plain; charset=utf-8; q=0.8", "text/plain; charset=utf-8"),
        ("text/csv, application/json", "text/csv"),
        ("*/*", "application/json"),
        ("application/*;q=0.5", "application/json"),
    ],
)
def test_a_hooks_body_without_a_type_gets_the_accepted_media_type_without_accept_weights(
    tmp_path, accept, content_type
):
    """q weighs an Accept entry (the most preferred one is the type); it is no media type
    parameter, so Content-Type does not copy it."""
    transform = Hook("transform_fn", lambda model, body, content_type, accept: "answer", False, False, "x.py")
    handler = HooksHandler(
        tmp_path / "x.py", object(), {"transform_fn": transform}, ServingSettings(), tmp_path
    )
    response = handler.invoke(InferenceRequest(_Body(), "text/csv", accept, None, "id"))
    assert (response.body, response.content_type) == (b"answer", content_type)


def test_a_hook_that_exits_is_a_hook_error_not_the_end_of_the_worker():
    """sys.exit in a hook would end the gunicorn worker (and every request and model it holds),
    leaving the client without an answer: it is the hook's fault, a 500 naming the hook."""

    def transform_fn(model, body, content_type, accept):
        raise SystemExit(3)

    hook = Hook.bind(_module(transform_fn=transform_fn), "transform_fn", "/opt/ml/model/code/inference.py")
    with pytest.raises(HookError) as caught:
        hook(None, "1", "text/csv", "text/csv", context=Context("/opt/ml/model"))
    assert caught.value.status == 500
    assert "transform_fn of /opt/ml/model/code/inference.py called sys.exit(3)" in caught.value.message


@pytest.mark.parametrize(
    "program,fragment",
    [
        (  # a training script reused for inference: argparse runs at import
            "import argparse\nparser = argparse.ArgumentParser()\n"
            "parser.add_argument('--epochs', required=True)\nargs = parser.parse_args([])\n",
            "importing it failed: it called sys.exit(2)",
        ),
        (
            "import sys\ndef model_fn(model_dir):\n    sys.exit('no model here')\n",
            "sys.exit('no model here')",
        ),
    ],
)
def test_a_program_that_exits_while_loading_is_a_load_error(tmp_path, program, fragment):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        program + "\ndef transform_fn(model, body, content_type, accept):\n    return ''\n"
    )
    with pytest.raises(ModelLoadError, match=re.escape(fragment)):
        HooksHandler.load(code / "inference.py", tmp_path, ServingSettings())


def _program_with_helper(directory, version: str):
    code = directory / "code"
    code.mkdir(parents=True)
    (code / "helper.py").write_text(f"VERSION = {version!r}\n")
    (code / "inference.py").write_text(
        "import helper\n\ndef model_fn(model_dir):\n    return None\n\n"
        "def transform_fn(model, body, content_type, accept):\n    return helper.VERSION\n"
    )
    return code / "inference.py"


def test_each_program_imports_its_own_helpers_though_they_share_a_name(tmp_path):
    """A multi-model endpoint imports many models' programs into one process; the second model's
    `import helper` got the first model's helper.py (cached by name), silently answering with the
    other model's code, and which one won depended on the order each worker loaded them."""
    programs = {v: _program_with_helper(tmp_path / v, v) for v in ("v1", "v2")}
    server = hooks.UserModules()  # a multi-model worker's: one for all of its models

    def answer(version: str) -> bytes:
        handler = HooksHandler.load(
            programs[version], programs[version].parent.parent, ServingSettings(), server
        )
        return handler.invoke(InferenceRequest(_Body(), "text/csv", "text/plain", None, "id")).body

    assert [answer(v) for v in ("v1", "v2", "v1")] == [b"v1", b"v2", b"v1"]


def test_what_one_server_imported_is_its_own_record(tmp_path):
    """The code directories a server's programs came from were a module-level set shared by every
    load in the process; each server (the single-model app, a multi-model worker's factory) now
    keeps its own, and a load through one leaves another's record as it was."""
    programs = [_program_with_helper(tmp_path / v, v) for v in ("v1", "v2")]
    first, second = hooks.UserModules(), hooks.UserModules()
    first.import_program(programs[0])
    for name in ("inference", "helper"):  # the second server runs in a process of its own
        sys.modules.pop(name)
    sys.path.remove(str(programs[0].parent))
    assert second.import_program(programs[1]).helper.VERSION == "v2"
    assert first.code_dirs == {str(programs[0].parent)}
    assert second.code_dirs == {str(programs[1].parent)}
    assert not hasattr(hooks, "_code_dirs")


def _program_with_lib(code: Path, model_fn: str = "    return None\n") -> Path:
    """code/inference.py putting code/lib on sys.path and importing a module from each folder."""
    (code / "lib").mkdir(parents=True)
    (code / "byoc_probe_own.py").write_text("WHO = 'own'\n")
    (code / "lib" / "byoc_probe_lib.py").write_text("WHO = 'lib'\n")
    (code / "inference.py").write_text(
        "import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib'))\n"
        f"import byoc_probe_own, byoc_probe_lib\n\ndef model_fn(model_dir):\n{model_fn}\n"
        "def transform_fn(model, body, content_type, accept):\n    return ''\n"
    )
    return code / "inference.py"


def _under(folder: Path) -> tuple[list[str], list[str]]:
    """The sys.path entries and the names of the modules in sys.modules inside ``folder``."""
    inside = str(folder) + "/"
    paths = [p for p in sys.path if p.startswith(inside)]
    names = [n for n, m in sys.modules.items() if str(getattr(m, "__file__", None)).startswith(inside)]
    return paths, names


def test_a_released_program_leaves_nothing_a_program_loaded_later_can_import(tmp_path):
    """A multi-model worker's unload (or eviction) dropped the handler and left its program's code/,
    the code/lib it put on sys.path and the modules imported from them in the process: a model
    loaded later whose model_fn imports a module it does not ship got the unloaded model's.  A load
    that fails holds nothing either; a folder two loads share goes with the last of them."""
    server = hooks.UserModules()
    program = _program_with_lib(tmp_path / "a" / "code")
    first, second = (HooksHandler.load(program, tmp_path / "a", ServingSettings(), server) for _ in range(2))
    assert _under(tmp_path)[0] == [str(program.parent / "lib"), str(program.parent)]
    first.close()
    first.close()  # once
    assert _under(tmp_path)[0] == [str(program.parent / "lib"), str(program.parent)]
    second.close()
    assert _under(tmp_path) == ([], [])
    assert server.code_dirs == frozenset()
    lazy = tmp_path / "b" / "code" / "inference.py"
    lazy.parent.mkdir(parents=True)
    lazy.write_text(
        "def model_fn(model_dir):\n    import byoc_probe_lib\n\ndef transform_fn(m, b, c, a):\n    return ''\n"
    )
    with pytest.raises(ModelLoadError, match="No module named 'byoc_probe_lib'"):
        HooksHandler.load(lazy, lazy.parent.parent, ServingSettings(), server)
    failing = _program_with_lib(tmp_path / "c" / "code", "    raise RuntimeError('no model')\n")
    with pytest.raises(ModelLoadError, match="no model"):
        HooksHandler.load(failing, failing.parent.parent, ServingSettings(), server)
    assert _under(tmp_path) == ([], [])


def test_a_programs_model_fn_finds_its_own_folders_before_any_other_programs(tmp_path):
    """Another program's folders were put back on sys.path at index 1, after the program's import:
    behind a code/lib it put first, but before its own code/, so its model_fn's import of a module
    of its code/ (an unpickled class's, say) got the other model's module of that name; and the
    other's code/lib stayed on sys.path while it was imported, so a module only that lib ships
    was found."""
    server = hooks.UserModules()
    _program_with_lib(tmp_path / "a" / "code")
    HooksHandler.load(tmp_path / "a" / "code" / "inference.py", tmp_path / "a", ServingSettings(), server)
    own = _program_with_lib(
        tmp_path / "b" / "code", "    import byoc_probe_own\n    return byoc_probe_own.__file__\n"
    )
    handler = HooksHandler.load(own, own.parent.parent, ServingSettings(), server)
    assert handler.model == str(own.parent / "byoc_probe_own.py")
    assert sys.path.index(str(own.parent)) < sys.path.index(str(tmp_path / "a" / "code"))
    (tmp_path / "c" / "code").mkdir(parents=True)
    (tmp_path / "c" / "code" / "inference.py").write_text("import byoc_probe_lib\n")
    with pytest.raises(ModelLoadError, match="No module named 'byoc_probe_lib'"):
        server.import_program(tmp_path / "c" / "code" / "inference.py")


@pytest.mark.parametrize("name", ["X-Amzn-SageMaker-Custom-Attributes", "x-amzn-sagemaker-custom-attributes"])
def test_custom_attributes_a_predict_fn_sets_are_not_replaced_by_byocs_output_fn(tmp_path, name):
    """README: a hook returns custom attributes to the caller through ``context.response_headers``.
    byoc's output_fn used to overwrite them with its own ``output=predicted_label``."""
    byoc_hooks = ByocHooks(ServingSettings(), None, None)
    context = Context(str(tmp_path), content_type="text/csv", accept="text/csv")
    context.response_headers[name] = "model_version=7"
    byoc_hooks.output_fn(["yes", "no"], "text/csv", context)
    assert context.response_headers == {name: "model_version=7"}
    untouched = Context(str(tmp_path), content_type="text/csv", accept="text/csv")
    byoc_hooks.output_fn(["yes"], "text/csv", untouched)
    assert untouched.response_headers == {"X-Amzn-SageMaker-Custom-Attributes": "output=predicted_label"}


def test_hooks_in_a_model_under_a_top_level_folder_are_that_models(tmp_path):
    """``tar -czf model.tar.gz model`` of a model with code/inference.py: the hooks come with the
    model found one folder down (artifact.locate), not byoc's built-in handler ignoring them."""
    from byoc.serving import handler as handlers

    nested = save_constant_model(tmp_path / "model" / "model", 7.0)
    (nested / "code").mkdir()
    _program(nested / "code", "def output_fn(prediction, accept):\n    return 'hooked', accept\n")
    loaded = handlers.load(tmp_path / "model", ServingSettings(), {})
    assert isinstance(loaded, HooksHandler) and loaded.program == nested / "code" / "inference.py"
    assert loaded.model_dir == nested


def test_start_up_and_load_use_the_code_packed_with_a_model_under_a_top_level_folder(tmp_path, monkeypatch):
    """Was a download of the s3:// SAGEMAKER_SUBMIT_DIRECTORY: start-up looked only at the top
    <model_dir>/code, not in the folder artifact.locate finds the model in, as handler.load does."""
    from byoc.serving import handler as handler_module

    model_dir = tmp_path / "model"
    packed = model_dir / "my-model"
    save_constant_model(packed, 1.0)
    (packed / "code").mkdir()
    (packed / "code" / "inference.py").write_text(
        "def model_fn(model_dir):\n    return model_dir\n\n"
        "def input_fn(body, content_type):\n    return body\n\n"
        "def predict_fn(data, model):\n    return [model]\n"
    )
    fetched: list[str] = []
    monkeypatch.setattr(hooks.user_script, "fetch", lambda uri, code_dir: fetched.append(uri))
    environ = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz",
    }

    environ, code = hooks.fetch_submit_directory(model_dir, tmp_path / "code", environ)
    assert environ == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz",
    }
    assert fetched == []
    loaded = handler_module.load(model_dir, ServingSettings(), environ, code)
    assert isinstance(loaded, HooksHandler)
    assert (loaded.program, loaded.model) == (packed / "code" / "inference.py", str(packed))


@pytest.mark.parametrize("nested", [False, True])
def test_serving_byocs_model_locates_it_once(tmp_path, monkeypatch, nested):
    """handler.load located the model (to find its code/) and the loader located it
    again: a second walk of the model directory, which for a directory without model.json is the
    whole tree twice before the same refusal."""
    from byoc import artifact
    from byoc.serving import handler as handler_module

    model_dir = tmp_path / "model"
    save_constant_model(model_dir / "packed" if nested else model_dir, 3.0)
    calls: list[Path] = []
    real = artifact.locate

    def counting(directory: Path) -> Path:
        calls.append(directory)
        return real(directory)

    monkeypatch.setattr(artifact, "locate", counting)
    loaded = handler_module.load(model_dir, ServingSettings(), {})
    assert loaded.predictor is not None and calls == [model_dir]

    calls.clear()
    empty = tmp_path / "empty"
    (empty / "deep" / "deeper").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match=artifact.METADATA_FILE):
        handler_module.load(empty, ServingSettings(), {})
    assert calls == [empty]


@pytest.mark.parametrize("where", ["top", "nested", "downloaded"])
def test_start_up_looks_for_the_program_in_each_place_once(tmp_path, monkeypatch, where):
    """With an s3:// SAGEMAKER_SUBMIT_DIRECTORY, start-up's download decision looked for the
    program (model_folder, then code/ again) and handler.load looked again (model_folder, then
    find_program): the model's code/ two to four times."""
    from byoc.serving import app as app_module

    base = tmp_path / "ml"
    model_dir = base / "model"
    folder = model_dir / "packed" if where == "nested" else model_dir
    save_constant_model(folder, 2.0)
    program = "def predict_fn(data, model):\n    return [7.0] * len(data)\n"
    source = tmp_path / "source"
    (folder / "code" if where != "downloaded" else source).mkdir()
    (folder / "code" / "inference.py" if where != "downloaded" else source / "inference.py").write_text(
        program
    )

    def fetch(uri: str, code_dir: Path) -> None:
        code_dir.mkdir(parents=True)
        (code_dir / "inference.py").write_text(program)

    monkeypatch.setattr(hooks.user_script, "fetch", fetch)
    looked: list[Path] = []
    first_program = hooks._first_program

    def counting(places: list[Path], environ) -> Path | None:
        looked.extend(places)
        return first_program(places, environ)

    monkeypatch.setattr(hooks, "_first_program", counting)
    environ = {
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz",
    }
    app = app_module.create_app(environ=environ)
    handler = app.extensions["byoc.handler"]
    code = base / "code" if where == "downloaded" else folder / "code"
    assert isinstance(handler, HooksHandler) and handler.program == code / "inference.py"
    assert len(looked) == len(set(looked)), looked  # no place looked in twice


def _named_program(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / f"{name}.py"
    program.write_text("def transform_fn(model, body, content_type, accept):\n    return ''\n")
    return program


def test_a_program_named_like_an_installed_module_not_imported_yet_is_refused(tmp_path, monkeypatch):
    """Only modules already imported (or the standard library's) were refused: the first import of
    the installed module, after the program was registered under its name, got the program."""
    site = tmp_path / "site"
    (site / "byoc_probe_pkg").mkdir(parents=True)
    (site / "byoc_probe_pkg" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    program = _named_program(tmp_path / "code", "byoc_probe_pkg")
    with pytest.raises(ModelLoadError) as caught:
        hooks.UserModules().import_program(program)
    assert str(caught.value) == (
        f"{program}: its module name 'byoc_probe_pkg' is that of an installed module "
        f"({site / 'byoc_probe_pkg' / '__init__.py'}), which it would replace for the whole server (the "
        "first import of byoc_probe_pkg would get this file); rename the file (e.g. "
        "byoc_probe_pkg_inference.py) and SAGEMAKER_PROGRAM with it"
    )


def test_a_folder_of_that_name_or_another_models_module_is_no_installed_module(tmp_path, monkeypatch):
    """A directory without __init__.py on the path (a namespace package to Python: /opt/ml/model
    from the working directory) and a module of another model's code folder are not the server's."""
    site = tmp_path / "site"
    (site / "byoc_probe_dir").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    server = hooks.UserModules()
    server.import_program(_named_program(tmp_path / "code", "byoc_probe_dir"))
    first = _named_program(tmp_path / "a" / "code", "inference")
    (first.parent / "byoc_probe_helper.py").write_text("")
    server.import_program(first)
    assert server.import_program(
        _named_program(tmp_path / "b" / "code", "byoc_probe_helper")
    ).__file__ == str(tmp_path / "b" / "code" / "byoc_probe_helper.py")


def test_an_inference_program_beside_model_json_instead_of_in_code_is_named_not_passed_by(tmp_path, caplog):
    """inference.py at the top of model.tar.gz (not in code/) was passed by without a word: byoc's own
    answers came back and the user's hooks never ran; SAGEMAKER_PROGRAM naming it was refused as
    "no such file in <model>/code" without saying where it was."""
    save_constant_model(tmp_path, 1.0)
    (tmp_path / "inference.py").write_text("def output_fn(prediction, accept):\n    return 'mine'\n")
    with caplog.at_level(logging.WARNING, logger="byoc.serving"):
        assert locate_code(tmp_path, {}) == UserCode(tmp_path, None)
    assert f"{tmp_path / 'inference.py'} is not run: inference hooks go in {tmp_path / 'code'}" in caplog.text
    with pytest.raises(ConfigError, match=f"{tmp_path / 'inference.py'} is there: move it into"):
        locate_code(tmp_path, {"SAGEMAKER_PROGRAM": "inference.py"})


@pytest.mark.parametrize(
    "source,said",
    [
        (
            "async def predict_fn(input_data, model):\n    return []\n",
            "predict_fn is defined with `async def`",
        ),
        (
            "async def output_fn(prediction, accept):\n    yield b''\n",
            "output_fn is defined with `async def`",
        ),
        (
            "def predict_fn(input_data, model, *, context):\n    return []\n",
            "predict_fn requires the keyword-only argument context (after a `*`)",
        ),
    ],
)
def test_a_hook_no_call_can_run_is_a_start_up_error_naming_its_line(tmp_path, source, said):
    """An ``async def`` hook handed every request an un-awaited coroutine (a 500 blaming whichever
    hook got it: "predict_fn returned a coroutine, not a list"), and one requiring a keyword-only
    argument raised TypeError on every call (a 500 "predict_fn raised TypeError at inference.py"):
    both are refused when serve starts, naming the file and the line of the ``def``."""
    program = _program(tmp_path, "import json\n\n" + source)
    module = hooks.UserModules().import_program(program)
    name = said.split()[0]
    with pytest.raises(ConfigError) as raised:
        Hook.bind(module, name, str(program))
    message = str(raised.value)
    assert message.startswith(f"{program} line 3: {said}"), message
    assert f"{name}({', '.join(hooks.HOOK_ARGUMENTS[name])}[, context])" in message


def test_a_hook_defined_in_a_helper_is_named_by_the_helpers_line(tmp_path):
    program = _program(
        tmp_path,
        "from parsing_helper_x2 import input_fn\n",
        parsing_helper_x2="\n\ndef input_fn(body):\n    return body\n",
    )
    module = hooks.UserModules().import_program(program)
    with pytest.raises(
        ConfigError, match=re.escape(f"{program} (parsing_helper_x2.py line 3): input_fn takes 1")
    ):
        Hook.bind(module, "input_fn", str(program))


class _BodyOf:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data

    def line_slices(self, whole_records=None):
        return iter([self.data])


def _transformed(tmp_path, transform_fn, data: bytes, content_type: str, accept: str = "text/plain"):
    transform = Hook("transform_fn", transform_fn, False, False, "x.py")
    handler = HooksHandler(
        tmp_path / "x.py", object(), {"transform_fn": transform}, ServingSettings(), tmp_path
    )
    return handler.invoke(InferenceRequest(_BodyOf(data), content_type, accept, None, "id"))


@pytest.mark.parametrize(
    "data,content_type",
    [
        ("café".encode(), "text/csv"),
        ("café".encode(), "text/csv; charset=UTF-8"),
        ("café".encode("latin-1"), "text/csv; charset=ISO-8859-1"),
        ("café".encode("cp1252"), "application/json; charset=windows-1252"),
        ("café".encode("utf-16"), "application/json; charset=utf-16"),
        (b"\xef\xbb\xbf" + "café".encode(), "application/json"),  # a UTF-8 byte order mark
        ("\ufeffcafé".encode("utf-16-le"), "text/plain; charset=utf-16le"),
    ],
)
def test_a_hooks_text_body_is_decoded_by_its_charset_and_read_past_a_byte_order_mark(
    tmp_path, data, content_type
):
    """A body declared ``charset=ISO-8859-1`` was decoded as UTF-8 whatever it said, a 400 "not
    UTF-8" for its first accented letter; a UTF-8 byte order mark (which byoc's own decoders read
    past) reached input_fn, where ``json.loads`` refuses it: a 500 blaming the hook."""
    response = _transformed(
        tmp_path, lambda model, body, content_type, accept: repr(body), data, content_type
    )
    assert response.body == repr("café").encode()


@pytest.mark.parametrize(
    "data,content_type,status,said",
    [
        (b"x", "text/csv; charset=no-such-charset", 415, "charset 'no-such-charset' is not a character set"),
        (b"eA==", "text/csv; charset=base64", 415, "charset 'base64' is not a character set"),
        (b"caf\x81", "text/csv; charset=cp1252", 400, "body is not cp1252 (byte 3: "),
        ("café".encode("latin-1"), "text/csv", 400, "body is not UTF-8 (byte 3: "),
    ],
)
def test_a_hooks_text_body_its_charset_cannot_decode_is_the_clients_error(
    tmp_path, data, content_type, status, said
):
    with pytest.raises(UserError) as raised:
        _transformed(tmp_path, lambda model, body, content_type, accept: body, data, content_type)
    assert raised.value.status == status and said in raised.value.message, raised.value.message


@pytest.mark.parametrize(
    "answer,accept,body,content_type",
    [
        (("café", "text/plain; charset=latin-1"), "text/plain", b"caf\xe9", "text/plain; charset=latin-1"),
        ("café", "text/plain; charset=ISO-8859-1", b"caf\xe9", "text/plain; charset=ISO-8859-1"),
        (("café", "text/plain; charset=utf-8"), "text/plain", "café".encode(), "text/plain; charset=utf-8"),
        ("café", "text/plain", "café".encode(), "text/plain"),
    ],
)
def test_a_hooks_text_answer_is_encoded_in_the_charset_its_content_type_names(
    tmp_path, answer, accept, body, content_type
):
    """A str was written as UTF-8 under any charset: ``("café", "text/plain; charset=latin-1")``
    reached the client as ``cafÃ©``."""
    response = _transformed(tmp_path, lambda model, b, ct, a: answer, b"", "text/csv", accept)
    assert (response.body, response.content_type) == (body, content_type)


@pytest.mark.parametrize(
    "answer,accept,status,said",
    [
        (("日本", "text/plain; charset=latin-1"), "text/plain", 500, "cannot encode ("),
        (("x", "text/plain; charset=no-such"), "text/plain", 500, "the charset 'no-such', which is no"),
        ("日本", "text/plain; charset=latin-1", 406, "the answer holds text that latin-1 cannot encode"),
        ("x", "text/plain; charset=no-such", 406, "Accept asks for the charset 'no-such'"),
    ],
)
def test_a_hooks_text_answer_its_charset_cannot_hold_is_named(tmp_path, answer, accept, status, said):
    """The hook's own content type is the hook's fault (500 bad_output); a charset the Accept asked
    for is the client's (406)."""
    with pytest.raises(UserError) as raised:
        _transformed(tmp_path, lambda model, b, ct, a: answer, b"", "text/csv", accept)
    assert raised.value.status == status and said in raised.value.message, raised.value.message
    assert status == 406 or ("transform_fn of x.py returned text" in raised.value.message)


@pytest.mark.parametrize("batch", [True, False])
def test_byocs_input_fn_under_hooks_says_rows_count_within_a_batch_transform_request(tmp_path, batch):
    """With SAGEMAKER_BATCH, byoc's own server says a row number counts within the mini-batch;
    a program replacing predict_fn alone (byoc's input_fn checking the rows) said it without."""
    from byoc.serving.builtin import MINI_BATCH_NOTE

    save_constant_model(tmp_path / "model", 1.0)
    code = tmp_path / "model" / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        "def predict_fn(input_data, model):\n    return model.predict(input_data)\n"
    )
    handler = HooksHandler.load(code / "inference.py", tmp_path / "model", ServingSettings(batch=batch))
    try:
        with pytest.raises(UserError) as raised:
            handler.invoke(InferenceRequest(_BodyOf(b"1\nabc\n"), "text/csv", "text/csv", None, "id"))
    finally:
        handler.close()
    assert raised.value.message.startswith("row 2"), raised.value.message
    assert raised.value.message.endswith(MINI_BATCH_NOTE) is batch


@pytest.mark.parametrize("length", ["3", "100", "abc", " 9"])
def test_a_content_length_the_hooks_set_that_is_not_the_bodys_is_bad_output(tmp_path, length):
    """gunicorn sent the hook's Content-Length: "3" cut the 10-byte answer to ``012`` under a 200,
    "100" left the client waiting for 90 bytes more (IncompleteRead), "abc" was a 500 "the server
    failed to read this request"."""

    def transform_fn(model, body, content_type, accept, context):
        context.response_headers["content-length"] = length
        return "0123456789"

    transform = Hook("transform_fn", transform_fn, True, False, "x.py")
    handler = HooksHandler(
        tmp_path / "x.py", object(), {"transform_fn": transform}, ServingSettings(), tmp_path
    )
    with pytest.raises(HookError) as raised:
        handler.invoke(InferenceRequest(_BodyOf(b"1"), "text/csv", "text/plain", None, "id"))
    assert raised.value.code == "bad_output" and raised.value.status == 500
    assert raised.value.message == (
        f"the hooks of x.py set the response header 'content-length' to {length!r}, but the body is 10 bytes; "
        "leave Content-Length out (the server sets it from the body)"
    )


def test_a_content_length_the_hooks_set_that_is_the_bodys_is_sent(tmp_path):
    def transform_fn(model, body, content_type, accept, context):
        context.response_headers["Content-Length"] = "6"
        return "café!"

    transform = Hook("transform_fn", transform_fn, True, False, "x.py")
    handler = HooksHandler(
        tmp_path / "x.py", object(), {"transform_fn": transform}, ServingSettings(), tmp_path
    )
    response = handler.invoke(InferenceRequest(_BodyOf(b"1"), "text/csv", "text/plain", None, "id"))
    assert response.body == "café!".encode() and response.headers == {"Content-Length": "6"}


def _with_header(tmp_path, name: str, value, answer="0123456789"):
    """What a transform_fn returning ``answer`` as text/plain and setting the response header
    ``name`` to ``value`` gets from HooksHandler."""

    def transform_fn(model, body, content_type, accept, context):
        context.response_headers[name] = value
        return answer, "text/plain"

    transform = Hook("transform_fn", transform_fn, True, False, "x.py")
    handler = HooksHandler(
        tmp_path / "x.py", object(), {"transform_fn": transform}, ServingSettings(), tmp_path
    )
    return handler.invoke(InferenceRequest(_BodyOf(b"1"), "text/csv", "text/plain", None, "id"))


@pytest.mark.parametrize("value", ["garbage", "", "labels, comma separated", "csv", 5])
@pytest.mark.parametrize("name", ["Content-Type", "content-type"])
def test_a_content_type_header_the_hooks_set_that_is_no_media_type_is_bad_output(tmp_path, name, value):
    """A Content-Type in context.response_headers replaces the returned content type, but went out
    without the media-type check the returned one gets (``garbage`` was sent as the answer's type)."""
    with pytest.raises(HookError) as raised:
        _with_header(tmp_path, name, value)
    assert raised.value.code == "bad_output" and raised.value.status == 500
    assert raised.value.message == (
        f"the hooks of x.py set the response header {name!r} to {value!r}, which is not a media type; set one "
        "such as 'application/json' or 'text/csv; charset=utf-8', or return it with the body from transform_fn"
    )


def test_a_content_type_header_the_hooks_set_is_sent_and_its_charset_writes_the_text(tmp_path):
    """The header is the type sent, so a str answer is written in its charset (it was UTF-8 under a
    latin-1 header)."""
    response = _with_header(tmp_path, "Content-Type", "text/csv; charset=latin-1", "café")
    assert response.body == "café".encode("latin-1")
    assert response.content_type == "text/csv; charset=latin-1"
    assert response.headers == {"Content-Type": "text/csv; charset=latin-1"}


@pytest.mark.parametrize("status", [200, 302, 999, 0, "400", True, 4.0e2])
def test_a_user_error_a_hook_raises_with_no_error_status_is_the_hooks_failure(tmp_path, status, caplog):
    """A hook's ``UserError(..., status=200)`` was answered 200 with the error as its body (batch
    transform wrote it as the record's answer), 302 was a redirect without a Location, 999 a status
    HTTP has not, and ``status="400"`` a TypeError in the error handler."""
    program = _program(
        tmp_path,
        f"""\
        from byoc.errors import UserError

        def input_fn(request_body, content_type):
            raise UserError("cannot read it", status={status!r}, code="mine")
        """,
    )
    hook = Hook.bind(hooks.UserModules().import_program(program), "input_fn", str(program))
    assert hook is not None
    with caplog.at_level(logging.ERROR, logger="byoc.serving"), pytest.raises(HookError) as caught:
        hook("body", "text/csv", context=Context(str(tmp_path), request_id="req-2"))
    assert (caught.value.status, caught.value.code) == (500, "hook_failed")
    assert caught.value.message.startswith(
        f"input_fn raised UserError with status {status!r} at inference.py line 4, which is no error status; "
    ), caught.value.message
    assert "req-2" in caplog.text and "cannot read it" in caplog.text


@pytest.mark.parametrize("status", [400, 415, 499, 503])
def test_a_user_error_a_hook_raises_with_an_error_status_is_the_answer(tmp_path, status):
    def input_fn(request_body, content_type):
        raise UserError("cannot read it", status=status, code="mine")

    hook = Hook.bind(_module(input_fn=input_fn), "input_fn", "inference.py")
    with pytest.raises(UserError) as caught:
        hook("body", "text/csv", context=Context(str(tmp_path)))
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        status,
        "mine",
        "cannot read it",
    )
