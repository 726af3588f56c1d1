"""Unit tests of the popular-words tokenizer (chatnet.text.words)."""

import pytest

from chatnet.text import words
from chatnet.text.profanity import ProfanityFilter
from chatnet.text.words import is_han, tokenize


@pytest.fixture(scope="module", autouse=True)
def jieba_ready():
    words.warm_up()
    assert words.is_ready()


def test_lower_case_and_punctuation():
    assert tokenize("Hello, World! hello...") == ["hello", "world", "hello"]
    assert tokenize("e-mail snake_case a/b (x) [y] {z} <w> #tag @user") == [
        "e", "mail", "snake", "case", "a", "b", "x", "y", "z", "w", "tag", "user",
    ]


def test_white_space_of_all_kinds():
    assert tokenize("a\tb\nc\u00a0d\u3000e  f") == ["a", "b", "c", "d", "e", "f"]


def test_empty_and_blank():
    assert tokenize("") == []
    assert tokenize("   \n\t") == []
    assert tokenize("!?.,;:-") == []


def test_digits_are_kept():
    assert tokenize("call 911 at 10:30, room 42b") == ["call", "911", "at", "10", "30", "room", "42b"]
    assert tokenize("3.14") == ["3", "14"]


def test_apostrophes_inside_words():
    assert tokenize("Don't stop, it’s 'quoted' rock'n'roll") == [
        "don't", "stop", "it's", "quoted", "rock'n'roll",
    ]


# -- masked words


def test_masked_words_are_dropped():
    assert tokenize("you ****, hello class") == ["you", "hello", "class"]
    assert tokenize("ha*****123 ok") == ["ok"]
    assert tokenize("f**k this") == ["this"]
    assert tokenize("****ing great") == ["great"]
    assert tokenize("********s now") == ["now"]


def test_mask_next_to_punctuation_keeps_the_other_word():
    assert tokenize("hello,****") == ["hello"]
    assert tokenize("hello,f**k") == ["hello"]
    assert tokenize("****-face") == ["face"]
    assert tokenize("(****)") == []


def test_asterisks_typed_by_users_drop_their_word():
    assert tokenize("*bold* text") == ["text"]
    assert tokenize("* item") == ["item"]


def test_with_the_filter():
    f = ProfanityFilter.default()
    assert tokenize(f.mask("What the FUCK, hello class!")) == ["what", "the", "hello", "class"]
    assert tokenize(f.mask("hello,fuck")) == ["hello"]
    assert tokenize(f.mask("你好fuck")) == ["你好"]


# -- Chinese and other scripts


def test_chinese_is_segmented():
    tokens = tokenize("我们今天晚上一起吃饭，好吗？")
    assert tokens[:5] == ["我们", "今天", "晚上", "一起", "吃饭"]
    assert "，" not in tokens and "？" not in tokens
    assert all(is_han(c) for t in tokens for c in t)
    assert max(len(t) for t in tokens) <= 3


def test_chinese_punctuation_alone():
    assert tokenize("。，！？、；：“”《》（）") == []


def test_chinese_next_to_latin_and_masks():
    assert tokenize("hello世界abc123中文") == ["hello", "世界", "abc123", "中文"]
    tokens = tokenize("你是**吗")
    assert "吗" in tokens and all("*" not in t for t in tokens)
    assert "".join(tokens) == "你是吗"


def test_japanese_kana_runs():
    assert tokenize("日本語を話す") == ["日本", "語", "を", "話", "す"]
    assert "サーバー" in tokenize("サーバーが落ちた")


def test_korean_uses_spaces():
    assert tokenize("안녕하세요 세계!") == ["안녕하세요", "세계"]


def test_unicode_normalization_and_marks():
    assert tokenize("ｈｅｌｌｏ ＷＯＲＬＤ") == ["hello", "world"]
    assert tokenize("café CAFÉ cafe\u0301") == ["café"] * 3
    assert tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert tokenize("Привет, МИР") == ["привет", "мир"]
    assert tokenize("ΣΟΦΟΣ") == ["σοφος"]


def test_emoji_separate_words():
    assert tokenize("😀 great👍ok") == ["great", "ok"]


def test_is_han():
    assert is_han("中") and is_han("\U00020000")
    assert not is_han("a") and not is_han("あ") and not is_han("，")


def test_ascii_and_unicode_paths_agree():
    text = "Don't STOP ha*****123 x_y 3.5 e-mail 'q' it's f**k, ok"
    assert tokenize(text) == tokenize(text + " \u00fc")[:-1]


def test_symbol_marks_are_not_words():
    assert tokenize("\u2764\ufe0f 1\ufe0f\u20e3 naïve") == ["1", "naïve"]


def test_repeated_chinese_messages():
    assert tokenize("谢谢你") == tokenize("谢谢你") == ["谢谢", "你"]


def test_a_message_counts_its_first_runs_only():
    assert tokenize("a " * 2000) == ["a"] * words.MAX_WORDS
    assert tokenize("a你" * 2000) == ["a", "你"] * (words.MAX_WORDS // 2)
    assert tokenize("f**k " * 600 + "hello") == []  # 500 runs looked at, all masked
    assert tokenize("hello " * 10) == ["hello"] * 10
