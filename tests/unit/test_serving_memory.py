"""When a worker hands freed memory back: MemoryBound's rule, and the reading it is based on."""

from __future__ import annotations

import os
from pathlib import Path

from byoc.serving import memory


class Process:
    """A process whose anonymous resident memory the test sets, counting releases."""

    def __init__(self, resident: int) -> None:
        self.resident = resident
        self.releases = 0

    def release(self) -> None:
        self.releases += 1
        self.resident = 100


def test_freed_memory_is_kept_up_to_the_limit_above_the_start_and_handed_back_past_it() -> None:
    process = Process(100)
    bound = memory.MemoryBound(50, 1000, measure=lambda: process.resident, release=process.release)
    process.resident = 150  # a batch's working set, kept for the next request
    assert bound.settle(999) is False and process.releases == 0
    process.resident = 151
    assert bound.settle(999) is True and process.releases == 1 and process.resident == 100
    assert bound.settle(999) is False and process.releases == 1  # nothing more to hand back


def test_after_a_huge_body_everything_freed_is_handed_back_below_the_limit_too() -> None:
    process = Process(100)
    bound = memory.MemoryBound(50, 1000, measure=lambda: process.resident, release=process.release)
    process.resident = 140  # a huge batch's answer, freed once it was written
    assert bound.settle(1000) is True and process.releases == 1 and process.resident == 100
    process.resident = 140
    assert bound.settle(-1) is False and process.releases == 1  # chunked: its size is unknown


def test_anonymous_resident_memory_leaves_out_file_backed_pages(tmp_path: Path) -> None:
    statm = tmp_path / "statm"
    statm.write_text("5000 3000 1000 10 0 2500 0\n")  # size resident shared(file) text lib data dt
    page = os.sysconf("SC_PAGE_SIZE")
    assert memory.anonymous_resident_bytes(statm) == 2000 * page
    assert memory.anonymous_resident_bytes(tmp_path / "absent") == 0
    here = memory.anonymous_resident_bytes()
    assert 0 < here < int(Path("/proc/self/statm").read_text().split()[1]) * page


def test_a_chunked_answer_lets_go_of_each_chunk_as_it_is_written() -> None:
    """A huge batch's answer is freed as the server writes it, so the worker's hand-back after the
    response finds it free (held until the response object is dropped, it stayed resident)."""
    from byoc.serving.app import respond_with
    from byoc.serving.handler import InferenceResponse

    chunks = [b"a\n", b"bb\n", b"ccc\n"]
    response = respond_with(InferenceResponse(chunks, "text/csv"), "id")
    assert response.headers["Content-Length"] == "9"
    written = []
    for chunk in response.response:
        written.append(chunk)
        assert len(chunks) == 3 - len(written)  # the ones written are no longer held
    assert written == [b"a\n", b"bb\n", b"ccc\n"] and chunks == []
