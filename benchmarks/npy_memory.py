"""application/x-npy request bodies: traced peak memory of byoc's decoder over the body's size.

A ~50 MB float64 body (``--rows`` x ``--columns``) as numpy.save writes it, in C order, Fortran
order or big-endian (``--order C|F|>``), decoded by byoc.serving.codecs.npy (header to validated
columns) under tracemalloc; beside it, the same run's baseline: np.load of the body alone, which
copies the array out of it.  Figures are multiples of the body's size.

    .venv/bin/python benchmarks/npy_memory.py [--order C] [--rows 655360] [--columns 10]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

from byoc.artifact import Feature
from byoc.serving.codecs import npy
from byoc.serving.schema import RequestSchema
from support import traced_peak


def body_of(rows: int, columns: int, order: str) -> bytes:
    array = np.random.default_rng(0).random((rows, columns))
    if order == "F":
        array = np.asfortranarray(array)
    elif order == ">":
        array = array.astype(">f8")
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", choices=("C", "F", ">"), default="C")
    parser.add_argument("--rows", type=int, default=655_360)
    parser.add_argument("--columns", type=int, default=10)
    args = parser.parse_args()
    schema = RequestSchema([Feature(f"f{j}", "numeric", "float64") for j in range(args.columns)])
    body = body_of(args.rows, args.columns, args.order)
    byoc = traced_peak(lambda: npy.decode(body, schema, 0))
    baseline = traced_peak(lambda: np.load(io.BytesIO(body), allow_pickle=False))
    print(
        f"order {args.order}, body {len(body) / 1e6:.1f} MB: byoc decode peak {byoc / len(body):.2f}x the body, "
        f"np.load alone {baseline / len(body):.2f}x"
    )


if __name__ == "__main__":
    main()
