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
