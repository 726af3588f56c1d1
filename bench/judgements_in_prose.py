"""How many judgements of a match inside a word ordinary prose needs, per
message-sized stretch: the evidence behind `chatnet.text.profanity.JUDGED_LIMIT`.

Reads English prose found on the machine (this project's docs, the
descriptions and licences of the installed Python packages, the system's
common licences), cuts it into stretches of 4,096 characters (one every
1,024), masks each with the filter's caches emptied, and prints per word
list the most judgements any stretch needed and the counts of the highest.

    python -m bench.judgements_in_prose [--list FILE ...]
"""
import argparse
import glob
import sys

from chatnet.text import profanity, textcost

SOURCES = (
    "README.md",
    "docs/**/*.md",
    sys.prefix + "/lib/python3*/site-packages/*.dist-info/METADATA",
    sys.prefix + "/lib/python3*/site-packages/*.dist-info/LICENSE*",
    "/usr/share/common-licenses/*",
)


def prose() -> str:
    parts = []
    for pattern in SOURCES:
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f.read())
            except OSError:
                continue
    return "\n".join(parts)


def most_judged(filter: profanity.ProfanityFilter, text: str, size: int = 4096, step: int = 1024) -> dict:
    counts: dict = {}
    for i in range(0, max(1, len(text) - size + step), step):
        filter.clear_cache()
        with textcost.counting() as work:
            filter.mask(text[i:i + size])
        judged = work.counts.get("profanity.judged", 0)
        counts[judged] = counts.get(judged, 0) + 1
    return {"most": max(counts), "highest": sorted(counts.items())[-5:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--list", action="append", help="a word list file (default: the shipped list)")
    args = parser.parse_args()
    text = prose()
    print(f"{len(text)} characters of prose")
    filters = {path: profanity.ProfanityFilter.from_file(path) for path in args.list or ()}
    if not filters:
        filters["shipped"] = profanity.ProfanityFilter.default()
    for name, f in filters.items():
        print(name, most_judged(f, text))


if __name__ == "__main__":
    main()
