"""Media types of training channels: parsing ``text/csv;label_size=0`` and the aliases users write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

CSV = "text/csv"
PARQUET = "application/x-parquet"
JSONLINES = "application/jsonlines"
LIBSVM = "text/libsvm"
DEFAULT = CSV

# Spellings seen in the wild (SDK, built-in algorithms, Autopilot, IANA) -> the canonical type.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "csv": CSV,
        "text/x-csv": CSV,
        "application/csv": CSV,
        "text/comma-separated-values": CSV,
        "parquet": PARQUET,
        "application/parquet": PARQUET,
        "application/vnd.apache.parquet": PARQUET,
        "application/x-parquet": PARQUET,
        "jsonlines": JSONLINES,
        "jsonl": JSONLINES,
        "application/x-jsonlines": JSONLINES,
        "application/json-lines": JSONLINES,
        "application/jsonl": JSONLINES,
        "application/x-ndjson": JSONLINES,
        "application/ndjson": JSONLINES,
        "libsvm": LIBSVM,
        "text/x-libsvm": LIBSVM,
        "application/x-libsvm": LIBSVM,
        "text/svmlight": LIBSVM,
    }
)


@dataclass(frozen=True)
class MediaType:
    """``essence`` is the canonical lower-case type; ``params`` its ``;key=value`` parameters."""

    essence: str
    params: Mapping[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def label_size(self) -> int | None:
        value = self.params.get("label_size")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None

    @property
    def header(self) -> bool | None:
        """text/csv's ``header`` parameter (RFC 4180: ``present`` or ``absent``; ``true`` and
        ``false`` too); None when it is not given or not one of those (see HEADER_VALUES)."""
        return HEADER_VALUES.get(self.params.get("header", "").lower())


# RFC 4180's spellings of text/csv's header parameter, and the boolean ones users write.
HEADER_VALUES: Mapping[str, bool] = MappingProxyType(
    {"present": True, "absent": False, "true": True, "false": False}
)


def parse(raw: str | None) -> MediaType:
    """Parse a ContentType; ``None`` or empty means text/csv, like the built-in algorithms."""
    if raw is None or not str(raw).strip():
        return MediaType(DEFAULT, {}, "")
    text = str(raw).strip()
    head, *rest = text.split(";")
    essence = head.strip().lower()
    params: dict[str, str] = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip().strip('"') if sep else ""
    return MediaType(ALIASES.get(essence, essence), params, text)
