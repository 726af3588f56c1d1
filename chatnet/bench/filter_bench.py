"""Throughput of the profanity filter on realistic chat messages.

`run_filter_bench` builds a deterministic corpus of chat lines of 20 to 200
characters (about 85% clean English, 5% English with a listed word, 10%
Chinese; some clean English lines hold ordinary words that contain a listed
word, such as "hello" or "class") and pushes it through
`ProfanityFilter.mask`, one call per message, for a given time.
``python -m chatnet.bench.filter_bench [seconds]`` prints the result as one JSON line.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from typing import Optional

from chatnet.text.profanity import ProfanityFilter

# Everyday chat vocabulary, roughly most frequent first; words are drawn
# with Zipf weights (the k-th word with weight 1/(k+3)).
_ENGLISH = """
i you the to a and it is that of in for me my on this we be have are so not
do but just what with was can at your get if all know like no yes ok go out up
now will how good one they he she there time think see about want need today
here got going really yeah lol thanks hi hey u im dont its well then would
right when who back some more too did why work day still much come oh make
home let an been sure could our great wait sorry nice love by them from said
tomorrow tonight take please new call any last night morning maybe also
lunch people something thing way week meeting only over after little next
help play tell try very find first even same stop because though before again
fine cool look feel long later soon done friend check send message line
free better best big bad early late busy happy phone room game movie music
team office server code bug fix test build deploy review merge branch commit
coffee dinner party weekend friday monday plan point problem ready quick real
around every everyone someone nothing other place number read start stuff
""".split()
_ENGLISH_WEIGHTS = list(itertools.accumulate(1 / (k + 3) for k in range(len(_ENGLISH))))

# Ordinary words that contain an entry of the default list: they make the
# filter look at its dictionary although the message is clean. Each word of
# an English message is one of these with probability _TRAP_RATE. In English
# text such words are each of the order of 20 to 300 per million, together a
# few per thousand words, so about one clean 100-character line in ten has
# one.
_TRAPS = """
hello class pass password passed assume assumed space title document glass
shell grass massive classes assistant passing classic japan parse analysis
cocktail butter shore assignment associate scrape documents accumulate
tycoon cockpit dickens peacock assessment embassy circumstances raccoon
therapist Scunthorpe Middlesex Essex shellfish harass scrabble swanky
""".split()
_TRAP_RATE = 0.005

_CHINESE = """
我们 今天 明天 晚上 一起 吃饭 服务器 消息 朋友 工作 时间 问题 可以 没有
知道 现在 已经 还是 因为 所以 如果 但是 这个 那个 什么 怎么 为什么 喜欢 开会
下班 周末 电影 音乐 游戏 天气 很好 非常 谢谢 不客气 你好 大家 公司 项目 测试
""".split()

_DIRTY = [
    "fuck", "shit", "bitch", "asshole", "fucking", "bullshit", "dickhead",
    "wtf fuck", "piss off", "b!tch", "sh1t", "motherfucker", "crap", "damn",
]


def build_corpus(count: int = 20_000, seed: int = 1234) -> list[str]:
    """`count` chat messages, the same for the same `seed`."""
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        roll = rng.random()
        target = rng.randint(20, 200)
        if roll < 0.10:
            # Chinese: about three UTF-8 bytes a character.
            parts: list[str] = []
            length = 0
            while length * 3 < target:
                part = rng.choice(_CHINESE)
                parts.append(part)
                length += len(part)
            text = "".join(parts) + rng.choice(["。", "！", "？", "，好的", ""])
        else:
            words: list[str] = []
            length = 0
            while length < target:
                if rng.random() < _TRAP_RATE:
                    word = rng.choice(_TRAPS)
                else:
                    word = rng.choices(_ENGLISH, cum_weights=_ENGLISH_WEIGHTS)[0]
                words.append(word)
                length += len(word) + 1
            if roll >= 0.95:
                words.insert(rng.randrange(len(words) + 1), rng.choice(_DIRTY))
            text = " ".join(words)
            text = text[0].upper() + text[1:] + rng.choice([".", "!", "?", "", " :)"])
        messages.append(text)
    return messages


def run_filter_bench(seconds: float = 3.0, filter: Optional[ProfanityFilter] = None) -> dict:
    """Mask the corpus over and over, one `mask` call per message, for about
    `seconds` (the filter is built before the clock starts); returns
    ``{"scenario": "filter", "messages", "bytes", "seconds", "mb_per_s",
    "msgs_per_s"}``, bytes counted as UTF-8, MB as 10**6 bytes."""
    if filter is None:
        filter = ProfanityFilter.default()
    corpus = build_corpus()
    batch = 1000
    batches = [corpus[j : j + batch] for j in range(0, len(corpus) - batch + 1, batch)]
    batch_bytes = [sum(len(m.encode("utf-8")) for m in b) for b in batches]
    mask = filter.mask
    for message in batches[0]:  # warm up caches, as in a running server
        mask(message)
    messages = 0
    nbytes = 0
    k = 0
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for message in batches[k]:
            mask(message)
        messages += batch
        nbytes += batch_bytes[k]
        k = (k + 1) % len(batches)
        elapsed = time.perf_counter() - started
    return {
        "scenario": "filter",
        "messages": messages,
        "bytes": nbytes,
        "seconds": round(elapsed, 3),
        "mb_per_s": round(nbytes / elapsed / 1e6, 2),
        "msgs_per_s": round(messages / elapsed, 1),
    }


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    seconds = float(argv[0]) if argv else 3.0
    print(json.dumps(run_filter_bench(seconds)))


if __name__ == "__main__":
    main()
