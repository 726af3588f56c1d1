"""Unit tests of the profanity filter (chatnet.text.profanity)."""

import random
from pathlib import Path

import pytest

from chatnet.text.profanity import (
    ProfanityFilter,
    WordSet,
    default_dictionary,
    fold,
    load_dictionary,
    parse_word_list,
)

SEED_LIST = Path(__file__).resolve().parents[2] / "shared/data/profanity-seed-list.txt"

ORDINARY = ["hello", "Hello", "HELLO", "class", "assume", "shell", "classes", "assumed", "shells"]
LISTED = {
    "FUCK": "****",
    "asshole": "*******",
    "asses": "*****",
    "fucking": "*******",
    "shitting": "********",
}


@pytest.fixture(scope="module")
def default():
    return ProfanityFilter.default()


@pytest.fixture(scope="module")
def seed():
    if not SEED_LIST.is_file():
        pytest.skip(f"no seed list at {SEED_LIST}")
    return ProfanityFilter.from_file(SEED_LIST)


@pytest.fixture(scope="module", params=["default", "seed"])
def any_list(request):
    return request.getfixturevalue(request.param)


def plain(words, dictionary=()):
    """A filter with its own small dictionary, independent of the system."""
    return ProfanityFilter(words, dictionary=dictionary)


# -- the examples of the specification


def test_list_word_inside_a_longer_token(seed):
    assert seed.mask("hab00bs123") == "ha*****123"


@pytest.mark.parametrize("word", ORDINARY)
def test_ordinary_words_stay(any_list, word):
    assert any_list.mask(word) == word


@pytest.mark.parametrize("word", ORDINARY)
def test_ordinary_words_stay_in_a_sentence(any_list, word):
    text = f"Well, {word} there!"
    assert any_list.mask(text) == text


@pytest.mark.parametrize("word,masked", sorted(LISTED.items()))
def test_listed_words_are_masked(any_list, word, masked):
    assert any_list.mask(word) == masked
    assert any_list.mask(f"oh {word}!") == f"oh {masked}!"


def test_scunthorpe_with_the_default_dictionary(any_list):
    if "scunthorpe" not in default_dictionary():
        pytest.skip("no system word list with place names (Debian package wbritish-huge)")
    assert any_list.mask("Scunthorpe") == "Scunthorpe"
    assert any_list.mask("I live in Scunthorpe's centre.") == "I live in Scunthorpe's centre."


def test_scunthorpe_rule():
    f = plain(["cunt"], dictionary={"scunthorpe"})
    assert f.mask("Scunthorpe") == "Scunthorpe"
    assert f.mask("Scunthorpe's") == "Scunthorpe's"
    assert f.mask("Scunthorpes") == "Scunthorpes"
    assert f.mask("cunt") == "****"
    assert f.mask("xcunty") == "x****y"


def test_word_on_the_list_is_masked_even_if_in_the_dictionary():
    f = plain(["fuck", "ass"], dictionary={"fuck", "ass", "asses", "class"})
    assert f.mask("fuck") == "****"
    assert f.mask("ass") == "***"
    assert f.mask("asses") == "***es"  # the plural of a listed word
    assert f.mask("class") == "class"


def test_default_list_loads_and_masks(default):
    assert len(default.words) > 200
    assert default.mask("fuck") == "****"
    assert default.mask("you FUCK, hello class") == "you ****, hello class"


# -- inflections


def test_inflections_of_ordinary_words_stay():
    f = plain(["ass", "hell", "shit", "asses"], dictionary={"class", "assume", "shell", "pass"})
    for word in ("classes", "assumed", "shells", "passes", "shelled", "assuming", "classes'"):
        assert f.mask(word) == word, word


def test_inflections_of_listed_words_are_masked():
    f = plain(["shit", "hell", "cunt", "job", "ass"], dictionary={"shit", "hell", "job", "hells"})
    assert f.mask("shitting") == "****ting"
    assert f.mask("shits") == "****s"
    assert f.mask("cunting") == "****ing"
    assert f.mask("hells") == "****s"  # a dictionary word, but the plural of a listed one
    assert f.mask("asses") == "***es"


def test_plural_endings_are_read_with_care():
    f = plain(["spac", "hell", "ass"], dictionary={"space", "spaces", "hell", "hells", "ass", "asses"})
    assert f.mask("spaces") == "spaces"  # space + s, not spac + es
    assert f.mask("hells") == "****s"
    assert f.mask("asses") == "***es"


def test_stretched_letters():
    f = plain(["hell", "ass"], dictionary={"hello", "as", "so"})
    assert f.mask("helloooo") == "helloooo"
    assert f.mask("hellllo") == "hellllo"
    assert f.mask("assssss") == "***ssss"


def test_compounds_of_two_words():
    words = {"name", "space", "data", "class", "bat", "bats", "hit", "lame", "char", "set"}
    f = plain(["spac", "ass", "shit", "arse"], dictionary=words)
    assert f.mask("namespace") == "namespace"
    assert f.mask("dataclass") == "dataclass"
    assert f.mask("batshit") == "bat****"  # the match runs over the join
    assert f.mask("lameass") == "lame***"  # a part is listed
    assert f.mask("charset") == "ch****t"


def test_camel_case():
    f = plain(["ass", "hell", "fuck"], dictionary={"class", "hello", "test", "case", "world"})
    assert f.mask("testCaseClass") == "testCaseClass"
    assert f.mask("HelloWorld") == "HelloWorld"
    assert f.mask("HelloFuck") == "Hello****"
    assert f.mask("MyAss") == "My***"
    assert f.mask("XMLHello") == "XMLHello"


def test_phrase_entries(seed):
    assert seed.mask("blow job") == "********"
    assert seed.mask("a blow jobs") == "a ********s"
    assert seed.mask("f u c k") == "*******"
    assert seed.mask("if u c know") == "if u c know"
    assert seed.mask("it's hit the fan") == "it's hit the fan"
    assert seed.mask("it\u2019s hit the fan") == "it\u2019s hit the fan"


# -- word boundaries and symbols


def test_separators_split_hosts(seed):
    assert seed.mask("memo-folder") == "memo-folder"  # "mo-fo" between two ordinary words
    assert seed.mask("data_s_s") == "data_s_s"
    assert seed.mask("a_s_s") == "*****"
    assert seed.mask("b!tch") == "*****"
    assert seed.mask("s.o.b.") == "******"


def test_punctuation_around_words(default):
    assert default.mask("hello,fuck") == "hello,****"
    assert default.mask("What the hell!") == "What the ****!"
    assert default.mask("'hell'") == "'****'"
    assert default.mask("(shit)") == "(****)"
    assert default.mask("fuck's sake") == "****'s sake"


def test_leet_symbols_stay_inside_the_word(default):
    assert default.mask("sh!tty") == "****ty"
    assert default.mask("sh!t") == "****"


def test_digits_around_a_word():
    f = plain(["ass", "hell"], dictionary={"class", "hello"})
    assert f.mask("class123") == "class123"
    assert f.mask("ass123") == "***123"
    assert f.mask("123hell") == "123****"
    assert f.mask("hello666") == "hello666"


def test_case_of_unmasked_text_is_kept(default):
    assert default.mask("Hello FUCK World") == "Hello **** World"


# -- overlapping matches


def test_overlapping_matches_are_all_masked():
    f = plain(["abc", "bcd", "cdef"])
    assert f.mask("abcdef") == "******"
    assert f.mask("x abcd y") == "x **** y"
    assert f.mask("zzabcdzz") == "zz****zz"


def test_overlapping_entries_of_the_seed_list(seed):
    assert seed.mask("fuckingshitmotherfucker") == "*" * 23
    assert seed.mask("assholes") == "********"


def test_each_match_is_judged_on_its_own():
    f = plain(["hell", "o f"], dictionary={"hello", "fun"})
    assert f.mask("hello fun") == "hello fun"
    # "o f" runs from "hello" into "fxn", which is no word: masked; "hell"
    # inside "hello" is still spared.
    assert f.mask("hello fxn") == "hell***xn"


# -- Unicode


def test_unicode_text(default):
    assert default.mask("\uff26\uff35\uff23\uff2b") == "****"  # full-width FUCK
    assert default.mask("你好fuck") == "你好****"
    assert default.mask("你好hello") == "你好hello"
    assert default.mask("我们今天晚上一起吃饭") == "我们今天晚上一起吃饭"
    assert default.mask("Ça va? fuck!") == "Ça va? ****!"
    assert default.mask("😀fuck😀") == "😀****😀"


def test_lowercasing_that_changes_length():
    # "İ".lower() is two characters; the mask must stay aligned.
    assert len("İ".lower()) == 2
    f = plain(["fuck", "ass"])
    assert f.mask("İİİ fuck") == "İİİ ****"
    assert f.mask("İfuckİ") == "İ****İ"
    assert f.mask("İASS") == "İ***"
    assert len(fold("İİxyz")) == 5


def test_chinese_entries():
    f = plain(["傻逼"])
    assert f.mask("你是傻逼吗") == "你是**吗"


def test_empty_string_and_empty_list(default):
    assert default.mask("") == ""
    assert plain([]).mask("fuck") == "fuck"


def test_clean_text_is_returned_as_is(default):
    text = "nothing to see here, just a calm message"
    assert default.mask(text) is text


def test_length_and_unmasked_characters_are_preserved(default, seed):
    rng = random.Random(7)
    pieces = [
        "fuck", "hello", "class", "İ", "ß", "ﬁ", "Σ", "你好", "😀", " ", "  ", ",", "!", "-", "_",
        "a_s_s", "sh!t", "b00bs", "123", "Scunthorpe", "\u0301", "\uff26", "’s", "hab00bs", "blow job",
    ]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for f in (default, seed):
            out = f.mask(text)
            assert len(out) == len(text)
            assert all(o == t or o == "*" for o, t in zip(out, text))


# -- word lists and dictionary


def test_word_list_format(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(
        "\ufeff# comment\n\nfoo\n  Bar  \n# another\nbaz qux\nmasterbat*\nsh!+\n\n",
        encoding="utf-8",
    )
    f = ProfanityFilter.from_file(path, dictionary=())
    assert f.words == ("foo", "bar", "baz qux", "masterbat", "sh!+")
    assert f.mask("FOO bar") == "*** ***"
    assert f.mask("baz   qux") == "baz   qux"  # entries match single spaces
    assert f.mask("masterbation") == "*********ion"
    assert f.mask("sh!+") == "****"


def test_parse_word_list_ignores_comments_and_blanks():
    assert parse_word_list("# x\n\n a \r\nb\n#c\n") == ["a", "b"]


def test_shipped_list_file_is_clean_utf8():
    path = Path(__file__).resolve().parents[1] / "chatnet/data/profanity.txt"
    entries = parse_word_list(path.read_text(encoding="utf-8"))
    assert len(entries) == len(set(e.lower() for e in entries)) > 200
    assert "fuck" in entries


def test_wordset():
    ws = WordSet(["Hello", "world", "don\u2019t"])
    assert "hello" in ws and "world" in ws and "don't" in ws
    assert "nope" not in ws
    assert 3 not in ws
    assert len(ws) == 3


def test_load_dictionary_from_files(tmp_path):
    path = tmp_path / "words"
    path.write_text("Scunthorpe\nPenistone\n", encoding="utf-8")
    ws = load_dictionary(sources=(), system_paths=[path, tmp_path / "missing"])
    assert "scunthorpe" in ws and "penistone" in ws and len(ws) == 2


def test_default_dictionary_has_english_words():
    ws = default_dictionary()
    for word in ("hello", "class", "assume", "shell", "cocktail", "analysis"):
        assert word in ws
    assert "hab00bs123" not in ws


def test_filter_bench_runs():
    from chatnet.bench.filter_bench import build_corpus, run_filter_bench

    assert build_corpus(50) == build_corpus(50)
    result = run_filter_bench(0.1)
    assert result["scenario"] == "filter"
    assert result["messages"] > 0 and result["bytes"] > 0
    assert result["mb_per_s"] > 0
