"""Profanity masking.

`ProfanityFilter.mask` replaces every character of every list entry found in
a message by ``*`` and keeps the length of the text. The whole list is looked
for in one Aho-Corasick pass over a case-folded copy of the text; a message
in which the automaton finds nothing is returned as it is, with no other work.

Entries are found inside longer words too (``hab00bs123`` becomes
``ha*****123``), as the old system did, but not inside ordinary words of the
language: ``hello``, ``class``, ``assume`` and ``Scunthorpe`` stay as they
are. The rule, applied to each match on its own:

* Word characters are letters and digits (except CJK ideographs, kana and
  hangul, which are written without spaces and so never make a Latin word
  longer), plus the symbols people put inside words to dodge filters
  (``! + @ $ |``) and apostrophes (``'`` and ``’``). Everything else (white
  space, ``- _ . ,`` and other punctuation) separates words.
* A match that starts at the beginning of a word and ends at the end of a
  word (possibly spanning several words: ``blow job``, ``s.o.b.``) is
  masked.
* A match that starts or ends inside a word is masked unless each such word
  (its *host*) spares it. A camel-case host (``HelloWorld``) is cut at its
  humps first, where the match does not run over one. Take the host's
  core: the host without leading and trailing digits and symbols,
  lower-cased. The host spares the match when the match covers neither the
  whole core nor the core less a plural or possessive ending (``jobs`` in
  ``blow jobs``, ``hells``) and the core is an *ordinary word*: not on the
  list, and either a dictionary word or reducing to one, and to no list
  entry, by an inflection ending (``classes``, ``assumed``, ``shells``,
  ``Scunthorpe's``; but ``cunting``) or by shortening stretched letters
  (``hellooo``). A core that is no word but joins two dictionary words not
  on the list (``namespace``, ``dataclass``) spares a match lying within
  one of the two as that word would (but not ``batshit``, where the match
  runs over the join).

So ``hab00bs123`` is masked because ``hab00bs`` is not a word, ``hello`` is
spared, and ``hello,fuck`` becomes ``hello,****``.

Overlapping matches are all masked. The dictionary is the union of the
``english-words`` package's lists (GCIDE and Webster's 2nd) and the system
word lists found under ``/usr/share/dict`` (Debian's ``wbritish-huge`` adds
place names such as Scunthorpe and every inflected form).

Cost
----

Masking costs time linear in the length of the message, with a small
constant, whatever it holds (docs/design.md, "Text processing cost"). Two
rules bound the work a message can make the filter do; neither changes
anything for ordinary text:

* A run of word characters longer than `MAX_WORD` (64) characters is no
  word of any language (the longest words of the dictionary have 45 letters,
  60 with a Welsh place name), so it spares no match in it: every match in
  it is masked, without a look at the run. So its camel humps and stretched
  letters are not looked at either (a ``hellooo...`` of 65 letters is not
  ``hello``).
* A message gets at most `JUDGED_LIMIT` (32) judgements of a match inside a
  word; a word that comes again in the message (the same text) is judged
  once for all its copies. A match inside a word that finds no judgement
  left is masked. No dictionary word holds more than 6 entries of the
  shipped list (the words with 4 to 6 are themselves profane), and an
  ordinary message holds a few words with an entry inside: over a megabyte
  of English prose (licences, package descriptions, this project's docs;
  ``python -m bench.judgements_in_prose``), no stretch of 4,096 characters
  needed more than 17 judgements with either list. A message with over 32
  different such words is made to cost work.

Within these bounds each word is analysed once however many matches it
holds: its humps are found once, its core cut once, its verdict cached per
filter; a match is judged once for all the copies of its word, and a match
within the part already masked is not judged at all. The matches per
character are bounded by the list (the entries that end at one place are
suffixes of one another: at most 3 for the shipped list and the old
system's). `chatnet.text.textcost` counts the work for the tests that bound it.
"""

from __future__ import annotations

import bisect
import os
import re
import threading
from array import array
from collections import Counter
from itertools import islice
from operator import itemgetter
from importlib import resources
from typing import Callable, Iterable, Iterator, Optional, Union

import ahocorasick_rs

from chatnet.text import textcost

__all__ = [
    "MASK_CHAR",
    "JUDGED_LIMIT",
    "MAX_WORD",
    "ProfanityFilter",
    "WordSet",
    "default_dictionary",
    "fold",
    "load_dictionary",
    "parse_word_list",
    "read_word_list",
]

MASK_CHAR = "*"

#: The longest word the filter analyses, in characters (letters, digits and
#: the symbols that count as word characters). The longest words of the
#: dictionary have 45 letters; a longer run of word characters is no word of
#: any language, so it spares no match in it (see the module docstring).
#: The bound keeps the work per match constant, however long the run.
MAX_WORD = 64

#: The most matches lying inside words that the filter judges in one message
#: (a word that comes again is judged once); further such matches are masked
#: (see the module docstring). The bound keeps the work per message linear
#: in its length with a small constant, whatever the message holds.
JUDGED_LIMIT = 32

#: Sources of the ``english-words`` package that make up the dictionary.
ENGLISH_WORDS_SOURCES = ("gcide", "web2")

#: System word lists added to the dictionary when they exist.
SYSTEM_WORD_LISTS = (
    "/usr/share/dict/british-english-huge",
    "/usr/share/dict/british-english-insane",
    "/usr/share/dict/american-english-huge",
    "/usr/share/dict/american-english-insane",
    "/usr/share/dict/british-english",
    "/usr/share/dict/american-english",
    "/usr/share/dict/words",
)

# Length-preserving folding applied before lower-casing to text that is not
# ASCII: full-width letters and digits to ASCII ones. (Full-width
# punctuation is left alone: it is in most Chinese messages, and translating
# costs more than the rest of the fast path.)
_FOLD = {
    cp: cp - 0xFEE0
    for cp in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))
}
_NEEDS_FOLD = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")

# Symbols that count as part of a word (see the module docstring).
_WORD_SYMBOLS = frozenset("!+@$|'\u2019\u02bc")
_APOSTROPHES = str.maketrans("\u2019\u02bc", "''")

# Code point ranges of scripts written without spaces between words.
_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3134F),  # CJK extensions B to G
)

# Suffixes tried to reduce an inflected word to a dictionary form:
# (suffix, replacements for it).
_SUFFIXES = (
    ("iest", ("y",)),
    ("ier", ("y",)),
    ("ies", ("y",)),
    ("ied", ("y",)),
    ("ings", ("", "e")),
    ("ing", ("", "e")),
    ("ers", ("", "e")),
    ("est", ("", "e")),
    ("er", ("", "e")),
    ("ed", ("", "e")),
    ("es", ("",)),
    ("ly", ("",)),
    ("s", ("",)),
)
_SUFFIX_ENDS = tuple(suffix for suffix, _ in _SUFFIXES)
# Endings that only make a plural or possessive: a match covering the rest
# of a word is a match of the whole word ("es" only after s, x, z, h, o:
# "hells", "asses", but not "spaces").
_PLURAL_ENDINGS = frozenset(("'s", "s'", "es", "s"))

# The shortest part of a compound word ("namespace", "dataclass").
_MIN_COMPOUND_PART = 3

_CORE_CACHE_LIMIT = 50_000

_END = itemgetter(2)
_FEW_MATCHES = 8
# From this many matches, a text whose words come again and again is masked
# through its distinct words (`ProfanityFilter._mask_repeated`).
_MANY_MATCHES = 64
_JOIN = "\x00"  # separates the distinct words: no word or list entry holds it
_WORD_RUN = re.compile(rb"w+")
_REPEATS_SAMPLE = 64
_ASCII_MASK = MASK_CHAR.encode("ascii")

_STRETCHED = re.compile(r"(.)\1\1+")

# A run of word characters longer than MAX_WORD in the classes of a text.
_LONG_RUN = re.compile(rb"(?<!w)w{%d,}" % (MAX_WORD + 1))
_LONG_RUN_WORD = b"w" * (MAX_WORD + 1)

# Camel-case humps: a capital after a small letter, or a capital followed by
# a small letter after a capital ("XML|Parser").
_HUMP = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_HUMP_HINT = re.compile(r"[A-Z]")


def _is_cjk(cp: int) -> bool:
    for lo, hi in _CJK_RANGES:
        if cp < lo:
            return False
        if cp <= hi:
            return True
    return False


def _is_word_char(c: str) -> bool:
    if c.isalnum():
        return c < "\u1100" or not _is_cjk(ord(c))
    return c in _WORD_SYMBOLS


class _WordClassTable(dict):
    """A `str.translate` table mapping each word character to ``"w"`` and
    every other character to a space; filled in as characters are seen."""

    def __missing__(self, cp: int) -> str:
        value = "w" if _is_word_char(chr(cp)) else " "
        if len(self) < 65536:
            self[cp] = value
        return value


_WORD_CLASS = _WordClassTable()
# The same for ASCII text, as a `bytes.translate` table (much faster).
_ASCII_WORD_CLASS = bytes(ord(_WORD_CLASS[cp]) for cp in range(128)) + b" " * 128
_W = ord("w")
# The runs of word characters of a text whose word characters are all ASCII
# (the same characters as `_ASCII_WORD_CLASS`).
_ASCII_WORD_RUNS = re.compile(
    "([%s]+)" % re.escape("".join(chr(cp) for cp in range(128) if _ASCII_WORD_CLASS[cp] == _W)))
# A word character that is not ASCII (the same as `_is_word_char`).
_NON_ASCII_WORD_CHAR = re.compile(
    "[^\\W\x00-\x7f%s]|[\u2019\u02bc]" % "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES)
)


def fold(text: str) -> str:
    """Lower-case `text` for matching, keeping its length.

    ``str.lower`` maps one character to two (``"İ"`` becomes ``"i̇"``): it
    is folded to ``"i"`` first, so that indexes into the result are indexes
    into `text` (and, were another such character ever added to Unicode,
    each character is lowered on its own, keeping the first character of
    its lower-case form).
    """
    if text.isascii():
        return text.lower()
    if _NEEDS_FOLD.search(text) is not None:
        text = text.translate(_FOLD)
    if "\u0130" in text:
        # the one character whose lower case is two ("i" and a combining dot)
        text = text.replace("\u0130", "i")
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join([c.lower()[:1] or c for c in text])


def _normalize_entry(entry: str) -> str:
    """An entry as matched: folded, runs of white space made single spaces,
    a trailing ``*`` (a wildcard in some published lists) dropped, since
    every entry already matches as the start of a longer word."""
    return fold(" ".join(entry.split()).rstrip(MASK_CHAR))


def _fold_word(word: str) -> str:
    """A dictionary word as looked up: folded, typographic apostrophes made
    ASCII."""
    return fold(word).translate(_APOSTROPHES)


def parse_word_list(text: str) -> list[str]:
    """Entries of a word list (UTF-8 text): one per line, stripped; lines
    starting with ``#`` and blank lines are ignored. An entry may hold
    spaces and symbols (``blow job``, ``b!tch``); case does not matter."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entries.append(line)
    return entries


def read_word_list(path: Union[str, os.PathLike]) -> list[str]:
    """Read a word list file (UTF-8, with or without a byte order mark)."""
    with open(path, encoding="utf-8-sig") as f:
        return parse_word_list(f.read())


class WordSet:
    """A compact, read-only set of words, looked up lower-cased (as `fold`
    does) and with ASCII apostrophes.

    Hundreds of thousands of dictionary words as Python strings take tens of
    megabytes; this keeps one sorted 64-bit hash per word instead (8 bytes a
    word). Two words sharing a hash would make a non-word look like a word;
    with a few hundred thousand words the chance of a given look-up hitting
    such a pair is of the order of 1e-14. A bit per hash value modulo 2**24
    (2 MiB) answers most look-ups of non-words before the binary search
    (about 3% of them pass it with the default dictionary): a message made
    to be judged word by word mostly holds non-words.
    """

    __slots__ = ("_hashes", "_bits")

    def __init__(self, words: Iterable[str] = ()):
        self._set_hashes(sorted({hash(_fold_word(w)) for w in words}))

    def _set_hashes(self, hashes: list[int]) -> None:
        self._hashes = array("q", hashes)
        bits = bytearray(_BITS_BYTES)
        for h in hashes:
            h &= _BITS_MASK
            bits[h >> 3] |= 1 << (h & 7)
        self._bits = bytes(bits)

    @classmethod
    def _from_folded(cls, chunks: Iterable[Iterable[str]]) -> "WordSet":
        """Build from batches of words that are already folded."""
        hashes: set[int] = set()
        for chunk in chunks:
            hashes.update(map(hash, chunk))
        ws = cls.__new__(cls)
        ws._set_hashes(sorted(hashes))
        return ws

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        h = hash(word)
        b = h & _BITS_MASK
        if not self._bits[b >> 3] & (1 << (b & 7)):
            return False
        hashes = self._hashes
        i = bisect.bisect_left(hashes, h)
        return i < len(hashes) and hashes[i] == h

    def member(self) -> "Callable[[str], bool]":
        """A function telling whether a string is in the set: the same as
        ``in``, without the attribute look-ups and the type check."""
        bits, hashes = self._bits, self._hashes
        size, mask, bisect_left = len(hashes), _BITS_MASK, bisect.bisect_left

        def contains(word: str) -> bool:
            h = hash(word)
            b = h & mask
            if not bits[b >> 3] & (1 << (b & 7)):
                return False
            i = bisect_left(hashes, h)
            return i < size and hashes[i] == h

        return contains

    def __len__(self) -> int:
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"<WordSet of {len(self)} words>"


_BITS_MASK = (1 << 24) - 1
_BITS_BYTES = 1 << 21


def load_dictionary(
    sources: Iterable[str] = ENGLISH_WORDS_SOURCES,
    system_paths: Iterable[Union[str, os.PathLike]] = SYSTEM_WORD_LISTS,
) -> WordSet:
    """The allow-list dictionary: the given ``english-words`` sources plus
    every system word list in `system_paths` that exists. Takes about a
    second; call it once (see `default_dictionary`)."""

    def folded(text: str) -> str:
        # Whole-text folding; `fold`'s per-character fallback only matters
        # for indexes into messages, not for a word list.
        return text.lower().translate(_APOSTROPHES)

    def chunks() -> Iterator[Iterable[str]]:
        # One source, and at most about a megabyte of a file, at a time, to
        # keep the peak memory low.
        sources_ = tuple(sources)
        if sources_:
            from english_words import get_english_words_set

            for source in sources_:
                yield get_english_words_set((source,), lower=True)
        seen = set()
        for path in system_paths:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            try:
                with open(real, encoding="utf-8", errors="replace") as f:
                    while True:
                        lines = f.readlines(1 << 20)
                        if not lines:
                            break
                        yield folded("".join(lines)).split()
            except OSError:
                continue

    return WordSet._from_folded(chunks())


_default_lock = threading.Lock()
_default_dictionary: Optional[WordSet] = None
_default_filter: Optional["ProfanityFilter"] = None


def default_dictionary() -> WordSet:
    """The dictionary from `load_dictionary` with its defaults, loaded once
    per process."""
    global _default_dictionary
    with _default_lock:
        if _default_dictionary is None:
            _default_dictionary = load_dictionary()
        return _default_dictionary


class ProfanityFilter:
    """Masks the entries of a word list in text. Immutable once built and
    safe to share between threads.

    :param words: the list entries (case does not matter).
    :param dictionary: the words to spare: a `WordSet`, an iterable of
        words, or None for `default_dictionary`.
    """

    def __init__(
        self,
        words: Iterable[str],
        dictionary: Optional[Union[WordSet, Iterable[str]]] = None,
    ):
        entries = []
        seen = set()
        for word in words:
            entry = _normalize_entry(word)
            if entry and entry not in seen:
                seen.add(entry)
                entries.append(entry)
        self.words: tuple[str, ...] = tuple(entries)
        self._listed = frozenset(entries)
        if dictionary is None:
            dictionary = default_dictionary()
        elif not isinstance(dictionary, WordSet):
            dictionary = frozenset(_fold_word(w) for w in dictionary)
        self._dictionary = dictionary
        self._in_dictionary = dictionary.member() if isinstance(dictionary, WordSet) else dictionary.__contains__
        self._core_cache: dict[str, tuple[bool, tuple[str, ...]]] = {}
        if entries:
            automaton = ahocorasick_rs.AhoCorasick(entries)
            self._find = automaton.find_matches_as_indexes
        else:
            self._find = None

    @classmethod
    def from_file(
        cls,
        path: Union[str, os.PathLike],
        dictionary: Optional[Union[WordSet, Iterable[str]]] = None,
    ) -> "ProfanityFilter":
        """A filter for the word list file at `path` (format: see
        `parse_word_list`)."""
        return cls(read_word_list(path), dictionary)

    @classmethod
    def default(cls) -> "ProfanityFilter":
        """The filter for the shipped list ``chatnet/data/profanity.txt``
        and the default dictionary, built once per process (about a second
        the first time)."""
        global _default_filter
        if _default_filter is None:
            text = resources.files("chatnet").joinpath("data/profanity.txt").read_text(
                encoding="utf-8"
            )
            built = cls(parse_word_list(text))
            with _default_lock:
                if _default_filter is None:
                    _default_filter = built
        return _default_filter

    def __repr__(self) -> str:
        return f"<ProfanityFilter of {len(self.words)} entries>"

    def clear_cache(self) -> None:
        """Forget the verdicts on the words seen so far (benchmarks measure
        the cost of words never seen)."""
        self._core_cache.clear()

    def mask(self, text: str) -> str:
        """`text` with every character of every list entry found in it
        replaced by ``*``; same length as `text`. Returns `text` itself when
        nothing is found."""
        find = self._find
        if find is None:
            return text
        low = text.lower() if text.isascii() else fold(text)
        matches = find(low, overlapping=True)
        if textcost.active is not None:
            textcost.charge("profanity.scan", len(text))
        if not matches:
            return text
        if len(matches) >= _MANY_MATCHES:
            masked = self._mask_repeated(text, low, matches)
            if masked is not None:
                return masked
        return self._mask_matches(text, low, matches)

    def _mask_repeated(self, text: str, low: str, matches) -> Optional[str]:
        """`_mask_matches` of a text made of a few words that come again
        and again (the costliest shape per character once verdicts are
        cached: the per-match work is Python's, however short the word):
        its distinct words, in the order they first come, are masked as a
        text of their own (so with the same judgements in the same order,
        each word being judged once for all its copies anyway) and put back
        in place, the cutting and the putting back in C-level passes. None
        (mask the usual way) unless every word character is ASCII, at most
        a quarter of the words are different and no match runs over a
        word's edge (the words are then independent of one another)."""
        if textcost.active is not None:
            # C-level passes over the text at most (the first words, or all)
            textcost.charge("profanity.repeated", len(text))
        # the first words tell a text of a few repeated words cheaply
        parts = _ASCII_WORD_RUNS.split(text, _REPEATS_SAMPLE)  # separators, words, ..., separators
        whole = len(parts) <= 2 * _REPEATS_SAMPLE  # else the last part is the rest of the text
        head = parts[1::2] if whole else parts[1:-1:2]
        if len(set(head)) * 4 > len(head):
            return None
        if len(low) != len(text) or (not text.isascii() and (
                _NON_ASCII_WORD_CHAR.search(text) is not None or _NON_ASCII_WORD_CHAR.search(low) is not None)):
            return None
        if not whole:
            parts = _ASCII_WORD_RUNS.split(text)
        counts = Counter(parts[1::2])
        if textcost.active is not None:
            textcost.charge("profanity.repeated", len(counts))
        if len(counts) * 4 > len(parts) // 2:
            return None
        find = self._find
        distinct = list(counts)  # in the order they first come
        lows = [word.lower() for word in distinct]
        inside = 0
        for word, word_low in zip(distinct, lows):
            inside += counts[word] * len(find(word_low, overlapping=True))
        if inside != len(matches):
            return None  # a match runs over a word's edge
        reduced = _JOIN.join(distinct)
        reduced_low = _JOIN.join(lows)
        masked = self._mask_matches(reduced, reduced_low, find(reduced_low, overlapping=True))
        if masked is reduced:
            return text
        changed = {w: m for w, m in zip(distinct, masked.split(_JOIN)) if m != w}
        if not changed:
            return text
        return "".join(map(changed.get, parts, parts))

    # -- the slow path: at least one entry was found

    def _mask_matches(self, text: str, low: str, matches) -> str:
        # Linear in len(text) by construction (see "Cost" in the module
        # docstring): each match costs a bounded number of steps.
        classes = _word_classes(low)
        n = len(low)
        scan = None  # made for the first match inside a word
        spans: list[tuple[int, int]] = []
        decided_words: dict = {}  # a word's text: the spans it masks
        ascii_text = n == len(text) and text.isascii()
        # Runs of word characters longer than MAX_WORD, in order: every
        # match lying in one is masked without a look at the run. (The
        # matches come in the order of their ends; were they not, a match
        # in such a run would still be masked, as its word is not found.)
        if n > MAX_WORD and _LONG_RUN_WORD in classes:
            long_runs = [m.span() for m in _LONG_RUN.finditer(classes)]
        else:
            long_runs = []
        long_runs.append((n + 1, n + 1))
        k = 0
        long_start, long_end = long_runs[0]
        last_start = last_end = -1  # the masked span the next matches most likely extend
        word_start, word_end = 0, -1  # the last word whose matches are all decided
        found_start, found_end = 0, 0  # the last word found
        doom_start, doom_end = 0, -1  # the last word whose matches are all masked
        lookups = 0
        # A message with a few matches has them judged one by one (the same
        # verdicts, without the bookkeeping that spares the work of many).
        few = len(matches) <= _FEW_MATCHES
        W = _W
        rest = -1  # where the matches left to mask all, if judgements ran out, start
        sparing = []  # the words decided that spare a match in them
        for index, (_, start, end) in enumerate(matches):
            if last_start <= start and end <= last_end:
                continue  # masked whatever the judgement
            if word_start <= start and end <= word_end:
                continue  # decided with its word
            while end > long_end:
                k += 1
                long_start, long_end = long_runs[k]
            if long_start > start and not (doom_start <= start and end <= doom_end):
                left_inside = start > 0 and classes[start - 1] == W and classes[start] == W
                right_inside = end < n and classes[end] == W and classes[end - 1] == W
                if left_inside or right_inside:
                    i = start if left_inside else end - 1
                    if not found_start <= i < found_end:
                        # _host_bounds, inlined
                        lookups += 1
                        lo = i - MAX_WORD
                        found_start = classes.rfind(b" ", lo if lo > 0 else 0, i) + 1
                        if found_start == 0 and lo > 0:
                            found_start = found_end = 0  # longer than MAX_WORD
                        else:
                            hi = found_start + MAX_WORD + 1
                            found_end = classes.find(b" ", i, hi)
                            if found_end < 0:
                                found_end = n if n < hi else 0
                                if not found_end:
                                    found_start = 0
                    if scan is None:
                        scan = _Scan(self, text, low, classes, matches)
                    elif scan.left <= 0 and scan.tight:
                        # No judgement left: this match and every one after
                        # it are masked, but those in a copy of a word
                        # decided before that spares some (below).
                        rest = index
                        break
                    if few and found_start <= start and end <= found_end:
                        # lies in one word, among a few matches: judged on its own
                        if scan.judged((found_start, found_end), start, end):
                            continue
                    elif found_start <= start and end <= found_end:
                        # lies in one word: decide all the matches lying in it
                        key = text[found_start:found_end]
                        if not ascii_text and not key.isascii():
                            key = (key, low[found_start:found_end])
                        decided = decided_words.get(key)
                        if decided is None and scan.left > 0:
                            decided = decided_words[key] = scan.decide(found_start, found_end)
                            if scan.sparing:
                                sparing.append(key)
                        if decided is not None:
                            word_start, word_end = found_start, found_end
                            for s, e in decided:
                                spans.append((word_start + s, word_start + e))
                            continue
                        # no judgements left: this match and the others lying in the word are masked
                        doom_start, doom_end = found_start, found_end
                    elif found_start <= i < found_end:
                        if scan.crossing(start, end, (found_start, found_end), left_inside, right_inside):
                            continue
            # masked
            if start <= last_end and last_start <= end:
                # overlaps or touches the last span: grow it
                if start < last_start:
                    last_start = start
                if end > last_end:
                    last_end = end
            else:
                if last_end >= 0:
                    spans.append((last_start, last_end))
                last_start, last_end = start, end
        if rest >= 0:
            # The copies of the words decided that spare a match are found
            # first (`_copies`); the matches in one get its decided spans.
            copies = []
            if sparing:
                copies, looked = _copies(text, low, classes, sparing, decided_words, ascii_text, matches[rest][1])
                lookups += looked
            copies.append((n + 1, n + 1, ()))
            c = 0
            copy_start, copy_end, decided = copies[0]
            for _, start, end in islice(matches, rest, None):
                if end > copy_end:
                    c += 1
                    while copies[c][1] < end:
                        c += 1
                    copy_start, copy_end, decided = copies[c]
                if copy_start <= start:
                    if decided is not None:
                        for s, e in decided:
                            spans.append((copy_start + s, copy_start + e))
                        decided = None  # once per copy
                    continue
                if start <= last_end and last_start <= end:
                    if start < last_start:
                        last_start = start
                    if end > last_end:
                        last_end = end
                else:
                    if last_end >= 0:
                        spans.append((last_start, last_end))
                    last_start, last_end = start, end
        if last_end >= 0:
            spans.append((last_start, last_end))
        if textcost.active is not None and scan is not None:
            scan.steps += lookups
            textcost.note("profanity.judged", JUDGED_LIMIT - scan.left)
        if textcost.active is not None:
            textcost.charge("profanity.matches", 2 * len(matches) + len(long_runs))
            textcost.charge("profanity.words", scan.steps if scan is not None else 0)
        if not spans:
            return text
        if ascii_text:
            out = bytearray(text, "ascii")
            for start, end in spans:
                out[start:end] = _ASCII_MASK * (end - start)
            return out.decode("ascii")
        # the unmasked pieces and the masks, in order (spans may overlap)
        spans.sort()
        pieces = []
        done = 0
        for start, end in spans:
            if end <= done:
                continue
            if start < done:
                start = done
            pieces.append(text[done:start])
            pieces.append(MASK_CHAR * (end - start))
            done = end
        pieces.append(text[done:])
        return "".join(pieces)

    def _judged(self, core: str) -> tuple[bool, tuple[int, ...]]:
        """`_judge` of `core`, cached per filter."""
        info = self._core_cache.get(core)
        if info is None:
            info = self._judge(core)
            if len(self._core_cache) >= _CORE_CACHE_LIMIT:
                self._core_cache.clear()
            self._core_cache[core] = info
        return info

    def _judge(self, core: str) -> tuple[bool, tuple[int, ...]]:
        """(whether `core` is an ordinary word, the places where it splits
        into two ordinary words if it is not one)."""
        verdict = self._ordinary(core)
        if verdict is not None:
            return verdict, ()
        splits = ()
        if core.isalpha() and len(core) >= 2 * _MIN_COMPOUND_PART:
            # Both parts must be dictionary words as they are (no reductions:
            # with them, junk like "lam" + "eass" would pass).
            words, listed = self._in_dictionary, self._listed
            found = []
            for k in range(_MIN_COMPOUND_PART, len(core) - _MIN_COMPOUND_PART + 1):
                head = core[:k]
                if head not in listed and words(head):
                    tail = core[k:]
                    if tail not in listed and words(tail):
                        found.append(k)
            splits = tuple(found)
        return False, splits

    def _ordinary(self, word: str) -> Optional[bool]:
        """True if `word` is an ordinary word: in the dictionary and not on
        the list, or else reducing (by an inflection ending, a possessive,
        or by shortening a stretched letter: ``hellooo``) to a dictionary
        word and to no list entry. False if it or a reduction of it is on
        the list; None if it is simply not a word."""
        listed = self._listed
        if word in listed:
            return False
        in_dictionary = self._in_dictionary
        if in_dictionary(word):
            return True
        variants = _stems(word) + _unstretched(word)
        if not variants:
            return None
        if not listed.isdisjoint(variants):
            return False
        for variant in variants:
            if in_dictionary(variant):
                return True
        return None


class _Scan:
    """What `ProfanityFilter._mask_matches` learns about the words of one
    message, so that each word is analysed once however many matches it
    holds: the humps of each camel-case word, the core and verdict of each
    word part, the matches sorted by their ends (to find those of a word);
    and how many judgements the message has left (`JUDGED_LIMIT`). `steps`
    counts the work done (`chatnet.text.textcost`). Made for the first match
    inside a word of a message."""

    #: past the judgements, mask the matches left in one tight pass (the
    #: tests compare it with the match-by-match path, False)
    tight = True

    __slots__ = ("filter", "text", "low", "classes", "n", "matches", "ends", "found", "humps", "parts", "left", "sparing",
                 "steps")

    def __init__(self, filter: "ProfanityFilter", text: str, low: str, classes: bytes, matches):
        self.filter = filter
        self.text = text
        self.low = low
        self.classes = classes
        self.n = len(low)
        self.matches = matches
        self.ends: Optional[list[int]] = None  # made for the first word decided
        self.found = (0, 0)  # the last word found
        self.humps: dict[int, tuple[int, ...]] = {}
        self.parts: dict[tuple[int, int], tuple[int, str, bool, tuple[int, ...]]] = {}
        self.left = JUDGED_LIMIT
        self.sparing = False  # whether the last `decide` spared a match
        self.steps = 0

    def host(self, i: int) -> Optional[tuple[int, int]]:
        """The word (maximal run of word characters) around index `i`, or
        None if it is longer than `MAX_WORD`; found by scanning at most
        ``2 * MAX_WORD`` characters."""
        a, b = self.found
        if a <= i < b:
            return self.found
        self.steps += 1
        found = _host_bounds(self.classes, i, self.n)
        if found is not None:
            self.found = found
        return found

    def decide(self, a: int, b: int) -> tuple[tuple[int, int], ...]:
        """The masked spans (relative to `a`) of the matches lying in the
        word ``[a, b)``, as few as cover them."""
        masked = []
        ends = self.ends
        if ends is None:
            ends = self.ends = [m[2] for m in self.matches]
            if ends != sorted(ends):
                self.matches = sorted(self.matches, key=_END)
                ends.sort()
        matches = self.matches
        lo = bisect.bisect_right(ends, a)
        hi = bisect.bisect_right(ends, b, lo)
        self.steps += 1 + hi - lo
        host = (a, b)
        self.sparing = False
        for j in range(lo, hi):
            _, start, end = matches[j]
            if start < a:
                continue
            if start == a and end == b:
                masked.append((0, end - a))
            elif self.left <= 0:  # `judged`, inlined
                masked.append((start - a, end - a))
            else:
                self.left -= 1
                if not self.spared(host, start, end):
                    masked.append((start - a, end - a))
                else:
                    self.sparing = True
        if len(masked) < 2:
            return tuple(masked)
        # as few spans as cover the same characters
        masked.sort()
        merged: list[tuple[int, int]] = []
        for start, end in masked:
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return tuple(merged)

    def crossing(self, start: int, end: int, host: tuple[int, int], left_inside: bool, right_inside: bool) -> bool:
        """Whether the match ``[start, end)``, which runs over the edge of
        the word `host` it starts or ends inside, is spared: each word it
        starts or ends inside must spare it."""
        if left_inside:
            if not self.judged(host, start, end):
                return False
            if not right_inside:
                return True
            host = self.host(end - 1)
            return host is not None and self.judged(host, start, end)
        return self.judged(host, start, end)

    def judged(self, host: tuple[int, int], start: int, end: int) -> bool:
        """`spared`, while the message has judgements left; False after."""
        if self.left <= 0:
            return False
        self.left -= 1
        return self.spared(host, start, end)

    def spared(self, host: tuple[int, int], start: int, end: int) -> bool:
        """Whether the match ``low[start:end]`` is spared because of the word
        `host` it lies partly or wholly in (see the module docstring)."""
        a, b = host
        humps = self.humps.get(a)
        if humps is None:
            humps = self.humps[a] = _humps(self.text, a, b)
            self.steps += 1 + len(humps)
        self.steps += 1
        if humps:
            # the part between the last hump at or before the match and the
            # first hump at or after it (humps inside the match are ignored)
            i = bisect.bisect_right(humps, start)
            if i:
                a = humps[i - 1]
            j = bisect.bisect_left(humps, end, i)
            if j < len(humps):
                b = humps[j]
        part = self.parts.get((a, b))
        if part is None:
            part = self.parts[(a, b)] = self._part(a, b)
        ca, core, ordinary, splits = part
        if not ordinary and not splits:
            return False
        part_start = (start if start > ca else ca) - ca
        part_end = (end if end < ca + len(core) else ca + len(core)) - ca
        if part_start >= part_end:
            # The match does not touch the letters of the word.
            return False
        if ordinary:
            return _partial(core, part_start, part_end)
        self.steps += len(splits)
        for k in splits:
            # A compound of two ordinary words spares a match lying within
            # one of them, as that word alone would.
            if part_end <= k:
                if _partial(core[:k], part_start, part_end):
                    return True
            elif part_start >= k:
                if _partial(core[k:], part_start - k, part_end - k):
                    return True
        return False

    def _part(self, a: int, b: int) -> tuple[int, str, bool, tuple[int, ...]]:
        """(start of the core, core, whether it is an ordinary word, its
        compound splits) of the word part ``low[a:b]``; the core is the part
        without leading and trailing digits and symbols."""
        low = self.low
        core = low[a:b]
        if not core.isalpha():
            while a < b and not low[a].isalpha():
                a += 1
            while b > a and not low[b - 1].isalpha():
                b -= 1
            core = low[a:b].translate(_APOSTROPHES)
        filter = self.filter
        info = filter._core_cache.get(core)
        if info is None:
            info = filter._judged(core)
            if textcost.active is not None:
                self.steps += _judge_steps(core)
        self.steps += 1
        return (a, core, info[0], info[1])


def _copies(text: str, low: str, classes: bytes, keys: list, decided_words: dict, ascii_text: bool,
            start: int) -> tuple[list, int]:
    """(start, end, decided spans) of each copy of the words C{keys} of
    `_mask_matches` (a key is a word's text, or its text and its folded
    text) from the word around C{start} on, in order; and how many words
    were looked at (one C-level pass over the classes, one look-up a word)."""
    texts = {key[0] if isinstance(key, tuple) else key for key in keys}
    wanted = set(keys)
    found = []
    words = 0
    for run in _WORD_RUN.finditer(classes, classes.rfind(b" ", 0, start) + 1):
        words += 1
        a, b = run.span()
        key = text[a:b]
        if key in texts:
            if not ascii_text and not key.isascii():
                key = (key, low[a:b])
            if key in wanted:
                found.append((a, b, decided_words[key]))
    return found, words


def _word_classes(low: str) -> bytes:
    """``classes[i]`` is ``b"w"`` where ``low[i]`` is a word character, else
    ``b" "``."""
    if low.isascii():
        return low.encode("ascii").translate(_ASCII_WORD_CLASS)
    if _NON_ASCII_WORD_CHAR.search(low) is None:
        # Every character that is not ASCII separates words (CJK text,
        # punctuation): as ASCII with "?" (a separator) for them.
        return low.encode("ascii", "replace").translate(_ASCII_WORD_CLASS)
    return low.translate(_WORD_CLASS).encode("ascii")


def _judge_steps(core: str) -> int:
    """An upper bound of the look-ups `ProfanityFilter._judge` makes for
    `core`: the word, its reductions (two a suffix, two for stretched
    letters, each in two sets), two for each compound split, plus the length
    of the word (the slices, the stretched-letter scan)."""
    splits = max(0, len(core) - 2 * _MIN_COMPOUND_PART + 1)
    return 2 + 2 * (2 * len(_SUFFIXES) + 4) + 2 * splits + len(core)


def _humps(text: str, a: int, b: int) -> tuple[int, ...]:
    """The camel-case humps of the word ``text[a:b]`` (``Hello|World``,
    ``XML|Parser``), as indexes into `text`."""
    if _HUMP_HINT.search(text, a + 1, b) is None:
        return ()
    return tuple(a + hump.start() for hump in _HUMP.finditer(text[a:b]))


def _partial(word: str, start: int, end: int) -> bool:
    """Whether the match ``word[start:end]`` is only part of `word`: it
    neither covers `word` nor `word` less a plural or possessive ending."""
    if end - start == len(word):
        return False
    if start == 0:
        rest = word[end:]
        if rest in _PLURAL_ENDINGS and (rest != "es" or word[end - 1] in "sxzho"):
            return False
    return True


def _host_bounds(classes: bytes, i: int, n: int) -> Optional[tuple[int, int]]:
    """The maximal run of word characters around index `i`, or None if it is
    longer than `MAX_WORD` (found by scanning at most ``2 * MAX_WORD``
    characters, however long the run)."""
    lo = i - MAX_WORD
    r = classes.rfind(b" ", lo if lo > 0 else 0, i)
    if r >= 0:
        a = r + 1
    elif lo <= 0:
        a = 0
    else:
        return None
    hi = a + MAX_WORD + 1
    b = classes.find(b" ", i, hi)
    if b >= 0:
        return a, b
    if n < hi:
        return a, n
    return None


def _stems(word: str) -> list[str]:
    """Candidate base forms of an inflected or possessive word (``classes``
    -> ``class``, ``assumed`` -> ``assume``, ``shitting`` -> ``shit``,
    ``scunthorpe's`` -> ``scunthorpe``)."""
    stems = []
    if word.endswith("'s"):
        word = word[:-2]
        stems.append(word)
    elif word.endswith("s'"):
        word = word[:-1]
        stems.append(word)
    if not word.endswith(_SUFFIX_ENDS):
        return stems
    for suffix, replacements in _SUFFIXES:
        if not word.endswith(suffix):
            continue
        base = word[: -len(suffix)]
        if len(base) < 2 or (suffix == "es" and base[-1] not in "sxzho"):
            continue
        for replacement in replacements:
            stems.append(base + replacement)
        if len(base) >= 3 and base[-1] == base[-2] and base[-1] not in "aeiouls":
            stems.append(base[:-1])  # doubled consonant: shitting, bigger
    return stems


def _unstretched(word: str) -> list[str]:
    """``word`` with each run of three or more equal letters cut to two and
    to one (``hellooo`` -> ``helloo``, ``hello``); empty if it has no such
    run."""
    run = _STRETCHED.search(word)
    if run is None:
        return []
    if _STRETCHED.search(word, run.end()) is None:
        # one run (the usual case): cut by slicing
        start, end = run.span()
        head, c, tail = word[:start], word[start], word[end:]
        return [head + c + c + tail, head + c + tail]
    return [_STRETCHED.sub(_twice, word), _STRETCHED.sub(_once, word)]


def _twice(run: re.Match) -> str:
    return run.group(1) * 2


def _once(run: re.Match) -> str:
    return run.group(1)
