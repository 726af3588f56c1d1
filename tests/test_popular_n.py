"""popular's n: an integer or, as old clients send what the user typed, a
string of digits; the same clamping for both (docs/protocol.md)."""
import pytest

from chatnet.errors import ProtocolError
from chatnet.protocols import codec


def n_of(value):
    request = codec.Request(1, "popular", {"n": value})
    return request.integer("n", default=1, minimum=0, maximum=1000, digits=True)


@pytest.mark.parametrize("value, n", [
    (2, 2), ("2", 2), ("0", 0), (0, 0), ("007", 7), ("1000", 1000), ("1001", 1000), (5000, 1000),
    ("9" * 19, 1000), ("9" * 5000, 1000),
])
def test_integers_and_strings_of_digits(value, n):
    assert n_of(value) == n


@pytest.mark.parametrize("value", ["", "-1", -1, "2.5", 2.5, " 2", "2 ", "two", "\u0662", "\u00b2", True, [2], {"n": 2}])
def test_anything_else_is_400(value):
    with pytest.raises(ProtocolError) as e:
        n_of(value)
    assert e.value.code == 400


def test_other_integer_fields_take_no_strings():
    with pytest.raises(ProtocolError):
        codec.Request(1, "chat", {"ts": "2"}).integer("ts")
