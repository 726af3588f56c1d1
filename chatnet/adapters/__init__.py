"""The only modules that use a library's private or undocumented parts, one
module per library.

Each module names what it uses and why, the release range of the library
that its tests cover (pinned with ``~=`` in setup.cfg: a new minor release
is taken only after these tests pass with it), and has a differential test
(``tests/test_adapters_<library>.py``) that runs the same input through the
library's own path and through the module's, and requires the same result:
the bytes on the wire, the values handed up, the errors, the timers.

The rest of chatnet uses the libraries' documented interfaces and what these
modules offer; ``tests/test_library_internals.py`` finds any other use of a
library's private names.
"""
