"""Stop words: the words the popular-words ranking does not count ("a",
"the", "is", 的, 了, 是, ...).

The shipped list (``chatnet/data/stopwords.txt``, English and Chinese) is
the default; ``--popular-stop-words FILE`` replaces it (``none``: count
every word). A list file has one word a line, compared after the same
normalisation as the words themselves (:func:`chatnet.text.words.tokenize`:
NFKC, lower case); ``#`` starts a comment. Words are dropped when a
message is accepted, before they reach Redis, so a stop word costs nothing
in the ranking.
"""
import functools
import unicodedata
from importlib import resources

#: --popular-stop-words value that turns the list off
NONE = "none"


def parse(text):
    """The stop words of a list file's C{text}."""
    words = set()
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.add(unicodedata.normalize("NFKC", word).lower().replace("\u2019", "'"))
    return frozenset(words)


@functools.lru_cache(maxsize=8)
def load(path=""):
    """The stop words of list file C{path} ("": the shipped list; C{none}:
    none), read once per process."""
    if path == NONE:
        return frozenset()
    if not path:
        return parse(resources.files("chatnet").joinpath("data/stopwords.txt").read_text(encoding="utf-8"))
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def without(words, stop):
    """C{words} less the stop words C{stop}."""
    return [w for w in words if w not in stop] if stop else words
