"""Property: mutated ticket files either load or raise TicketFormatError, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_ticket
from ticketzoo.errors import TicketFormatError
from ticketzoo.ticket import Ticket

DATA = tiny_ticket("conv2", 0.7, name="fuzz").to_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, len(DATA) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, len(DATA))),
)
def test_mutated_files_fail_cleanly(edits, cut):
    data = bytearray(DATA)
    for pos, val in edits:
        data[pos] = val
    if cut is not None:
        data = data[:cut]
    try:
        Ticket.from_bytes(bytes(data), "fuzz.safetensors")
    except TicketFormatError as e:
        assert "fuzz.safetensors" in str(e)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_fail_cleanly(blob):
    try:
        Ticket.from_bytes(blob, "r.safetensors")
    except TicketFormatError:
        pass
