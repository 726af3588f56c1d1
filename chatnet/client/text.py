"""Text as the terminal client shows and compares it (pure functions)."""

from __future__ import annotations

import time
import unicodedata


def clean_text(text: str) -> str:
    """Replace control characters (terminal escapes) by ``?``; keep newlines, tabs become spaces."""
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: str) -> str:
    """A message as one transcript line: newline written as ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def fmt_time(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def text_matches(sent: str, got: str) -> bool:
    """Whether ``got`` (as the server delivered it, profanity masked) is the message ``sent``."""
    sent, got = sent.strip(), got.strip()
    if sent == got:
        return True
    return len(sent) == len(got) and all(g == s or g == "*" for s, g in zip(sent, got))
