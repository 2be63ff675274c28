"""The compact row-set encoding of the submodel keys messages: exact round trip, the shorter
encoding chosen, and a clear refusal of every malformed input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedkit.privacy.secagg import SecAggProtocolError
from fedkit.privacy.secagg.extend import Reader
from fedkit.privacy.submodel._rowsets import (
    BITMAP,
    GAPS,
    encode_row_set,
    encoded_size,
    read_row_set,
)


def _decode(data: bytes) -> np.ndarray:
    reader = Reader(data, "test")
    out = read_row_set(reader.take, reader.unpack, "row set")
    reader.done()
    return out


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 2**63 - 1), max_size=40), st.sets(st.integers(0, 3000)))
def test_round_trip_is_exact(sparse, dense):
    for values in (sparse, dense, {2**63 - 1}, {0}, set()):
        ids = np.array(sorted(values), dtype=np.int64)
        data = encode_row_set(ids)
        assert _decode(data).tolist() == ids.tolist()
        assert len(data) == encoded_size(ids)[1]


def test_the_shorter_encoding_is_chosen():
    dense = np.arange(0, 1600, 2)  # half of a range: 1 bit per id beats a 1-byte gap
    assert encode_row_set(dense)[0] == BITMAP and len(encode_row_set(dense)) == 13 + 200
    sparse = np.arange(0, 10**6, 1000)  # 2-byte gaps beat 125 000 bitmap bytes
    assert encode_row_set(sparse)[0] == GAPS and len(encode_row_set(sparse)) == 9 + 1 + 999 * 2
    assert encode_row_set(np.array([], np.int64)) == bytes([GAPS]) + bytes(8)
    assert encode_row_set(np.array([3, 4, 200])).hex() == "0000000003000000040300c301"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.array([[1, 2]]), "1-D integer array"),
        (np.array([1.0, 2.0]), "1-D integer array"),
        (np.array([2, 1]), "strictly increasing"),
        (np.array([1, 1]), "strictly increasing"),
        (np.array([-1, 3]), r"\[0, 2\^63\)"),
    ],
)
def test_encoder_refuses_an_invalid_set(rows, message):
    with pytest.raises(ValueError, match=message):
        encode_row_set(rows)


def _gaps(count, body: bytes) -> bytes:
    return struct.pack(">BII", GAPS, count, len(body)) + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x05" + bytes(8), "unknown row-set encoding 5"),
        (_gaps(2, b"\x01"), r"1 complete varints \(last byte closed\), expected 2"),
        (_gaps(1, b"\x01\x02"), r"2 complete varints .*expected 1"),
        (_gaps(1, b"\x81"), r"last byte open"),
        (_gaps(1, b"\x80\x00"), "not minimally encoded"),
        (_gaps(1, b"\xff" * 9 + b"\x01"), "longer than 9 bytes"),
        (_gaps(2, b"\xff" * 8 + b"\x7f" + b"\x00"), r"id >= 2\^63"),  # 2^63 - 1, then 2^63
        (_gaps(1, b"\x01")[:-1], "truncated"),
        (struct.pack(">BQI", BITMAP, 0, 9) + b"\x01\x02", "padding bits are not zero"),
        (struct.pack(">BQI", BITMAP, 2**63 - 4, 5) + b"\x01", r"reaches 2\^63"),
        (struct.pack(">BQI", BITMAP, 0, 17) + b"\x01\x02", "truncated"),
    ],
)
def test_decoder_refuses_malformed_input(data, message):
    with pytest.raises(SecAggProtocolError, match=message):
        _decode(data)


def test_a_bitmap_decodes_to_its_set_bits():
    data = struct.pack(">BQI", BITMAP, 10, 9) + bytes([0b10000101, 0b1])
    assert _decode(data).tolist() == [10, 12, 17, 18]
