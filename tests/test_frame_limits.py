"""Numbers in client frames stay within what every store accepts: integers
fit 64 bits, a chat's ts far from the server clock becomes the server time,
request ids that could not be written back are not echoed."""
import json

import orjson
import pytest

from chatnet.errors import ProtocolError
from chatnet.protocols import codec

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000


def request(data, frame_id=1):
    return codec.decode(json.dumps({"id": frame_id, "action": "x", "data": data}).encode())


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, -(2**63) - 1])
def test_integer_beyond_64_bits_is_400(value):
    with pytest.raises(ProtocolError) as e:
        request({"n": value}).integer("n", maximum=1000)
    assert e.value.code == 400


@pytest.mark.parametrize("text", [b"18446744073709551616", b"123456789012345678901234567890", b"1.5", b"1e3"])
def test_numbers_orjson_reads_as_floats_are_not_integers(text):
    req = codec.decode(b'{"action":"x","data":{"n":%s}}' % text)
    with pytest.raises(ProtocolError) as e:
        req.integer("n")
    assert e.value.code == 400


def test_integer_limits_inside_64_bits():
    assert request({"n": 2**63 - 1}).integer("n", maximum=1000) == 1000
    assert request({"n": -(2**63)}).integer("n") == -(2**63)


@pytest.mark.parametrize("ts", [-(2**63), 2**63 - 1, 0, -1, NOW + DAY + 1, NOW - DAY - 1])
def test_ts_far_from_the_server_clock_is_the_server_time(ts):
    assert request({"ts": ts}).timestamp("ts", NOW) == NOW


@pytest.mark.parametrize("ts", [NOW, NOW + DAY, NOW - DAY, NOW - 5000])
def test_ts_within_a_day_is_kept(ts):
    assert request({"ts": ts}).timestamp("ts", NOW) == ts


def test_missing_ts_is_the_server_time():
    assert request({}).timestamp("ts", NOW) == NOW


@pytest.mark.parametrize("ts", [1.5, "1700000000000", True, [], {}, 1e30, 2**63, 2**64 - 1, 2**64, -(2**63) - 1])
def test_non_integer_ts_is_400(ts):
    with pytest.raises(ProtocolError) as e:
        request({"ts": ts}).timestamp("ts", NOW)
    assert e.value.code == 400


@pytest.mark.parametrize("frame_id", [2**63, 2**64 - 1, -(2**63), "x" * 1000, "a\x00b", 0])
def test_odd_request_ids_are_echoed_and_encodable(frame_id):
    req = request({}, frame_id)
    assert req.id == frame_id
    assert orjson.loads(codec.encode("ack", {"re": req.id}, req.id))["re"] == frame_id
    error = ProtocolError(400, "x", "chat")
    assert orjson.loads(codec.encode_error(error, req.id))["re"] == frame_id


@pytest.mark.parametrize("text", [b"18446744073709551616", b"-9223372036854775809", b"1.5", b"[1]", b"{}", b"true"])
def test_ids_that_are_no_64_bit_integer_nor_string_are_not_echoed(text):
    req = codec.decode(b'{"id":%s,"action":"x"}' % text)
    assert req.id is None
    assert "re" not in orjson.loads(codec.encode_error(ProtocolError(400, "x"), req.id))
