"""The rules of names (chatnet.domain.names) and of tokens issued before a
deletion (chatnet.service.tokens), on their own."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatnet.domain.names import SYSTEM, name_problem, user_name_problem
from chatnet.service.tokens import TokenClaims


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


class _Counting:
    """unicodedata, counting the characters looked at."""

    def __init__(self):
        import unicodedata
        self.real = unicodedata
        self.calls = 0

    def category(self, c):
        self.calls += 1
        return self.real.category(c)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(name=st.text(st.characters(codec="utf-8"), min_size=1, max_size=64))
def test_checking_a_name_costs_at_most_one_look_up_per_character(monkeypatch_module, name):
    """The work of L{user_name_problem} grows with the name, never faster:
    a name twice as long costs at most twice as many look-ups."""
    counting = monkeypatch_module
    costs = []
    for text in (name, name * 2):
        counting.calls = 0
        user_name_problem(text)
        costs.append(counting.calls)
    assert costs[0] <= len(name) and costs[1] <= 2 * len(name)


@pytest.fixture(scope="module")
def monkeypatch_module():
    from chatnet.domain import names

    counting = _Counting()
    real, names.unicodedata = names.unicodedata, counting
    yield counting
    names.unicodedata = real
