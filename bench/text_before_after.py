"""CPU per message of a node's text processing (profanity masking, then
word cutting) on the costliest message shapes, for this checkout and for an
older commit, measured the same way.

The shapes are those of issue 20 and the worst that
``chatnet-bench filter --worst`` found (`chatnet.bench.worst_text`), 4,096
characters each. Each commit's code is measured in a fresh interpreter: the
least CPU time (``time.process_time``) of a few runs, with the filter's and
the segmenter's caches emptied before each (a message whose words the node
has not seen). Prints one JSON line per shape: ``{"shape", "before_ms",
"after_ms"}``.

    python -m bench.text_before_after --before 128d930 [--list FILE] [--repeat 3] [--rounds 1]

Run it from the repo root (it uses ``git archive`` for the older commit).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from chatnet.bench.worst_text import KNOWN, Shape, render

SHAPES = [Shape(fragment=f) for f in KNOWN] + [
    Shape("xX", stretch=1, word=40, sep="\u4f60"),
    Shape("coon", "camel", stretch=5, word=9, sep="\u4f60", vary=True),
    Shape("x", "alternate", leet=True, stretch=1, word=5, sep="\u4f60"),
    Shape("ShIt", stretch=3, word=8, sep="\u4f60", vary=True),
    Shape("ass", stretch=3, word=8, sep="\u4f60", vary=True),
    Shape("butt", "title", stretch=3, word=7, sep="\u4f60", vary=True),
    Shape("xxx", "upper", stretch=3, word=63, sep="\u4f60", vary=True),
    Shape("xX", "alternate", word=64, sep=" ", vary=True),
    Shape("x", word=64),
    Shape("xX", word=8, sep=" "),
    # the worst found after the judgements were bounded (db8b1fd)
    Shape("aS", "title", stretch=3, word=7, sep="\u4f60", vary=True),
    Shape("xX", "title", stretch=1, word=6, sep="\u4f60", vary=True),
    Shape("fag", stretch=2, word=8, sep="\u4f60", vary=True),
    Shape("as", stretch=1, word=4, sep="\u4f60"),
    Shape("x", "alternate", leet=True, word=5, sep="\u4f60"),
    Shape("fuks", "upper", stretch=2, word=4, sep="\u4f60"),
    Shape("cums", stretch=2, word=4, sep="\u4f60"),
    # the worst found after the repeated-words shortcut and the tight pass (2026-12-04)
    Shape("a\u4f60"),
    Shape("\u0130", "camel", word=1, sep="\u4f60"),
    Shape("f**k", "alternate", stretch=1, word=6, sep="\u4f60"),
    Shape("f*ck", "upper", word=4, sep="\u4f60"),
    Shape("xxx", "upper", leet=True, stretch=3, word=7, sep="\u4f60", vary=True),
    Shape("xX", stretch=1, word=15, sep="\u4f60", vary=True),
    Shape("x", "camel", leet=True, stretch=3, word=69, sep="\u4f60", vary=True),
    Shape("as", "camel", stretch=5, word=6, sep="\u4f60", vary=True),
    Shape("cum", "camel", stretch=2, word=6, sep="\u4f60", vary=True),
]

# Runs in the child: works with the old code and the new (caches emptied
# through whatever attribute each has).
CHILD = r"""
import json, sys, time
from chatnet.text import words
from chatnet.text.profanity import ProfanityFilter
assert words.__file__.startswith(sys.argv[1]), (words.__file__, sys.argv[1])
args = json.load(sys.stdin)
f = ProfanityFilter.from_file(args["list"]) if args["list"] else ProfanityFilter.default()
def cold():
    f._core_cache.clear()
    getattr(words, "_cut_cached").cache_clear()
out = []
for text in args["texts"]:
    best = float("inf")
    for _ in range(args["repeat"]):
        cold()
        started = time.process_time()
        words.tokenize(f.mask(text))
        best = min(best, time.process_time() - started)
    out.append(round(best * 1000, 3))
print(json.dumps(out))
"""


def measure(root, texts, word_list, repeat):
    env = dict(os.environ, PYTHONPATH=root)
    # run in `root`: "python -c" puts the working directory first on the path
    proc = subprocess.run([sys.executable, "-c", CHILD, root], input=json.dumps(
        {"texts": texts, "list": os.path.abspath(word_list) if word_list else "", "repeat": repeat}), env=env,
        cwd=root, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.text_before_after")
    p.add_argument("--before", required=True, help="the older commit")
    p.add_argument("--list", default="", help="word list file (default: the shipped list)")
    p.add_argument("--chars", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1,
                   help="measure both commits this many times, alternating; the least of each is kept")
    opts = p.parse_args(argv)
    texts = [render(shape, opts.chars) for shape in SHAPES]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(["git", "archive", opts.before, "chatnet"], cwd=here, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        before = after = None
        for _ in range(opts.rounds):
            b = measure(old, texts, opts.list, opts.repeat)
            a = measure(here, texts, opts.list, opts.repeat)
            before = b if before is None else list(map(min, before, b))
            after = a if after is None else list(map(min, after, a))
    for shape, b, a in zip(SHAPES, before, after):
        print(json.dumps({"shape": shape.describe(), "before_ms": b, "after_ms": a}, ensure_ascii=False))


if __name__ == "__main__":
    main()
