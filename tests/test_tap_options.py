"""Option checks of twistd chatnode."""
import pytest
from twisted.python import usage

from chatnet.tap_node import MAX_MESSAGE_CHARS, Options


def parse(*args):
    options = Options()
    options.parseOptions(["--cluster-secret", "s", *args])
    return options


def test_defaults():
    config = parse().config()
    assert config.zookeeper == "127.0.0.1:2181"
    assert config.listen == "tcp:0:interface=127.0.0.1"
    assert config.max_message_chars == 4096 and config.rate_limit == 20 and config.rate_burst == 40


@pytest.mark.parametrize("args", [
    ["--max-message-chars", str(MAX_MESSAGE_CHARS + 1)],
    ["--max-message-chars", "0"],
    ["--zk-session-timeout", "0.5"],
])
def test_bad_values_are_usage_errors(args):
    with pytest.raises(usage.UsageError):
        parse(*args)


def test_a_message_of_the_largest_size_fits_one_internal_value():
    import orjson

    from chatnet.messages import ChatMessage, new_message_id

    text = "\x01" * MAX_MESSAGE_CHARS  # the longest JSON escape per character
    data = orjson.dumps(ChatMessage(new_message_id(), "u" * 128, text, 2**53, "f" * 32, "", "r" * 128, 2**40).frame_data())
    assert len(data) < 65535


def test_token_options(tmp_path, monkeypatch):
    pytest.importorskip("jwt")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from twisted.internet.task import Clock

    from chatnet.tokens import TokenVerifier

    monkeypatch.delenv("CHATNET_JWT_SECRET", raising=False)
    secret = "s" * 32
    path = tmp_path / "key.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config = parse("--jwt-secret", secret, "--jwt-public-key", str(path)).config()
    assert config.jwt_secret == secret and config.jwt_public_key == str(path)
    assert set(TokenVerifier.from_config(config, Clock()).keys) == {"HS256", "ES256"}
    assert TokenVerifier.from_config(parse().config(), Clock()) is None
    monkeypatch.setenv("CHATNET_JWT_SECRET", secret)
    assert parse().config().jwt_secret == secret
    monkeypatch.delenv("CHATNET_JWT_SECRET")
    for args in (["--jwt-secret", "short"], ["--jwt-public-key", str(tmp_path / "missing.pem")]):
        with pytest.raises(usage.UsageError):
            parse(*args)
