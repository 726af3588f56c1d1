"""One closing line for several pytest runs (the tiers of scripts/run-tests):

    python -m devtools.pytest_summary NAME LOG [NAME LOG ...]

prints each run's own summary line, named, then the counts of all runs added
up, in the form of pytest's own last line (``12 passed, 1 skipped in 3.40s``),
so that whatever reads a pytest run's result reads the whole run.
"""
import re
import sys

# pytest -q's last line, with or without its === frame:
# "3 failed, 640 passed, 2 skipped, 1 error in 55.11s (0:00:55)"
_SUMMARY = re.compile(r"^(?:=+ )?((?:\d+ [a-z]+(?:, )?)+) in ([0-9.]+)s\b.*?(?: =+)?$")
_COUNT = re.compile(r"(\d+) ([a-z]+)")
# pytest's order of the outcomes in its summary line
_ORDER = ["failed", "passed", "skipped", "deselected", "xfailed", "xpassed", "warnings", "errors",
          "rerun"]
# the words pytest writes in the singular for one
_PLURALS = {"warning": "warnings", "error": "errors"}


def summary_line(text):
    """The last summary line of a pytest run's output, or None."""
    for line in reversed(text.splitlines()):
        if _SUMMARY.match(line.strip()):
            return line.strip()
    return None


def parse(line):
    """C{({outcome: count}, seconds)} of a summary line (outcomes in the plural)."""
    match = _SUMMARY.match(line)
    counts = {}
    for number, outcome in _COUNT.findall(match.group(1)):
        outcome = _PLURALS.get(outcome, outcome)
        counts[outcome] = counts.get(outcome, 0) + int(number)
    return counts, float(match.group(2))


def combine(lines):
    """The summary line of the runs whose summary lines are C{lines}."""
    total, seconds = {}, 0.0
    for line in lines:
        counts, took = parse(line)
        seconds += took
        for outcome, number in counts.items():
            total[outcome] = total.get(outcome, 0) + number
    total.pop("deselected", None)  # each run deselects the others' tests
    singulars = {plural: singular for singular, plural in _PLURALS.items()}
    order = {outcome: i for i, outcome in enumerate(_ORDER)}
    parts = [f"{total[o]} {singulars[o] if total[o] == 1 and o in singulars else o}"
             for o in sorted(total, key=lambda o: order.get(o, len(order)))]
    return f"{', '.join(parts) or 'no tests ran'} in {seconds:.2f}s"


def main(argv):
    if not argv or len(argv) % 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    lines = []
    for name, path in zip(argv[::2], argv[1::2]):
        with open(path, encoding="utf-8", errors="replace") as f:
            line = summary_line(f.read())
        print(f"{name}: {line or 'no summary line'}")
        if line:
            lines.append(line)
    print(combine(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
