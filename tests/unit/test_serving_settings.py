"""Which variable sets each serving knob: SageMaker's names first, the classic sample's next."""

from __future__ import annotations

import pytest

from byoc.errors import ConfigError
from byoc.serving.server import gunicorn_options
from byoc.serving.settings import ServingSettings


@pytest.mark.parametrize(
    "environ,workers,timeout,note",
    [
        ({}, None, 60, None),
        ({"MODEL_SERVER_WORKERS": "3", "MODEL_SERVER_TIMEOUT": "90"}, 3, 90, "MODEL_SERVER_WORKERS=3 used"),
        (
            {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "MODEL_SERVER_WORKERS": "5"},
            2,
            60,
            "MODEL_SERVER_WORKERS=5 ignored: SAGEMAKER_MODEL_SERVER_WORKERS=2 is set",
        ),
        ({"SAGEMAKER_MODEL_SERVER_TIMEOUT": "120", "MODEL_SERVER_TIMEOUT": "120"}, None, 120, None),
        (
            {"MODEL_SERVER_TIMEOUT": "300", "SAGEMAKER_BATCH": "true"},
            None,
            300,
            "MODEL_SERVER_TIMEOUT=300 used",
        ),
        (
            {"SAGEMAKER_MODEL_SERVER_WORKERS": " ", "MODEL_SERVER_WORKERS": "4"},
            4,
            60,
            "MODEL_SERVER_WORKERS=4",
        ),
    ],
)
def test_sagemaker_names_win_and_the_classic_names_fill_in(environ, workers, timeout, note):
    settings = ServingSettings.from_environ(environ)
    default = ServingSettings.from_environ({})
    assert settings.workers == (workers if workers is not None else default.workers)
    assert settings.timeout == timeout
    if note is None:
        assert settings.notes == ()
    else:
        assert any(note in line for line in settings.notes), settings.notes


@pytest.mark.parametrize("batch", ["true", "True"])
def test_a_batch_transform_gets_the_600_s_default_timeout_and_gunicorn_is_given_it(batch):
    """README: the request timeout is 60 s by default, 600 s in batch (SageMaker sets
    SAGEMAKER_BATCH for a transform job), and a request running longer is answered 504: a
    mini-batch of a slow model that takes two minutes must not get 60 s."""
    settings = ServingSettings.from_environ({"SAGEMAKER_BATCH": batch})
    assert settings.timeout == 600
    assert gunicorn_options(settings)["timeout"] == 600
    assert gunicorn_options(ServingSettings.from_environ({"SAGEMAKER_BATCH": "false"}))["timeout"] == 60


def test_a_bad_classic_value_names_the_classic_variable():
    with pytest.raises(ConfigError, match="MODEL_SERVER_WORKERS='lots'"):
        ServingSettings.from_environ({"MODEL_SERVER_WORKERS": "lots"})


def test_asynchronous_inference_limits_are_accepted_and_reach_gunicorn():
    settings = ServingSettings.from_environ(
        {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024"}
    )
    assert settings.max_payload_bytes == 1024**3
    assert gunicorn_options(settings)["timeout"] == 3600
    with pytest.raises(ConfigError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB=1025"):
        ServingSettings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1025"})


def test_a_transform_jobs_max_payload_of_0_is_no_limit_not_a_refusal_to_start():
    """MaxPayloadInMB=0 is a transform job's "no limit, bodies sent chunked" (the SDK's local mode
    passes it on as "0"): serve refused it as out of range, so the job failed before any request."""
    settings = ServingSettings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": " 0", "SAGEMAKER_BATCH": "True"})
    assert settings.max_payload_bytes == 1024**3 and settings.advertised_max_payload_mb == 0
    assert any("SAGEMAKER_MAX_PAYLOAD_IN_MB=0" in note and "1024 MB" in note for note in settings.notes)
    assert ServingSettings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "6"}).advertised_max_payload_mb == 6
    with pytest.raises(ConfigError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB=-1 is out of range"):
        ServingSettings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "-1"})


def test_serverless_one_worker_setting():
    settings = ServingSettings.from_environ({"SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    options = gunicorn_options(settings)
    assert options["workers"] == 1 and options["preload_app"] is True  # the master loads, the worker shares


@pytest.mark.parametrize(
    "raw,expected", [(None, True), ("on", True), ("off", False), ("False", False), ("0", False)]
)
def test_compiled_inference_is_on_unless_switched_off(raw, expected):
    environ = {} if raw is None else {"BYOC_COMPILED_INFERENCE": raw}
    assert ServingSettings.from_environ(environ).compiled_inference is expected


def test_a_bad_compiled_inference_value_names_the_variable():
    with pytest.raises(ConfigError, match="BYOC_COMPILED_INFERENCE='fast' is not a boolean"):
        ServingSettings.from_environ({"BYOC_COMPILED_INFERENCE": "fast"})


@pytest.mark.parametrize(
    "name,raw,bounds",
    [
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "99999999999999999999", "between 1 and 1024"),
        ("MODEL_SERVER_WORKERS", "1025", "between 1 and 1024"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "99999999999999999999", "between 1 and 31536000"),
        ("MODEL_SERVER_TIMEOUT", "31536001", "between 1 and 31536000"),
    ],
)
def test_an_absurd_worker_count_or_timeout_is_refused_naming_the_variable_and_bounds(name, raw, bounds):
    """Unbounded, gunicorn's master forked workers without end (handling no signal meanwhile), and
    a sync worker's select() overflowed on the timeout after its first request, in a loop."""
    with pytest.raises(ConfigError, match=f"{name}={raw} is out of range; it must be {bounds}"):
        ServingSettings.from_environ({name: raw})


def test_the_largest_sensible_worker_count_and_timeout_are_accepted():
    settings = ServingSettings.from_environ(
        {"SAGEMAKER_MODEL_SERVER_WORKERS": "1024", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "31536000"}
    )
    assert (settings.workers, settings.timeout) == (1024, 31536000)


@pytest.mark.parametrize(
    "raw,media_type",
    [
        ("*/*", None),  # no preference: each request answers in its own type, as when unset
        ("*/*;q=0.5", None),
        ("text/*", "text/csv"),
        ("application/*", "application/json"),
        ("*/*;q=0.1, application/jsonlines", "application/jsonlines"),
    ],
)
def test_a_default_accept_that_states_no_preference_leaves_the_choice_to_the_request(raw, media_type):
    from byoc.serving.builtin import default_accept

    settings = ServingSettings.from_environ({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": raw})
    assert default_accept(settings) == media_type


@pytest.mark.parametrize(
    "raw,said",
    [
        (
            "application/json;q=2",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='application/json;q=2': 'application/json;q=2' has q='2'; a q-value is a number from 0 to 1",
        ),
        ("text/csv; charset=latin-1", "(answers are UTF-8, not 'latin-1': ask charset=utf-8 or none)"),
        (
            "text/plain",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/plain' is not supported; use one of text/csv",
        ),
        (
            "text/csv;q=0",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/csv;q=0' is not supported; use one of application/json, "
            "application/jsonlines, application/x-npy",
        ),
    ],
)
def test_a_default_accept_that_cannot_be_answered_stops_the_start_saying_why(raw, said):
    """A q-value out of range or a charset answers are not in stopped serve with "is not supported;
    use one of text/csv, ...", though the value named a supported type: the reason was left out."""
    from byoc.serving.builtin import default_accept

    with pytest.raises(ConfigError) as info:
        default_accept(ServingSettings.from_environ({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": raw}))
    assert said in info.value.message


def test_a_port_below_1024_without_the_right_to_bind_it_says_so_and_names_the_variable(monkeypatch):
    """A non-root container given SAGEMAKER_BIND_TO_PORT=81 failed in gunicorn's five retries
    ("connection to ('0.0.0.0', 81) failed: [Errno 13] Permission denied"), naming no setting."""
    import socket

    from byoc.serving.server import check_port

    def refuse(self: socket.socket, address: tuple[str, int]) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    with pytest.raises(ConfigError) as raised:
        check_port(ServingSettings.from_environ({"SAGEMAKER_BIND_TO_PORT": "81"}))
    message = str(raised.value)
    assert message.startswith("port 81 (SAGEMAKER_BIND_TO_PORT) cannot be bound: Permission denied"), message
    assert "below 1024" in message and "1024 or above" in message


@pytest.mark.parametrize("raw", ["-1", "1025"])
def test_a_payload_limit_out_of_range_names_0_among_the_values_taken(raw):
    """SAGEMAKER_MAX_PAYLOAD_IN_MB=0 is taken (a transform job's "no limit"), yet a value out of
    range was refused saying it "must be between 1 and 1024"."""
    with pytest.raises(
        ConfigError, match=rf"SAGEMAKER_MAX_PAYLOAD_IN_MB={raw} is out of range; it must be 0 "
    ):
        ServingSettings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": raw})


@pytest.mark.parametrize("raw", ["00", "+0", " 000 "])
def test_a_payload_limit_of_0_however_written_is_no_limit(raw):
    """`00` was refused as "SAGEMAKER_MAX_PAYLOAD_IN_MB=0 is out of range", the value `0` is taken."""
    settings = ServingSettings.from_environ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": raw})
    assert settings.unlimited_payload and settings.advertised_max_payload_mb == 0


@pytest.mark.parametrize(
    "name,raw",
    [
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "1_0"),
        ("SAGEMAKER_BIND_TO_PORT", "8_080"),
        ("SAGEMAKER_BIND_TO_PORT", "٨٠٨٠"),  # Arabic-Indic digits
        ("BYOC_WORKER_THREADS", "２"),  # a full-width 2
    ],
)
def test_a_number_is_ascii_digits_not_whatever_pythons_int_reads(name, raw):
    """int() reads `1_0` as 10 and `٨٠٨٠` as 8080: a typo started 10 workers without a word."""
    with pytest.raises(ConfigError, match=f"{name}={raw!r} is not an integer"):
        ServingSettings.from_environ({name: raw})


def test_a_blank_worker_class_is_unset_as_every_other_blank_setting_is():
    """BYOC_WORKER_CLASS of spaces stopped serve with "BYOC_WORKER_CLASS='' is not one of gthread,
    sync", where every other variable of spaces is unset (and the value shown was not the one set)."""
    assert ServingSettings.from_environ({"BYOC_WORKER_CLASS": "  "}).worker_class == "gthread"
    with pytest.raises(ConfigError, match=r"BYOC_WORKER_CLASS=' Gevent' is not one of gthread, sync"):
        ServingSettings.from_environ({"BYOC_WORKER_CLASS": " Gevent"})


@pytest.mark.parametrize(
    "environ,note",
    [
        (
            {"BYOC_WORKER_CLASS": "sync", "BYOC_WORKER_THREADS": "8"},
            "BYOC_WORKER_THREADS=8 ignored: BYOC_WORKER_CLASS=sync",
        ),
        (
            {"SAGEMAKER_MULTI_MODEL": "true", "BYOC_WORKER_CLASS": "sync"},
            "BYOC_WORKER_CLASS=sync ignored: a multi-model endpoint",
        ),
        (
            {"SAGEMAKER_MULTI_MODEL": "true", "BYOC_WORKER_THREADS": "8"},
            "BYOC_WORKER_THREADS=8 ignored: a multi-model endpoint",
        ),
        (
            {"BYOC_MULTI_MODEL_MEMORY_MB": "512"},
            "BYOC_MULTI_MODEL_MEMORY_MB=512 ignored: SAGEMAKER_MULTI_MODEL",
        ),
    ],
)
def test_a_setting_the_server_will_not_use_is_logged_as_ignored(environ, note):
    """Each was accepted and dropped without a word: a sync worker has no threads, a multi-model
    endpoint runs its own gthread workers, and a single model has no model memory budget."""
    assert any(note in line for line in ServingSettings.from_environ(environ).notes), (
        ServingSettings.from_environ(environ).notes
    )


def test_settings_the_server_uses_are_not_logged_as_ignored():
    environ = {"BYOC_WORKER_CLASS": "gthread", "BYOC_WORKER_THREADS": "4"}
    assert ServingSettings.from_environ(environ).notes == ()
    environ = {"SAGEMAKER_MULTI_MODEL": "true", "BYOC_MULTI_MODEL_MEMORY_MB": "512"}
    assert ServingSettings.from_environ(environ).notes == ()
