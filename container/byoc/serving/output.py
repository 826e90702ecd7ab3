"""What a prediction response contains, following SageMaker Autopilot's inference convention.

Fields (chosen by ``SAGEMAKER_INFERENCE_OUTPUT`` for the endpoint, or per request with the
custom attribute ``output=...`` in ``X-Amzn-SageMaker-Custom-Attributes``):

- ``predicted_label``: the class in its original form (``"yes"``, not ``1``); for
  regression the predicted value.  The default.
- ``probability``: the probability of the predicted label (classification only).
- ``probabilities``: one probability per class, in the order of ``labels``.
- ``labels``: every class the model knows, in the order of ``probabilities``.

``SAGEMAKER_INFERENCE_SUPPORTED`` (Autopilot sets it beside ``SAGEMAKER_INFERENCE_OUTPUT``)
advertises which fields the endpoint returns; when it is set, the server refuses at start an
output setting outside it and answers 400 to a request that asks for a field outside it.
``train`` writes the pair for each model (:func:`inference_environment`).

Encoders lay the fields out in the order they were asked for: JSON
``{"predictions": [{"predicted_label": "yes", "probability": 0.93}, ...]}``, JSON Lines one
such object per line, CSV one row per record with the fields as columns in that order (list
fields as a JSON array in one quoted cell) and no header, npy an array of the single field
asked for (probabilities: rows x classes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from byoc.errors import ConfigError, UserError

PREDICTED_LABEL = "predicted_label"
PROBABILITY = "probability"
PROBABILITIES = "probabilities"
LABELS = "labels"
FIELDS = (PREDICTED_LABEL, PROBABILITY, PROBABILITIES, LABELS)
CLASSIFICATION_ONLY = frozenset({PROBABILITY, PROBABILITIES, LABELS})
NEEDS_PROBA = frozenset({PROBABILITY, PROBABILITIES})
DEFAULT_FIELDS = (PREDICTED_LABEL,)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


def available_fields(is_classifier: bool, has_proba: bool) -> tuple[str, ...]:
    """The fields a model can return: the label always, the class list for a classifier, the
    probabilities when it has predict_proba.  ``train`` (for the recommended environment) and the
    server both ask this one rule."""
    return tuple(f for f in FIELDS if f == PREDICTED_LABEL or (is_classifier and (f == LABELS or has_proba)))


def _model_kind(available: Sequence[str]) -> str:
    """What a model is, told by the fields :func:`available_fields` gives it: every classifier
    returns its ``labels``, and a classifier with predict_proba its probabilities too."""
    if LABELS not in available:
        return "a regressor (its predicted_label is the predicted value; no classes, no probabilities)"
    return "a classifier without predict_proba (its algorithm gives no probabilities)"


def inference_environment(available: Sequence[str]) -> dict[str, str]:
    """The container environment to deploy a model with (``Model(env=...)``), as Autopilot gives
    its inference containers: the fields it supports, and the default answer."""
    return {
        "SAGEMAKER_INFERENCE_SUPPORTED": ",".join(available),
        "SAGEMAKER_INFERENCE_OUTPUT": ",".join(DEFAULT_FIELDS),
    }


def parse_fields(
    text: str, *, available: Sequence[str], source: str, supported: Sequence[str] | None = None
) -> tuple[str, ...]:
    """``"predicted_label, probabilities"`` -> a checked tuple; raises UserError naming ``source``.

    ``supported`` (SAGEMAKER_INFERENCE_SUPPORTED, when set) narrows what may be asked for."""
    allowed = ", ".join(available if supported is None else supported)
    fields = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if not fields:
        raise UserError(f"{source} names no output field; use some of {allowed}", code="bad_output_fields")
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise UserError(
            f"{source}: unknown output field {', '.join(map(repr, unknown))}; use some of {allowed}",
            code="bad_output_fields",
        )
    unavailable = [f for f in fields if f not in available]
    if unavailable:
        raise UserError(
            f"{source}: {', '.join(map(repr, unavailable))} not available for this model: it is "
            f"{_model_kind(available)}, which returns {', '.join(available)} only; use "
            + (allowed if "," not in allowed else f"some of {allowed}"),
            code="bad_output_fields",
        )
    unsupported = [f for f in fields if supported is not None and f not in supported]
    if unsupported:
        raise UserError(
            f"{source}: {', '.join(map(repr, unsupported))} not supported by this endpoint "
            f"(SAGEMAKER_INFERENCE_SUPPORTED={','.join(supported or ())}); use some of {allowed}",
            code="bad_output_fields",
        )
    return fields


def supported_fields(inference_supported: str | None, available: Sequence[str]) -> tuple[str, ...] | None:
    """SAGEMAKER_INFERENCE_SUPPORTED as a checked tuple, None when unset (every available field may
    be asked for).  A field the model cannot return stops the server: the advertisement would be false."""
    if not inference_supported:
        return None
    try:
        return parse_fields(inference_supported, available=available, source="SAGEMAKER_INFERENCE_SUPPORTED")
    except UserError as exc:
        raise ConfigError(exc.message) from None


def default_fields(
    inference_output: str | None, available: Sequence[str], supported: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The endpoint's fields from SAGEMAKER_INFERENCE_OUTPUT; a bad value, or one outside
    SAGEMAKER_INFERENCE_SUPPORTED, stops the server."""
    try:
        return parse_fields(
            inference_output or ",".join(DEFAULT_FIELDS),
            available=available,
            source="SAGEMAKER_INFERENCE_OUTPUT" + ("" if inference_output else " (unset: predicted_label)"),
            supported=supported,
        )
    except UserError as exc:
        raise ConfigError(exc.message) from None


def parse_custom_attributes(header: str | None) -> dict[str, str]:
    """``"output=predicted_label,probability;trace=abc"`` -> {"output": ..., "trace": ...}."""
    out: dict[str, str] = {}
    if not header:
        return out
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


_HIDDEN_OUTPUT = re.compile(r"(?:^|[,\s])output\s*=", re.IGNORECASE)


def _refuse_hidden_output(attributes: Mapping[str, str]) -> None:
    """400 for ``output=`` inside another attribute's value (``x=1,output=labels``): attributes
    are separated by ``;`` (``output``'s own value holds commas), so it was read as part of
    ``x`` and the fields asked for were silently not the ones returned."""
    for key, value in attributes.items():
        if _HIDDEN_OUTPUT.search(value):
            raise UserError(
                f"{CUSTOM_ATTRIBUTES_HEADER}: 'output=' is inside the value of attribute '{key}' "
                f"({key}={value}); separate attributes with ';', e.g. {key}=...;output=predicted_label,probability",
                code="bad_output_fields",
            )


def _refuse_repeated_output(header: str) -> None:
    """400 for ``output=`` given twice (``output=labels;output=probability``): the last one was
    answered and the first dropped without a word, so the fields asked for were not all returned."""
    given = [part.strip() for part in header.split(";") if part.partition("=")[0].strip().lower() == "output"]
    if len(given) > 1:
        raise UserError(
            f"{CUSTOM_ATTRIBUTES_HEADER} gives output= {len(given)} times ({'; '.join(given)}); give it "
            "once, naming every field wanted: output=predicted_label,probability",
            code="bad_output_fields",
        )


def request_fields(
    custom_attributes: str | None,
    *,
    default: tuple[str, ...],
    available: Sequence[str],
    supported: Sequence[str] | None = None,
) -> tuple[str, ...]:
    if not custom_attributes:
        return default
    attributes = parse_custom_attributes(custom_attributes)
    _refuse_hidden_output({key: value for key, value in attributes.items() if key != "output"})
    wanted = attributes.get("output")
    if wanted is None:
        return default
    _refuse_repeated_output(custom_attributes)
    return parse_fields(
        wanted, available=available, source=f"{CUSTOM_ATTRIBUTES_HEADER} output=", supported=supported
    )


RECORDS_AT_ONCE = 1 << 14  # records an encoder makes dicts of at a time (Prediction.record_runs)


@dataclass(frozen=True)
class Prediction:
    """Per-field results for ``n`` records.

    ``values[predicted_label]``: list of labels (or float array for regression);
    ``values[probability]``: float array (n,); ``values[probabilities]``: float array (n, k);
    ``values[labels]``: the class list, the same for every record.
    """

    fields: tuple[str, ...]
    values: Mapping[str, Any]
    n: int

    def column(self, field: str) -> list[Any]:
        """One value per record as plain Python objects (JSON-ready)."""
        value = self.values[field]
        if field == LABELS:
            return [value] * self.n
        return value.tolist() if isinstance(value, np.ndarray) else list(value)

    def records(self) -> list[dict[str, Any]]:
        return [record for run in self.record_runs() for record in run]

    def record_runs(self, size: int = RECORDS_AT_ONCE) -> Iterator[list[dict[str, Any]]]:
        """The records, ``size`` at a time: an encoder that made every record's dict at once held
        about 230 bytes a record (300 MB of a worker for a 3.3 MB CSV body of a million rows
        answered in JSON), where its answer took 24."""
        columns = [self.column(f) for f in self.fields]
        for start in range(0, self.n, size):
            rows = zip(*(column[start : start + size] for column in columns), strict=True)
            yield [dict(zip(self.fields, row, strict=True)) for row in rows]

    @staticmethod
    def concat(parts: Sequence[Prediction]) -> Prediction:
        """Join the results of a chunked batch."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        values: dict[str, Any] = {}
        for field in first.fields:
            chunks = [p.values[field] for p in parts]
            if field == LABELS:
                values[field] = chunks[0]
            elif isinstance(chunks[0], np.ndarray):
                values[field] = np.concatenate(chunks)
            else:
                values[field] = [v for chunk in chunks for v in chunk]
        return Prediction(first.fields, values, sum(p.n for p in parts))
