"""Regenerate README sections from the code that defines them, so the docs cannot drift.

``python -m byoc.docs README.md`` rewrites every section between
``<!-- BEGIN GENERATED: <name> -->`` and ``<!-- END GENERATED: <name> -->``;
``--check`` rewrites nothing and exits 1 when a section is stale (or a required one is
missing), printing which.  Sections:

- ``hyperparameters`` (required): the declarations of byoc.hyperparameters and each algorithm;
- ``metrics``: the metric log lines and their SageMaker metric-definition regexes;
- ``content-types``: the serving codecs' media types (skipped while byoc.serving.codecs is
  not importable, so the docs tool works on a training-only checkout).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

REQUIRED = ("hyperparameters",)
_SECTION = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(?P<end><!-- END GENERATED: (?P=name) -->)",
    re.S,
)


def hyperparameters_section() -> str:
    from byoc.hyperparameters import markdown_table

    return markdown_table()


def metrics_section() -> str:
    from byoc import metrics

    rows = ["| problem type | metrics (logged as `<channel>:<metric>=<value>`) |", "|---|---|"]
    for problem_type in ("binary_classification", "multiclass_classification", "regression"):
        rows.append(f"| {problem_type} | " + ", ".join(f"`{m}`" for m in metrics.names(problem_type)) + " |")
    rows += [
        "",
        "Channels: "
        + ", ".join(f"`{c}`" for c in metrics.CHANNELS)
        + f". Every metric's regex is `<channel>:<metric>={metrics.VALUE_PATTERN}`; "
        "`container/train --metric-definitions` prints them all as JSON for "
        "`metric_definitions`.",
    ]
    return "\n".join(rows) + "\n"


def content_types_section() -> str | None:
    try:
        from byoc.serving import codecs

        content_types = codecs.supported_content_types()
        accept_types = codecs.supported_accept_types()
    except (ImportError, AttributeError):
        return None
    rows = ["| media type | request (Content-Type) | response (Accept) |", "|---|---|---|"]
    for media in dict.fromkeys((*content_types, *accept_types)):
        rows.append(
            f"| `{media}` | {'yes' if media in content_types else 'no'} | "
            f"{'yes' if media in accept_types else 'no'} |"
        )
    return "\n".join(rows) + "\n"


def generators() -> dict[str, Callable[[], str | None]]:
    return {
        "hyperparameters": hyperparameters_section,
        "metrics": metrics_section,
        "content-types": content_types_section,
    }


def render(text: str) -> tuple[str, list[str], list[str]]:
    """-> (new text, names of sections that changed, names of required sections missing)."""
    makers = generators()
    changed: list[str] = []
    found: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        found.add(name)
        maker = makers.get(name)
        body = maker() if maker else None
        if body is None:
            return match.group(0)
        if body != match.group("body"):
            changed.append(name)
        return match.group("begin") + body + match.group("end")

    new_text = _SECTION.sub(replace, text)
    return new_text, changed, [name for name in REQUIRED if name not in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m byoc.docs", description=__doc__.split("\n")[0])
    parser.add_argument("readme", type=Path, help="the Markdown file to update (README.md)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if a generated section is stale or missing",
    )
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{args.readme}: cannot be read ({exc.strerror})", file=sys.stderr)
        return 2
    new_text, changed, missing = render(text)
    for name in missing:
        print(
            f"{args.readme}: no '<!-- BEGIN GENERATED: {name} -->' ... "
            f"'<!-- END GENERATED: {name} -->' section; add the two markers where the "
            "table belongs",
            file=sys.stderr,
        )
    if args.check:
        for name in changed:
            print(
                f"{args.readme}: section '{name}' is stale; run `python -m byoc.docs "
                f"{args.readme}` (or `make docs`)",
                file=sys.stderr,
            )
        return 1 if changed or missing else 0
    if changed:
        args.readme.write_text(new_text, encoding="utf-8")
        print(f"{args.readme}: updated {', '.join(changed)}")
    else:
        print(f"{args.readme}: up to date")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
