"""The plain ``--log`` transcript of the terminal client (its format: :mod:`chatnet.client`)."""

from __future__ import annotations


class Transcript:
    """The plain ``--log`` transcript."""

    def __init__(self, path: str):
        self.file = open(path, "w", encoding="utf-8", buffering=1)

    def write(self, line: str) -> None:
        try:
            self.file.write(line + "\n")
            self.file.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass
