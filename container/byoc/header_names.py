"""A CSV header's blank cell, named by its place: the one rule for training's CSV reader
(byoc.data.csv_reader) and the endpoint's CSV header (byoc.serving.codecs.csv).

Training names a blank header cell (not the first one over a distinct value in every row: a saved
row index, refused) ``column_<i>``, ``i`` its 0-based place in the file, label included.  A CSV
request carrying the same header, without the label, has the cell one place earlier after the
label: :func:`place_in_training` counts it back, so the request's blank cell names the feature
training named (:meth:`byoc.serving.schema.RequestSchema.blank_cell_named`).
"""

from __future__ import annotations


def blank_cell_name(position: int) -> str:
    """The name of a blank header cell at 0-based ``position`` in a training file."""
    return f"column_{position}"


def place_in_training(position: int, label_at: int | None) -> int:
    """A request header cell's 0-based ``position`` as its place in the training file, whose
    label column (not in requests) was at ``label_at`` (model.json ``target.index``)."""
    return position + 1 if label_at is not None and position >= label_at else position
