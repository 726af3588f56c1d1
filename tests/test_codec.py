import orjson
import pytest
from hypothesis import given, strategies as st

from chatnet.errors import ProtocolError
from chatnet.protocols import codec


def decode_error(payload, binary=False):
    with pytest.raises(ProtocolError) as e:
        codec.decode(payload, binary)
    return e.value


@pytest.mark.parametrize("payload", [b"", b"nope", b"{", b"\xff\xfe"])
def test_not_json(payload):
    assert decode_error(payload).code == 400


@pytest.mark.parametrize("payload", [b"[]", b"1", b'"x"', b"null"])
def test_not_an_object(payload):
    assert decode_error(payload).code == 400


def test_binary():
    assert decode_error(b'{"action":"login"}', True).code == 400


def test_missing_and_wrong_action():
    assert decode_error(b'{"data":{}}').code == 400
    err = decode_error(b'{"id": 7, "action": 3}')
    assert err.code == 400 and err.re == 7


def test_data_not_object():
    assert decode_error(b'{"action":"chat","data":"x"}').code == 400


def test_fields_are_type_checked():
    request = codec.decode(b'{"id":1,"action":"login","data":{"username":{"$gt":""},"n":true}}')
    with pytest.raises(ProtocolError) as e:
        request.string("username")
    assert e.value.code == 400
    with pytest.raises(ProtocolError):
        request.integer("n")
    with pytest.raises(ProtocolError) as e:
        request.string("missing")
    assert e.value.code == 400


def test_length_limit_is_413():
    request = codec.decode(b'{"action":"chat","data":{"message":"abcdef"}}')
    with pytest.raises(ProtocolError) as e:
        request.string("message", max_length=5)
    assert e.value.code == 413


def test_data_defaults_to_empty_object():
    request = codec.decode(b'{"action":"listRooms"}')
    assert request.data == {} and request.id is None


def test_encode_answer_and_error():
    frame = orjson.loads(codec.encode("login", {"username": "u"}, re=5))
    assert frame["action"] == "login" and frame["re"] == 5 and isinstance(frame["id"], int)
    err = orjson.loads(codec.encode_error(ProtocolError(404, "user x is not on line", "chat"), re=9))
    assert err["data"] == {"code": 404, "message": "user x is not on line", "ext": "chat"}
    assert err["re"] == 9
