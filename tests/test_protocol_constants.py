"""The protocol names client and server share (chatnet/protocols/constants.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chatnet.protocols.constants import (
    ALLIANCE_PREFIX,
    WORLD,
    automatic_rooms,
    format_duration,
    is_automatic,
    online_for,
)


@pytest.mark.parametrize("room, automatic", [
    ("world", True),
    ("alliance:red", True),
    ("alliance:a b", True),
    ("alliance:", False),  # no alliance name: no room
    ("World", False),
    ("worlds", False),
    ("room1", False),
    ("my alliance:red", False),
    ("", False),
])
def test_is_automatic(room, automatic):
    assert is_automatic(room) is automatic


def test_automatic_rooms():
    assert automatic_rooms("") == [WORLD]
    assert automatic_rooms("red") == [WORLD, ALLIANCE_PREFIX + "red"]
    assert all(is_automatic(r) for r in automatic_rooms("red"))


def test_online_for_format():
    login = 1_700_000_000_000
    assert online_for(login, login) == "00d 00h 00m 00s"
    assert online_for(login, login + 999) == "00d 00h 00m 00s"
    assert online_for(login, login + 3_723_000) == "00d 01h 02m 03s"
    assert online_for(login, login + (2 * 86400 + 5) * 1000) == "02d 00h 00m 05s"
    assert online_for(login, login - 5000) == "00d 00h 00m 00s"  # clocks a little apart
    assert format_duration(3723.9) == "00d 01h 02m 03s"


@pytest.mark.process  # a Python interpreter of its own
def test_imports_nothing_heavy():
    code = ("import sys, chatnet.protocols.constants; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('twisted', 'autobahn', 'txredisapi', 'txmongo', 'pymongo', 'kazoo', 'orjson', 'urwid')); "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
