"""The rules of names (chatnet.names) and of tokens issued before a
deletion (chatnet.tokens), on their own."""
import pytest

from chatnet.names import SYSTEM, name_problem, user_name_problem
from chatnet.tokens import TokenClaims


@pytest.mark.parametrize("name", ["alice", "$gt", "a.b", "$where.x", "Café", "房间", "x" * 128, "a b", "Support"])
def test_names_that_are_data(name):
    assert name_problem(name) is None and user_name_problem(name) is None


@pytest.mark.parametrize("name", [
    "", "x" * 129, " lead", "trail ", "tab\tname", "nl\nx", "nul\x00", "del\x7f", "c1\x85", "rtl\u202eb",
    "lre\u202a", "iso\u2066", "zw\u200b", "zwj\u200d", "bom\ufeff", "ls\u2028", "ps\u2029", "sh\u00ad",
])
def test_names_that_hide_characters(name):
    assert name_problem(name) is not None and user_name_problem(name) is not None


def test_the_api_sender_is_no_user_name():
    assert name_problem(SYSTEM) is None  # the API may give it as its sender
    assert "reserved" in user_name_problem(SYSTEM)


def test_a_token_issued_before_a_deletion():
    deleted = 1_700_000_000_500  # ms
    assert not TokenClaims("a", None, None).issued_after(deleted)
    assert not TokenClaims("a", None, 1_699_999_990).issued_after(deleted)
    assert not TokenClaims("a", None, 1_700_000_000).issued_after(deleted)  # the same second
    assert TokenClaims("a", None, 1_700_000_001).issued_after(deleted)
