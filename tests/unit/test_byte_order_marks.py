"""UTF-8's byte order mark has one spelling in byoc: the standard library's ``codecs.BOM_UTF8``
(``byoc.wide_text.UTF8_BOM_TEXT`` once decoded).

It was spelled four more times (``csv_header.BOM``, ``sources.UTF8_BOM``, and literals in the CSV
reader and both JSON decoders): a reader that spelled it wrong, or a new one that missed it,
would take Excel's 'CSV UTF-8' mark for part of the first column's name.
"""

from __future__ import annotations

import ast
import codecs
from pathlib import Path

from byoc import wide_text

PACKAGE = Path(__file__).resolve().parents[2] / "container" / "byoc"


def test_the_mark_as_text_is_the_standard_librarys_mark_decoded():
    assert wide_text.UTF8_BOM_TEXT == "\ufeff" == codecs.BOM_UTF8.decode("utf-8")


def test_no_module_spells_the_utf8_byte_order_mark_itself():
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = node.value if isinstance(node, ast.Constant) else None
            if (isinstance(value, str) and "\ufeff" in value) or (
                isinstance(value, bytes) and codecs.BOM_UTF8 in value
            ):
                spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not spelled, f"use codecs.BOM_UTF8 or byoc.wide_text.UTF8_BOM_TEXT: {spelled}"
