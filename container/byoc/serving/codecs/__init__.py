"""One codec per media type, in read-only registries (Seldon MLServer's codec-per-content-type design).

Decoders: text/csv, application/json, application/jsonlines, application/x-npy,
application/x-parquet.  Encoders: text/csv, application/json, application/jsonlines,
application/x-npy.  Lookups ignore case and parameters (``text/csv; charset=utf-8`` is
text/csv); Accept negotiation uses werkzeug's parser (lists, q-values, wildcards).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header, parse_list_header, parse_options_header

from byoc.errors import NotAcceptable, UnsupportedMediaType, UserError
from byoc.serving.codecs import csv, json, jsonlines, npy, parquet
from byoc.serving.codecs.base import Decoder, Encoder, not_utf8

DEFAULT_CONTENT_TYPE = json.MEDIA_TYPE
DEFAULT_ACCEPT = json.MEDIA_TYPE
_TEXT_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_ANSWER_CHARSETS = frozenset({"utf-8", "utf8"})  # answers are UTF-8, which ASCII cannot promise to hold

__all__ = [
    "Decoder",
    "Encoder",
    "decoders",
    "encoders",
    "supported_content_types",
    "supported_accept_types",
    "find_decoder",
    "choose_encoder",
    "name_the_default",
    "not_utf8",
    "offered",
]


@lru_cache(maxsize=1)
def decoders() -> Mapping[str, Decoder]:
    """Media type (and alias) -> decoder."""
    table: dict[str, Decoder] = {}
    for decoder in (csv.DECODER, json.DECODER, jsonlines.DECODER, npy.DECODER, parquet.DECODER):
        for name in (decoder.media_type, *decoder.aliases):
            table[name] = decoder
    return MappingProxyType(table)


@lru_cache(maxsize=1)
def encoders() -> Mapping[str, Encoder]:
    return MappingProxyType(
        {e.media_type: e for e in (csv.ENCODER, json.ENCODER, jsonlines.ENCODER, npy.ENCODER)}
    )


@lru_cache(maxsize=1)
def _own_names() -> Mapping[str, str]:
    """Every media type a decoder answers to -> the decoder's own (``application/x-jsonlines`` ->
    ``application/jsonlines``), so an Accept names a format by any name its Content-Type may."""
    return MappingProxyType({name: decoder.media_type for name, decoder in decoders().items()})


def supported_content_types() -> tuple[str, ...]:
    return tuple(dict.fromkeys(d.media_type for d in decoders().values()))


def supported_accept_types() -> tuple[str, ...]:
    return tuple(encoders())


@lru_cache(maxsize=64)
def find_decoder(content_type: str | None) -> Decoder:
    """The decoder for a Content-Type header; missing means JSON, as in the AWS toolkits."""
    media_type, params = parse_options_header(content_type or "")
    media_type = media_type.strip().lower() or DEFAULT_CONTENT_TYPE
    decoder = decoders().get(media_type)
    if decoder is None:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported; use one of "
            f"{', '.join(supported_content_types())}"
        )
    charset = params.get("charset", "").strip().lower()
    if charset and charset not in _TEXT_CHARSETS:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r}: charset {charset!r} is not supported; send UTF-8 (charset=utf-8)"
        )
    return decoder


DEFAULT_READ_NOTE = (
    "; the request has no Content-Type, so its body was read as "
    f"{DEFAULT_CONTENT_TYPE} (the default, as in the AWS toolkits): send the body's own type "
    "(CSV rows: text/csv, one JSON value per line: application/jsonlines), with ContentType= on "
    "invoke_endpoint or content_type= on Transformer.transform (a transform job's ContentType)"
)


def name_the_default(exc: UserError, content_type: str | None) -> None:
    """Say in ``exc`` that a body without a Content-Type was read as JSON, when it could not be:
    a CSV body sent without one (a transform job or invoke_endpoint call left without
    ContentType) was refused as "not valid JSON (line 1, column 3: Extra data)", naming neither
    the missing header nor the fix."""
    if (content_type or "").strip() or exc.code != "undecodable_body" or DEFAULT_READ_NOTE in exc.message:
        return
    exc.message += DEFAULT_READ_NOTE
    exc.args = (exc.message,)


_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")  # RFC 9110 section 12.4.2


def _check_qualities(accept: str) -> None:
    """A range whose q-value RFC 9110 does not allow -> 406 naming it: werkzeug drops such a range
    without a word, answering in another format or with a 406 that did not say why."""
    for media_range in parse_list_header(accept):
        quality = parse_options_header(media_range)[1].get("q")
        if quality is not None and not _QVALUE.fullmatch(quality.strip()):
            raise NotAcceptable(
                f"Accept {accept!r}: {media_range.strip()!r} has q={quality!r}; a q-value is a number from 0 "
                "to 1 with up to 3 decimals (q=0.5), or leave it out for 1"
            )


@lru_cache(maxsize=256)
def choose_encoder(
    accept: str | None, request_type: str, default: str | None = None, fields: int = 1
) -> Encoder:
    """The encoder for an Accept header, for an answer of ``fields`` output fields.

    Missing or ``*/*``: ``default`` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT) if set, else the
    request's own media type when we can write it, else JSON.  A media type is named by any
    name a Content-Type may give it (``application/x-jsonlines`` is JSON Lines, answered as
    ``application/jsonlines``): such an Accept was a 406 though the request's type was read.  Parameters on the client's
    media ranges (``text/csv; charset=utf-8``) do not prevent a match, except a charset other
    than UTF-8: that range is not one we can answer in (it was answered in UTF-8 regardless).
    A format that cannot carry ``fields`` (npy: one field) is passed over, as the default too,
    while the Accept allows another: an npy request answered with ``predicted_label,probability``
    was a 406 with no Accept, ``*/*`` or ``application/x-npy, application/json;q=0.5``; an Accept
    of npy alone still gets npy's 406 asking for one field.
    """
    table, own_names = encoders(), _own_names()
    request_type = own_names.get(request_type.strip().lower(), request_type)
    preferred = next(
        name
        for name in (default, request_type, DEFAULT_ACCEPT)
        if name is not None and name in table and table[name].carries(fields)
    )
    if not accept or not accept.strip():
        return table[preferred]
    _check_qualities(accept)
    ranges, charsets = _ranges(accept)
    candidates = [preferred] + [name for name in table if name != preferred]
    match = ranges.best_match([name for name in candidates if table[name].carries(fields)])
    match = match or ranges.best_match(candidates)  # only a format that cannot: its own 406 says why
    if match is None:
        why = f" (answers are UTF-8, not {charsets[0]!r}: ask charset=utf-8 or none)" if charsets else ""
        raise NotAcceptable(f"Accept {accept!r} cannot be satisfied{why}; {offered(accept)}")
    return table[match]


def _ranges(accept: str) -> tuple[MIMEAccept, list[str]]:
    """The media ranges of ``accept`` that an answer could meet, each type by its encoder's own
    name, and the charsets of those left out for asking an encoding answers are not in."""
    own_names = _own_names()
    ranges, charsets = [], []
    for value, quality in parse_accept_header(accept, MIMEAccept):
        media_type, params = parse_options_header(value)
        charset = params.get("charset", "").strip().lower()
        if charset and charset not in _ANSWER_CHARSETS:
            charsets.append(charset)  # a range asking for an encoding the answer is not in
            continue
        media_type = media_type.strip().lower()
        ranges.append((own_names.get(media_type, media_type), quality))
    return MIMEAccept(ranges), charsets


def offered(accept: str | None) -> str:
    """What a 406 for ``accept`` (or the setting that gives it) offers instead: the types answers
    come in, less those ``accept`` refuses (q=0 on the range naming the type most specifically,
    as werkzeug weighs a match: ``text/csv;q=0``, ``text/*;q=0``, ``*/*;q=0``).  Offering a type the
    client refused told it to ask for what it had ruled out."""
    answered = supported_accept_types()
    ranges = _ranges(accept)[0] if accept else MIMEAccept()
    kept = [name for name in answered if name not in ranges or ranges.quality(name) > 0]
    if not kept:
        return f"it refuses every type answers come in ({', '.join(answered)}): accept one of them"
    return f"use one of {', '.join(kept)}"
