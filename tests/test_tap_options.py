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

    from chatnet.domain.messages import ChatMessage, new_message_id

    text = "\x01" * MAX_MESSAGE_CHARS  # the longest JSON escape per character
    data = orjson.dumps(ChatMessage(new_message_id(), "u" * 128, text, 2**53, "f" * 32, "", "r" * 128, 2**40).frame_data())
    assert len(data) < 65535


# -- the gateway's server API options -------------------------------------------


def parse_gateway(*args):
    from chatnet.gateway.tap import Options as GatewayOptions

    options = GatewayOptions()
    options.parseOptions(list(args))
    return options


API = ("--zookeeper", "127.0.0.1:2181/c", "--cluster-secret", "s3cret")


def test_gateway_without_key_has_no_api():
    assert parse_gateway()["api-keys"] == []


def test_gateway_keys_from_options_and_file(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# the application\nfile-key-0123456789\n\nfile-key-abcdefghij\n")
    options = parse_gateway("--api-key", "option-key-0123456789", "--api-key-file", str(keys), *API)
    assert options["api-keys"] == [b"option-key-0123456789", b"file-key-0123456789", b"file-key-abcdefghij"]
    assert options["gateway-id"]


def test_gateway_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHATNET_CLUSTER_SECRET", "from-env")
    options = parse_gateway("--api-key", "option-key-0123456789", "--zookeeper", "127.0.0.1:2181")
    assert options["cluster-secret"] == "from-env"


@pytest.mark.parametrize("args", [
    ("--api-key", "short", *API),
    ("--api-key", "with space 0123456789", *API),
    ("--api-key", "option-key-0123456789", "--cluster-secret", "s3cret"),
    ("--api-key", "option-key-0123456789", "--zookeeper", "127.0.0.1:2181"),
    ("--api-key-file", "/nonexistent/keys", *API),
])
def test_gateway_bad_api_options_are_usage_errors(args, monkeypatch):
    monkeypatch.delenv("CHATNET_CLUSTER_SECRET", raising=False)
    with pytest.raises(usage.UsageError):
        parse_gateway(*args)


def test_gateway_empty_key_file_is_a_usage_error(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("\n# none\n")
    with pytest.raises(usage.UsageError):
        parse_gateway("--api-key-file", str(keys), *API)


def test_token_options(tmp_path, monkeypatch):
    pytest.importorskip("jwt")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from twisted.internet.task import Clock

    from chatnet.service.tokens import TokenVerifier

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
