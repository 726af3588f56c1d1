"""The most expensive chat messages for the text processing of a node.

`search_worst` builds messages of a given length from *shapes*: a short
fragment (a list entry, a piece of one, ``x``, ``xX``, a CJK character...)
repeated into words of a given length, with a case pattern (lower, upper,
alternating, camel humps), leet digits, stretched letters, a separator, and
optionally every word made different from the others (so that nothing a
message learns about one word serves for the next). It measures the CPU
time of what a node does to the text of an accepted message (profanity
masking, then cutting the words for the popular ranking) on each shape,
with the filter's and the segmenter's caches emptied before each message
(the cost of a message whose words the node has not seen), searches around
the worst shapes found, and returns them worst first.

``chatnet-bench filter --worst`` runs it (see `chatnet.bench.scenarios`).
"""
from __future__ import annotations

import gc
import json
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, List, Optional, Sequence

from chatnet.text import textcost, words
from chatnet.text.profanity import ProfanityFilter

CASES = ("lower", "upper", "alternate", "camel", "title")
SEPARATORS = (" ", "-", ".", "\u4f60", "")
WORD_LENGTHS = (0, 3, 5, 8, 16, 32, 64, 65, 200)
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_LETTERS = "bcdfghjklmnpqrvwz"

#: Shapes the old filter was known to be slow on (issue 20), always measured.
KNOWN = ("xX", "ShIt", "x", "ass", "sh1t")

#: Fragments tried besides the short entries of the list.
EXTRA_FRAGMENTS = ("x", "xX", "aS", "sS", "i\u0307", "\u0130", "\u4f60\u597d", "\u30a2\u3042", "a\u4f60", "'s", "!")


@dataclass(frozen=True)
class Shape:
    fragment: str
    case: str = "lower"  # one of CASES
    leet: bool = False
    stretch: int = 0  # extra copies of each fragment's last character
    word: int = 0  # characters a word, 0: no separators at all
    sep: str = " "
    vary: bool = False  # each word made different from the others

    def describe(self) -> str:
        parts = [repr(self.fragment), self.case]
        if self.leet:
            parts.append("leet")
        if self.stretch:
            parts.append(f"stretch {self.stretch}")
        parts.append(f"words of {self.word} sep {self.sep!r}" if self.word else "one run")
        if self.vary:
            parts.append("each word different")
        return ", ".join(parts)


def render(shape: Shape, n: int) -> str:
    """The message of `n` characters made of `shape`."""
    piece = shape.fragment
    if shape.leet:
        piece = piece.translate(_LEET)
    if shape.stretch and piece:
        piece = piece + piece[-1] * shape.stretch
    if shape.case == "upper":
        piece = piece.upper()
    elif shape.case == "title" or shape.case == "camel":
        piece = piece[:1].upper() + piece[1:]
    if shape.case == "alternate":
        unit = "".join(c.upper() if i % 2 else c for i, c in enumerate(piece * 2))
    else:
        unit = piece
    if not unit:
        unit = "x"
    if not shape.word:
        text = unit * (n // len(unit) + 1)
        if shape.case == "title":
            text = text[:1].upper() + text[1:].lower()
        return text[:n]
    out: List[str] = []
    size = 0
    index = 0
    stream = unit * (shape.word // len(unit) + 2)
    while size < n:
        word = stream[: shape.word]
        if shape.case == "title":
            word = word[:1].upper() + word[1:].lower()
        if shape.vary:
            tag = _tag(index)
            word = (word[: max(0, len(word) - len(tag))] + tag)[: max(shape.word, len(tag))]
        out.append(word)
        out.append(shape.sep)
        size += len(word) + len(shape.sep)
        index += 1
    return "".join(out)[:n]


def _tag(index: int) -> str:
    """A short run of consonants, different for each index."""
    tag = []
    while True:
        index, digit = divmod(index, len(_LETTERS))
        tag.append(_LETTERS[digit])
        if not index:
            return "".join(tag)


def fragments(filter: ProfanityFilter, limit: int = 40) -> List[str]:
    """The fragments shapes are made of: the shortest list entries (and
    their first halves) and `EXTRA_FRAGMENTS`."""
    entries = sorted((w for w in filter.words if w.isalpha() or " " not in w), key=lambda w: (len(w), w))[:limit]
    halves = [w[: max(2, len(w) // 2)] for w in entries[: limit // 4]]
    seen = {}
    for f in (*KNOWN, *EXTRA_FRAGMENTS, *entries, *halves):
        seen.setdefault(f, None)
    return list(seen)


def pipeline(filter: ProfanityFilter) -> Callable[[str], object]:
    """What a node does to the text of an accepted message."""
    mask, tokenize = filter.mask, words.tokenize

    def run(text: str) -> object:
        return tokenize(mask(text))

    return run


def measure(filter: ProfanityFilter, text: str, repeat: int = 3) -> dict:
    """CPU milliseconds (the least of `repeat` runs, each with cold caches,
    the garbage collector held off: its pauses are the whole heap's cost,
    not the message's) and counted steps of the pipeline on `text`."""
    run = pipeline(filter)
    best = float("inf")
    for _ in range(repeat):
        filter.clear_cache()
        words.clear_cache()
        gc.disable()
        try:
            started = time.process_time()
            run(text)
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
    filter.clear_cache()
    words.clear_cache()
    with textcost.counting() as work:
        run(text)
    return {"cpu_ms": round(best * 1000, 3), "steps": work.steps}


def random_shape(rng: random.Random, frags: Sequence[str]) -> Shape:
    return Shape(
        fragment=rng.choice(frags),
        case=rng.choice(CASES),
        leet=rng.random() < 0.2,
        stretch=rng.choice((0, 0, 0, 1, 3)),
        word=rng.choice(WORD_LENGTHS),
        sep=rng.choice(SEPARATORS),
        vary=rng.random() < 0.5,
    )


def mutate(rng: random.Random, shape: Shape, frags: Sequence[str]) -> Shape:
    field = rng.choice(("fragment", "case", "leet", "stretch", "word", "sep", "vary"))
    if field == "fragment":
        return replace(shape, fragment=rng.choice(frags))
    if field == "case":
        return replace(shape, case=rng.choice(CASES))
    if field == "leet":
        return replace(shape, leet=not shape.leet)
    if field == "stretch":
        return replace(shape, stretch=rng.choice((0, 1, 2, 3, 5)))
    if field == "word":
        return replace(shape, word=max(0, shape.word + rng.choice((-2, -1, 1, 2, 8, -8))))
    if field == "sep":
        return replace(shape, sep=rng.choice(SEPARATORS))
    return replace(shape, vary=not shape.vary)


#: runs of each of the worst shapes found, measured again at the end (the
#: least is kept: a run the machine slowed, or a garbage collection that
#: others' allocations started, is not the shape's cost)
REMEASURE = 15


def search_worst(
    filter: Optional[ProfanityFilter] = None,
    chars: int = 4096,
    seconds: float = 20.0,
    top: int = 10,
    seed: int = 20,
    known: Iterable[str] = KNOWN,
    profanity_file: Optional[str] = None,
) -> dict:
    """Search for `seconds` for the shapes of `chars`-character messages
    that cost the most; returns ``{"chars", "shapes_tried", "worst": [...],
    "known": [...]}``, each entry ``{"shape", "sample", "cpu_ms", "steps"}``,
    worst first. Half the time goes to random shapes, half to changing the
    worst ones found one property at a time. The worst found are measured
    again in a fresh interpreter (with `filter` made again from
    `profanity_file`, or the shipped list): thousands of trials leave a
    process that runs the same text up to twice as slowly as a node."""
    if filter is None:
        filter = ProfanityFilter.default()
    rng = random.Random(seed)
    frags = fragments(filter)
    results: dict = {}

    def trial(shape: Shape) -> dict:
        if shape not in results:
            text = render(shape, chars)
            results[shape] = {"shape": shape.describe(), "sample": text[:48], **measure(filter, text)}
        return results[shape]

    known_results = [trial(Shape(fragment=f)) for f in known]
    started = time.monotonic()
    while time.monotonic() - started < seconds / 2:
        trial(random_shape(rng, frags))
    while time.monotonic() - started < seconds:
        ranked = sorted(results, key=lambda s: results[s]["cpu_ms"], reverse=True)[:top]
        trial(mutate(rng, rng.choice(ranked), frags))
    ranked = sorted(results.values(), key=lambda r: r["cpu_ms"], reverse=True)
    # measure the worst again, to keep out a run that the machine slowed
    shapes = [next(s for s, r in results.items() if r is entry) for entry in ranked[: top * 2]]
    again = measure_fresh(shapes, chars, profanity_file)
    worst = [{**entry, **measured} for entry, measured in zip(ranked, again)]
    worst.sort(key=lambda r: r["cpu_ms"], reverse=True)
    return {"chars": chars, "shapes_tried": len(results), "worst": worst[:top], "known": known_results,
            "max_steps_per_char": round(max(r["steps"] for r in results.values()) / chars, 2)}


def measure_fresh(shapes: Sequence[Shape], chars: int, profanity_file: Optional[str] = None,
                  repeat: int = REMEASURE) -> List[dict]:
    """`measure` of each of `shapes` (``REMEASURE`` runs) in a new
    interpreter, as a node that just started would run them."""
    request = {"shapes": [asdict(s) for s in shapes], "chars": chars, "repeat": repeat,
               "profanity_file": profanity_file}
    done = subprocess.run([sys.executable, "-m", "chatnet.bench.worst_text"], input=json.dumps(request),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _measure_request() -> None:
    """`measure_fresh`'s other end: a request on stdin, the results on stdout."""
    request = json.load(sys.stdin)
    path = request["profanity_file"]
    filter = ProfanityFilter.from_file(path) if path else ProfanityFilter.default()
    print(json.dumps([measure(filter, render(Shape(**s), request["chars"]), repeat=request["repeat"])
                      for s in request["shapes"]]))


def shape_dict(shape: Shape) -> dict:
    return asdict(shape)


if __name__ == "__main__":
    _measure_request()
