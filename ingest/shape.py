"""How many values a JSON body holds, counted without parsing it: what parsing it will take.

Compiled (ops/stack/native.py): the edge runs it over a whole body when the commas in it
suggest more values than its length accounts for (Intake.body).
"""

from __future__ import annotations

from typing import Final

# Final: compiled, a name that is not is looked up in the module's dict each time it is read.
_QUOTE: Final = 34
_BACKSLASH: Final = 92
_COMMA: Final = 44


def json_values(data: bytes) -> int:
    """The commas outside strings, plus one: at most one fewer than the values and members the
    document parses into (each an object or a slot of one, whatever its length)."""
    count = 1
    in_string = False
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if in_string:
            if c == _BACKSLASH:
                i += 1  # the escaped byte, a quote perhaps
            elif c == _QUOTE:
                in_string = False
        elif c == _QUOTE:
            in_string = True
        elif c == _COMMA:
            count += 1
        i += 1
    return count
