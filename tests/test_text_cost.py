"""The text processing of a node costs time linear in the message length.

Nothing here times anything: the work is counted (`chatnet.text.textcost`: the
matches, word look-ups, judgements and dictionary look-ups of the profanity
filter, the characters and words of word cutting), and Hypothesis searches
for the message shapes that make it grow fastest: repetitions of short list
entries and pieces of them, with case patterns, camel humps, leet digits,
stretched letters, separators, CJK text, every word different or all the
same. Each message is counted with the filter's caches emptied (a message
whose words the node has never seen).

A reference implementation (the rules of the module docstring applied to
one match at a time, with no bound on the work: the filter as it was before
its cost was bounded) checks that the bounded filter masks ordinary text
exactly as the rules say.
"""
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chatnet.bench.worst_text import CASES, SEPARATORS, Shape, render
from chatnet.text import profanity, textcost, words
from chatnet.text.profanity import JUDGED_LIMIT, MASK_CHAR, MAX_WORD, ProfanityFilter

SEED_LIST = Path(__file__).resolve().parents[2] / "shared/data/profanity-seed-list.txt"

#: steps a character, at most, for any message (measured worst: about 3)
STEPS_PER_CHAR = 6
#: the steps of the judgements a message may have (JUDGED_LIMIT of them,
#: each of a word part of at most MAX_WORD characters): the constant term
JUDGEMENT_STEPS = JUDGED_LIMIT * (profanity._judge_steps("x" * MAX_WORD) + 8)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_filters = {}


def seed_filter():
    if "seed" not in _filters:
        if not SEED_LIST.is_file():
            pytest.skip(f"no seed list at {SEED_LIST}")
        _filters["seed"] = ProfanityFilter.from_file(SEED_LIST)
    return _filters["seed"]


def short_entries():
    return sorted((w for w in seed_filter().words if len(w) <= 5), key=lambda w: (len(w), w))


def fragments():
    entries = short_entries()
    return st.one_of(
        st.sampled_from(entries),
        st.sampled_from(entries).map(lambda w: w[: max(1, len(w) // 2)]),
        st.sampled_from(["x", "xX", "aS", "sS", "İ", "你好", "アあ", "a你", "'s", "!", "hello", "class", "assume"]),
    )


shapes = st.builds(
    Shape,
    fragment=st.deferred(fragments),  # the seed list is read on first use, not at collection
    case=st.sampled_from(CASES),
    leet=st.booleans(),
    stretch=st.sampled_from([0, 1, 2, 5]),
    word=st.sampled_from([0, 3, 4, 5, 7, 8, 12, 16, 31, 32, 63, 64, 65, 100]),
    sep=st.sampled_from(SEPARATORS),
    vary=st.booleans(),
)


def work(text, filter=None):
    """The counted work of a node on `text`: masking, then word cutting,
    with cold caches."""
    filter = filter or seed_filter()
    filter.clear_cache()
    words.clear_cache()
    with textcost.counting() as counter:
        words.tokenize(filter.mask(text))
    return counter


# -- cost


@SETTINGS
@given(shapes)
def test_work_is_linear_in_the_length(shape):
    text = render(shape, 4096)
    counter = work(text)
    assert counter.steps <= STEPS_PER_CHAR * len(text), counter
    assert counter.steps - counter.kinds.get("profanity.words", 0) <= STEPS_PER_CHAR * len(text)


@SETTINGS
@given(shapes)
def test_twice_the_length_costs_at_most_two_and_a_half_times_the_work(shape):
    small = work(render(shape, 1024)).steps
    large = work(render(shape, 2048)).steps
    assert large <= 2.5 * small, (small, large)


@SETTINGS
@given(st.lists(st.sampled_from(list("xXaAsShHiI1!$5 -.'你İ\u0301"))
                | st.deferred(lambda: st.sampled_from(short_entries())), max_size=1400))
def test_any_text_of_the_alphabet_of_attacks_is_linear(pieces):
    text = "".join(pieces)
    counter = work(text)
    assert counter.steps <= STEPS_PER_CHAR * len(text) + JUDGEMENT_STEPS, counter


@SETTINGS
@given(shapes)
def test_judgements_a_message_are_bounded(shape):
    counter = work(render(shape, 4096))
    assert counter.counts.get("profanity.judged", 0) <= JUDGED_LIMIT


def test_the_shapes_of_the_issue_cost_a_few_steps_a_character():
    # the shapes measured at 28 ms to 1.5 s for 4,000 characters: the scan,
    # two steps a match, the word cutting and (a text with many matches)
    # the pass that looks for repeated words
    for fragment in ("xX", "ShIt", "x", "ass", "sh1t"):
        text = (fragment * 2000)[:4000]
        assert work(text).steps <= 5 * len(text)


# -- the rules that bound the work


def plain(words_, dictionary=()):
    return ProfanityFilter(words_, dictionary=dictionary)


def test_a_word_longer_than_max_word_spares_nothing():
    f = plain(["hell"], dictionary={"hello"})
    stretched = "hell" + "o" * (MAX_WORD - 4)  # a stretched "hello" of MAX_WORD letters
    assert f.mask(stretched) == stretched
    longer = stretched + "o"
    assert f.mask(longer) == "****" + longer[4:]


def test_judgements_stop_at_the_limit_and_a_word_that_comes_again_is_judged_once():
    f = plain(["ass"], dictionary={"class"})
    same = " ".join(["class"] * (JUDGED_LIMIT * 3))
    assert f.mask(same) == same
    # different words, each an ordinary word ("class" and digits)
    different = [f"class{i}" for i in range(JUDGED_LIMIT + 5)]
    out = f.mask(" ".join(different)).split(" ")
    assert out[:JUDGED_LIMIT] == different[:JUDGED_LIMIT]
    assert all(MASK_CHAR in w for w in out[JUDGED_LIMIT:])


# -- the bounded filter masks as the rules say


def reference_mask(f, text):
    """The rules of chatnet.text.profanity applied to each match on its own, with
    no bound on the work."""
    low = text.lower() if text.isascii() else profanity.fold(text)
    matches = f._find(low, overlapping=True) if f._find else []
    if low.isascii():
        classes = low.encode("ascii").translate(profanity._ASCII_WORD_CLASS)
    else:
        classes = low.translate(profanity._WORD_CLASS).encode("ascii")
    n = len(low)
    w = profanity._W

    def host(i):
        b = classes.find(b" ", i)
        return classes.rfind(b" ", 0, i) + 1, (n if b < 0 else b)

    def spared(h, start, end):
        a, b = h
        if profanity._HUMP_HINT.search(text, a + 1, b) is not None:
            base = a
            for hump in profanity._HUMP.finditer(text[a:b]):
                k = base + hump.start()
                if k <= start:
                    a = k
                elif k >= end:
                    b = k
                    break
        core = low[a:b]
        if not core.isalpha():
            while a < b and not low[a].isalpha():
                a += 1
            while b > a and not low[b - 1].isalpha():
                b -= 1
            core = low[a:b].translate(profanity._APOSTROPHES)
        ps, pe = max(start, a) - a, min(end, b) - a
        if ps >= pe:
            return False
        ordinary, splits = f._judge(core)
        if ordinary:
            return profanity._partial(core, ps, pe)
        for k in splits:
            if pe <= k and profanity._partial(core[:k], ps, pe):
                return True
            if ps >= k and profanity._partial(core[k:], ps - k, pe - k):
                return True
        return False

    out = list(text)
    for _, start, end in matches:
        left = start > 0 and classes[start - 1] == w and classes[start] == w
        right = end < n and classes[end] == w and classes[end - 1] == w
        if left or right:
            ok = True
            lh = None
            if left:
                lh = host(start)
                ok = spared(lh, start, end)
            if ok and right:
                rh = host(end - 1)
                if rh != lh:
                    ok = spared(rh, start, end)
            if ok:
                continue
        out[start:end] = MASK_CHAR * (end - start)
    return "".join(out)


PIECES = ["hello", "Hello", "class", "Class", "assume", "shell", "hell", "ass", "ASS", "Ass", "sh1t", "sh!t", "fuck",
          "b00bs", "ha", "123", "World", "XML", "Parser", "name", "space", "lame", "bat", "shit", "s", "es", "'s",
          "’s", " ", "  ", "-", "_", ".", ",", "!", "你好", "İ", "oooo", "xX", "x", "blow job", "a_s_s", "s.o.b."]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=24))
def test_same_masking_as_the_rules_one_match_at_a_time(pieces):
    text = "".join(pieces)
    f = seed_filter()
    # the runs the filter sees: of the folded text ("İ" is one letter there)
    runs = profanity.fold(text).translate(profanity._WORD_CLASS)
    assume(all(len(r) <= MAX_WORD for r in runs.split()))
    with textcost.counting() as counter:
        masked = f.mask(text)
    assume(counter.counts.get("profanity.judged", 0) < JUDGED_LIMIT)
    assert masked == reference_mask(f, text)


@pytest.mark.process  # the worst shapes are measured again in a fresh interpreter
def test_bench_filter_worst_reports_shapes():
    from chatnet.bench.cli import run

    result = run(["filter", "--worst", "--duration", "1", "--chars", "256", "--profanity-file", str(SEED_LIST)])
    assert result["scenario"] == "filter" and result["chars"] == 256
    assert result["worst"] and result["known"]
    assert all(entry["cpu_ms"] >= 0 and entry["steps"] > 0 for entry in result["worst"])
    assert result["max_steps_per_char"] <= STEPS_PER_CHAR + JUDGEMENT_STEPS / 256


# -- a text of a few words repeated: masked through its distinct words ----------

REPEATED_WORDS = ["cums", "FUKS", "assa", "XxxX", "jizzz", "ShIt", "hello", "class", "Assume", "sh1t", "b00bs",
                  "HelloWorld", "hellooo", "blow", "job", "s", "İ", "x" * 70, "namespace", "batshit", "a_s_s"]
REPEATED_SEPARATORS = ["你", " ", "-", ".", ", ", "\x00", "  "]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(REPEATED_WORDS), min_size=1, max_size=5),
       st.lists(st.sampled_from(REPEATED_SEPARATORS), min_size=1, max_size=3),
       st.integers(20, 400), st.randoms(use_true_random=False))
def test_a_text_of_repeated_words_masks_as_the_word_by_word_path(vocabulary, separators, length, rnd):
    """The shortcut for repeated words gives exactly what the match-by-match
    path gives (with either list), whether it is taken or not (a match over
    a word's edge, too many different words)."""
    text = "".join(rnd.choice(vocabulary) + rnd.choice(separators) for _ in range(length))
    for f in (seed_filter(), ProfanityFilter.default()):
        low = text.lower() if text.isascii() else profanity.fold(text)
        matches = f._find(low, overlapping=True)
        expected = f._mask_matches(text, low, matches) if matches else text
        f.clear_cache()
        assert f.mask(text) == expected


def test_the_repeated_words_shortcut_is_taken_for_the_costly_shape():
    f = seed_filter()
    text = ("cums你" * 819)[:4096]
    with textcost.counting() as counter:
        masked = f.mask(text)
    assert "profanity.repeated" in counter.kinds and "cums" not in masked
    assert counter.steps <= 3 * len(text)  # the scan, the pass for repeated words, a few words


# -- past the judgements: the matches left are masked in one tight pass --------


class _MatchByMatch(profanity._Scan):
    """A scan that goes on match by match past the judgements: the path
    to compare the tight pass with."""

    __slots__ = ()
    tight = False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["XXX", "xXx", "fuk", "cum", "ass", "hello", "class", "Assume", "ShIt",
                                           "hellooo", "HelloWorld", "namespace", "Scunthorpe", "b00bs", "s"]),
                          st.text("abcdefghjkmnpqrstvwyz", min_size=0, max_size=3),
                          st.sampled_from(["你", " ", "-", ", "])), min_size=1, max_size=200))
def test_past_the_judgements_the_tight_pass_masks_as_the_match_by_match_path(pieces):
    text = "".join(stem + tag + sep for stem, tag, sep in pieces)
    for f in (seed_filter(), ProfanityFilter.default()):
        f.clear_cache()
        got = f.mask(text)
        original, profanity._Scan = profanity._Scan, _MatchByMatch
        try:
            f.clear_cache()
            expected = f.mask(text)
        finally:
            profanity._Scan = original
        assert got == expected
