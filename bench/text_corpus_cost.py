"""CPU per ordinary message of a node's text processing: profanity masking
alone, and masking then word cutting, over the corpus of realistic chat
lines of ``chatnet-bench filter`` (`chatnet.bench.filter_bench`), split into
the messages in which the automaton finds nothing, those in which it finds
something, and those that are not ASCII. Least of `--repeat` passes, caches
warm (as in a running node). Prints one JSON line.

    python -m bench.text_corpus_cost [--list FILE] [--repeat 5]

Run it with ``PYTHONPATH`` set to an older checkout to compare.
"""
import argparse
import json
import time

from chatnet.bench.filter_bench import build_corpus
from chatnet.text import profanity, words


def per_message_us(fn, messages, repeat):
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for m in messages:
            fn(m)
        best = min(best, time.process_time() - started)
    return round(best * 1e6 / max(1, len(messages)), 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--list", help="a word list file (default: the shipped list)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    f = profanity.ProfanityFilter.from_file(args.list) if args.list else profanity.ProfanityFilter.default()
    corpus = build_corpus()
    low = [profanity.fold(m) for m in corpus]
    found = [m for m, l in zip(corpus, low) if f._find(l, overlapping=True)]
    clean = [m for m, l in zip(corpus, low) if not f._find(l, overlapping=True)]
    non_ascii = [m for m in corpus if not m.isascii()]
    mask, tokenize = f.mask, words.tokenize
    both = lambda m: tokenize(mask(m))  # noqa: E731
    for m in corpus:
        both(m)  # warm caches
    out = {"messages": len(corpus), "with_a_match": len(found), "non_ascii": len(non_ascii)}
    for name, group in (("all", corpus), ("no_match", clean), ("with_a_match", found), ("non_ascii", non_ascii)):
        out[f"mask_us_{name}"] = per_message_us(mask, group, args.repeat)
        out[f"mask_and_words_us_{name}"] = per_message_us(both, group, args.repeat)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
