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
   ``rjieba`` (the Rust port of jieba: the same dictionary and the same cuts)
   instead of counting as one long word; a Han run stops at any
   other character, so a mask next to Chinese text (``你是**吗``) drops only
   the mask, and CJK punctuation (``，。！``) is never a word. Japanese kana
   runs are taken as words of their own (a katakana run, a hiragana run).
   Korean is written with spaces and follows rule 2.
5. Only the first `MAX_WORDS` (500) runs of a message (words, masked
   words, Han runs) are looked at, and at most 500 words counted; the rest
   of a longer message is not cut. (A message of up to 10,000 characters
   holds up to 10,000 one-letter words, and cutting costs about half a
   microsecond each outside ASCII: the bound keeps any message's share to
   about 0.3 ms.)

rjieba loads its dictionary when it is imported (about 0.1 s), so `warm_up`
has nothing left to wait for; it stays for callers that run it at start-up.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from itertools import islice
from operator import methodcaller
from typing import Iterable

import rjieba

from chatnet.text import textcost

__all__ = ["tokenize", "warm_up", "is_ready", "is_han", "clear_cache"]

_HAN = "\u3005\u3007\u3021-\u3029\u3038-\u303b\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HIRAGANA = "\u3041-\u309f"
_KATAKANA = "\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"


def _mark_class() -> str:
    """A character class body with the combining marks (categories Mn, Mc,
    Me) of the Basic Multilingual Plane, less those that dress symbols
    rather than letters (variation selectors, enclosing keycaps) and the
    kana sound marks. (Staying in the BMP keeps the class a fast table.)"""
    ranges = []
    start = prev = -2
    for cp in range(0x10000):
        if (
            unicodedata.category(chr(cp))[0] != "M"
            or 0x20D0 <= cp <= 0x20FF
            or 0xFE00 <= cp <= 0xFE0F
            or 0x3099 <= cp <= 0x309A
        ):
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


# A letter or digit that is neither Han nor kana; a combining mark.
_L = rf"[^\W_{_HAN}{_HIRAGANA}{_KATAKANA}]"
_M = rf"[{_mark_class()}]"


def _token_re(possessive: str) -> "re.Pattern[str]":
    """Two groups: a Han run (cut by rjieba), or any other word (findall
    gives them as pairs without a match object per word). A word is made of
    letters or digits (neither Han nor kana) with the combining marks that
    follow them, and of mask characters, written ``L+(?:M+L*)*`` rather than
    ``(?:LM*)+`` (the same words: a run of letters is then one step of the
    regular expression engine, not one a letter). `possessive` is ``"+"``
    where the engine has possessive quantifiers (Python 3.11): nothing after
    a quantifier can fail, so they find the same words, without keeping the
    places to go back to."""
    p = possessive
    w = rf"(?:{_L}+{p}(?:{_M}+{p}{_L}*{p})*{p}|\*+{p})+{p}"
    return re.compile(
        rf"([{_HAN}]+{p})"
        rf"|([{_HIRAGANA}]+{p}|[{_KATAKANA}]+{p}"
        rf"|{w}(?:['\u2019]{w})*{p})"
    )


try:
    _TOKEN_RE = _token_re("+")
except re.error:  # Python 3.10
    _TOKEN_RE = _token_re("")
# The same for lower-cased ASCII text.
_ASCII_TOKEN_RE = re.compile(r"[a-z0-9*]+(?:'[a-z0-9*]+)*")
_HAN_RE = re.compile(rf"[{_HAN}]")

#: the runs of a message looked at, and the words counted at most (its
#: first ones): a long message of many short words costs the ranking no
#: more than an ordinary one
MAX_WORDS = 500
_groups = methodcaller("groups")

# Han runs up to this length have their segmentation cached: short runs
# ("好的", "谢谢你") come back again and again.
_CACHED_RUN = 12


@functools.lru_cache(maxsize=16384)
def _cut_cached(run: str) -> tuple[str, ...]:
    return tuple(rjieba.cut(run))


def _cut(run: str) -> Iterable[str]:
    """The words of a run of Han characters."""
    if len(run) == 1:
        return (run,)
    if len(run) <= _CACHED_RUN:
        return _cut_cached(run)
    return rjieba.cut(run)


def clear_cache() -> None:
    """Forget the cuts of short Han runs (benchmarks measure the cost of
    runs never seen)."""
    _cut_cached.cache_clear()


def is_han(char: str) -> bool:
    """Whether `char` is a Chinese character (Han ideograph)."""
    return _HAN_RE.match(char) is not None


def warm_up() -> None:
    """Cut one Chinese phrase, so that the segmenter is ready (it loads its
    dictionary on import; this costs microseconds)."""
    rjieba.cut("你好世界")


def is_ready() -> bool:
    """Whether the segmenter's dictionary is loaded (so `tokenize` never
    waits): always, once this module is imported."""
    return True


def tokenize(text: str) -> list[str]:
    """The words of the (already masked) message `text`; see the module
    docstring for the rules."""
    if text.isascii():
        words = [w for w in _ASCII_TOKEN_RE.findall(text.lower())[:MAX_WORDS] if "*" not in w]
        if textcost.active is not None:
            textcost.charge("words", len(text) + len(words))
        return words
    text = unicodedata.normalize("NFKC", text).lower()
    words = []
    append = words.append
    # a text of at most MAX_WORDS characters holds no more runs than that:
    # findall (faster) for it, a lazy finditer stopped at MAX_WORDS for longer
    for han, word in islice(_TOKEN_RE.findall(text) if len(text) <= MAX_WORDS else
                            map(_groups, _TOKEN_RE.finditer(text)), MAX_WORDS):
        if han:
            if len(han) == 1:
                append(han)
            else:
                words.extend(_cut(han))
        elif "*" not in word:
            append(word)
    del words[MAX_WORDS:]
    if "\u2019" in text:
        words = [w.replace("\u2019", "'") for w in words]
    if textcost.active is not None:
        textcost.charge("words", len(text) + len(words))
    return words
