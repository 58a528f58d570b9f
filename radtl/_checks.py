"""Argument checks shared by radtl's constructors, with keras-style messages.

Each raises `ValueError("`name` must be ... Received: name=value")` and returns nothing.
Pure Python: no TensorFlow import.
"""
import difflib
import math

__all__ = ["check_int", "check_number", "check_choice", "did_you_mean", "listing", "MAX_LISTED"]


def check_int(name, value, minimum=1, *, allow_none=False):
    """Requires an int (not a bool) >= `minimum`; `None` too if `allow_none`."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        hint = " or None" if allow_none else ""
        raise ValueError(f"`{name}` must be an integer >= {minimum}{hint}. Received: {name}={value!r}")


def check_number(name, value, low=0.0, high=math.inf, *, include_low=True, include_high=True):
    """Requires a real number (not a bool) in the interval from `low` to `high`."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (value >= low if include_low else value > low)
          and (value <= high if include_high else value < high))
    if ok:
        return
    if math.isinf(high):
        interval = f"{'>=' if include_low else '>'} {low}"
    else:
        interval = f"in {'[' if include_low else '('}{low}, {high}{']' if include_high else ')'}"
    raise ValueError(f"`{name}` must be a number {interval}. Received: {name}={value!r}")


def check_choice(name, value, choices):
    """Requires `value` to be one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


def did_you_mean(value, choices) -> str:
    """`" Did you mean 'x'?"` for the choice closest to `value` (difflib), else ""."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


#: How many offending items an error or warning message lists before it summarises.
MAX_LISTED = 20


def listing(items, limit: int = MAX_LISTED) -> str:
    """Formats items one per line (indented), at most `limit` of them, then a count of the rest."""
    items = list(items)
    shown = [f"  {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  ... and {len(items) - limit} more")
    return "\n".join(shown)
