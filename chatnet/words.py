"""Words of a chat message, for the popular-words ranking.

`tokenize` takes a message after profanity masking and returns its words,
lower-cased, in order. The rules:

1. The text is NFKC-normalized (so full-width ``ｈｅｌｌｏ`` and ``hello``
   count as one word) and lower-cased.
2. A word is a run of letters, digits and combining marks, Unicode-wide,
   with apostrophes allowed between two such characters (``don't``; ``’`` is
   written as ``'``). Everything else separates words: white space,
   punctuation (``-``, ``_``, ``.``, ``,``, CJK punctuation...), symbols and
   emoji. So ``e-mail`` gives ``e`` and ``mail``, and ``3.5`` gives ``3`` and
   ``5``. Words made of digits only are kept.
3. Masked words are dropped. For this, ``*`` counts as a letter: the mask
   characters and the letters and digits stuck to them make one word, and a
   word holding a ``*`` is dropped whole. ``ha*****123`` and ``f**k`` are
   dropped, while in ``hello,****`` the comma separates, so ``hello`` stays.
   (A word a user wrapped in asterisks, ``*this*``, is dropped too.)
4. Runs of Chinese characters (Han ideographs) are cut into words by
   ``jieba``; a Han run stops at any other character, so a mask next to
   Chinese text (``你是**吗``) drops only the mask. Japanese kana runs are
   taken as words of their own (a katakana run, a hiragana run), Korean is
   written with spaces and follows rule 2.

jieba loads its dictionary (about a second) on first use; call `warm_up`
in a thread at start-up. Until it has finished, `tokenize` on text with
Chinese characters waits for it.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import jieba

__all__ = ["tokenize", "warm_up", "is_ready", "is_han"]

jieba.setLogLevel(logging.WARNING)

_HAN = "\u3005\u3007\u3021-\u3029\u3038-\u303b\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HIRAGANA = "\u3041-\u309f"
_KATAKANA = "\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"


def _mark_class() -> str:
    """A character class body with every combining mark (categories Mn,
    Mc, Me) outside the kana blocks."""
    ranges = []
    start = prev = -2
    planes = (range(0x20000), range(0xE0000, 0xE1000))
    for plane in planes:
        for cp in plane:
            if unicodedata.category(chr(cp))[0] != "M" or 0x3099 <= cp <= 0x309A:
                continue
            if cp != prev + 1:
                if start >= 0:
                    ranges.append((start, prev))
                start = cp
            prev = cp
    if start >= 0:
        ranges.append((start, prev))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


# A word character: a letter or digit that is neither Han nor kana, a
# combining mark, or the mask character.
_W = rf"(?:[^\W_{_HAN}{_HIRAGANA}{_KATAKANA}]|[{_mark_class()}*])"
_TOKEN_RE = re.compile(
    rf"(?P<han>[{_HAN}]+)"
    rf"|[{_HIRAGANA}]+|[{_KATAKANA}]+"
    rf"|{_W}+(?:['\u2019]{_W}+)*"
)
_HAN_RE = re.compile(rf"[{_HAN}]")


def is_han(char: str) -> bool:
    """Whether `char` is a Chinese character (Han ideograph)."""
    return _HAN_RE.match(char) is not None


def warm_up() -> None:
    """Load jieba's dictionary now. Blocking (about a second); meant to be
    run in a thread at start-up."""
    jieba.initialize()


def is_ready() -> bool:
    """Whether jieba's dictionary is loaded (so `tokenize` never waits)."""
    return bool(jieba.dt.initialized)


def tokenize(text: str) -> list[str]:
    """The words of the (already masked) message `text`; see the module
    docstring for the rules."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    words = []
    for match in _TOKEN_RE.finditer(text):
        word = match.group()
        if match.lastgroup == "han":
            words.extend(w for w in jieba.lcut(word) if not w.isspace())
        elif "*" not in word:
            words.append(word.replace("\u2019", "'"))
    return words
