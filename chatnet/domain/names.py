"""Which user names a person may have (docs/protocol.md, "User names").

Names are data: no store uses one as a key, a field name or an operator
(a ``$`` or a ``.`` means nothing in a name; see L{chatnet.stores.mongo}).
What is refused is what would let one name pass for another, or for the
application: characters that are not shown (control and format
characters, among them the bidirectional overrides and the zero-width
ones; line and paragraph separators), white space at either end, and the
name the server API's messages come from (L{SYSTEM}).

This module imports nothing but the standard library (the gateway and the
nodes share it).
"""
import unicodedata

#: The conversation the server API's direct messages belong to, and no
#: user's name (docs/api.md): a user never reads them as their own.
SYSTEM = "system"
#: names no user may have
RESERVED = frozenset({SYSTEM})
MAX_NAME = 128

# control, format (bidi overrides and isolates, zero-width characters, the
# BOM), surrogates, line and paragraph separators
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def name_problem(name):
    """Why C{name} cannot be a name (a user's, an alliance's, an API
    sender's), or None if it can."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME:
        return f"has more than {MAX_NAME} characters"
    if name != name.strip():
        return "must have no white space at either end"
    for c in name:
        if unicodedata.category(c) in _HIDDEN:
            return (f"must have no control or format characters (U+{ord(c):04X}: "
                    "no control characters, bidirectional overrides, zero-width characters)")
    return None


def user_name_problem(name):
    """Why nobody may be called C{name}, or None: as L{name_problem}, and
    the reserved names (L{RESERVED})."""
    if name in RESERVED:
        return f"{name!r} is reserved"
    return name_problem(name)
