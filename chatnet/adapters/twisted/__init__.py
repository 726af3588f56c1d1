"""Twisted's private or undocumented parts, in one module per protocol
family: L{amp} (the internal links' boxes), L{tcp} (the writes kept for the
end of the reactor turn), L{web} (the HTTP channel's request state).

Pinned to L{PIN} (setup.cfg); the differential tests are
``tests/test_adapters_amp.py``, ``tests/test_turnwrites.py`` and
``tests/test_adapters_web.py``.
"""

#: the releases the tests of these modules cover
PIN = "twisted~=26.10.0"
