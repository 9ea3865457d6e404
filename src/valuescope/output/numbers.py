"""One number format for every table valuescope prints (CLI and report).

* 3 significant digits, never scientific notation: ``0.500``, ``0.0234``, ``12.3``, ``1,234``;
* a magnitude below 0.001 (but not 0) prints as ``< 0.001`` (negative: ``> -0.001``);
* NaN / None print as ``–``;
* an interval ``[lo, hi]`` uses the same format as its value;
* integers (counts) print whole, with thousands separators.
"""

from __future__ import annotations

import math
from typing import Any

DIGITS = 3  #: significant digits of every printed estimate
FLOOR = 1e-3  #: below this magnitude a number prints as "< 0.001"
MISSING = "–"


def as_float(v: Any) -> float | None:
    """``v`` as a float, None when it is missing or not a number."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def fmt_num(v: Any, digits: int = DIGITS) -> str:
    """One number in the shared format (module docstring); non-numbers print as ``str(v)``."""
    if v is None:
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    f = as_float(v)
    if f is None:
        try:
            if v != v:  # NaN-like (pd.NA, numpy nan)
                return MISSING
        except (TypeError, ValueError):
            return MISSING
        return str(v)
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if f == 0:
        return "0"
    if abs(f) < FLOOR:
        return "< 0.001" if f > 0 else "> -0.001"
    if abs(f) >= 10 ** (digits - 1) * 10 or (f.is_integer() and abs(f) >= 10 ** (digits - 1)):
        return f"{round(f):,}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(f))))
    s = f"{f:.{decimals}f}"
    # rounding up can add a digit (9.996 -> "10.00"): keep 3 significant digits
    if len(s.lstrip("-").replace(".", "").lstrip("0")) > digits and decimals > 0:
        s = f"{f:.{decimals - 1}f}"
    return s


def fmt_ci(value: Any, lo: Any, hi: Any, digits: int = DIGITS) -> str:
    """``value [lo, hi]`` (the interval left out when either bound is missing)."""
    s = fmt_num(value, digits)
    if as_float(value) is None:
        return MISSING
    lo_f, hi_f = as_float(lo), as_float(hi)
    if lo_f is not None and hi_f is not None:
        s += f" [{fmt_num(lo_f, digits)}, {fmt_num(hi_f, digits)}]"
    return s


def fmt_p(p: Any) -> str:
    """A p- or q-value: ``< 0.001`` below the floor, else 3 significant digits."""
    return fmt_num(p)
