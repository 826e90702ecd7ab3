"""How user hooks are bound (context or not) and which exceptions keep their HTTP status."""

from __future__ import annotations

import types

import pytest

from byoc.errors import ConfigError, UserError
from byoc.serving.handler import InferenceRequest
from byoc.serving.hooks import Context, Hook, HooksHandler, find_program
from byoc.serving.settings import ServingSettings


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
    expected = UserError if kept else _Status
    with pytest.raises(expected) as caught:
        hook(None, None, context=Context("/opt/ml/model"))
    if kept:
        assert caught.value.status == status and caught.value.message == "nope"


def test_no_program_means_byoc_serves_and_a_named_one_must_exist(tmp_path):
    assert find_program(tmp_path, {}) is None
    with pytest.raises(
        ConfigError, match="s3://bucket/sourcedir.tar.gz is not downloaded for a multi-model endpoint"
    ):
        find_program(
            tmp_path,
            {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz"},
        )
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("")
    found = find_program(
        tmp_path,
        {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz"},
    )
    assert found == tmp_path / "code" / "train.py"  # the repacked copy wins over an unreachable URL


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
