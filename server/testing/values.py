"""The data-only encoding of values sent from a sandboxed run to the server, and the server's
comparisons on them: the single source of truth for both sides.

A test checked *out of process* never lets the candidate's process decide whether it passed:
the child (``value_runner.py``) only calls the code and sends back what came out, encoded here
as plain data — ``None``, ``bool``, ``int``, ``float`` (``nan``/``inf`` included, bit-exact),
``complex``, ``str``, ``bytes``/``bytearray`` and ``list``/``tuple``/``dict``/``set``/
``frozenset`` of them, bounded in depth and size. Anything else is *not plain data*: it is
encoded as its type's name only and can never pass a check. The server decodes with
:func:`decode` (strict: anything malformed raises ``ValueError``) into real Python objects
built from trusted types only, so ``==`` on them means exactly what ``==`` on plain data means
(no ``__eq__`` of the candidate's is ever called).

Subclasses of the plain types (an ``IntEnum``, a ``namedtuple``, ``numpy.float64``) are
encoded as their base type's value, read through the base type's own C methods, and numpy's
0-d scalars through ``.item()``: the value is what a test compares, whatever class carries it.

Standard library only: the sandbox copies this file next to the runner
(``plancode_values.py``) and the runner imports it; the server imports it as
``plancode.testing.values``.
"""

from __future__ import annotations

import collections
import doctest
import hashlib
import hmac
import math
from typing import Any

MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_CHARS = 1_000_000  # characters of str/bytes (hex) in one value, all together
_CONTAINERS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}


class NotPlain(Exception):
    """The value is not plain data (its message names the type), or is too large to send."""


MAX_MESSAGE = 500  # characters of an exception's or a warning's text sent back


def text(value: Any) -> str:
    """``str(value)`` cut to :data:`MAX_MESSAGE`, or ``<unprintable>`` when its ``__str__``
    raises (the candidate's objects are not trusted to print)."""
    try:
        shown = str(value)
    except BaseException:  # noqa: BLE001 - a broken __str__ says nothing
        return "<unprintable>"
    return shown if len(shown) <= MAX_MESSAGE else shown[:MAX_MESSAGE - 1] + "…"


def class_names(kind: type) -> list[str]:
    """``module.qualname`` of ``kind`` and its bases, nearest first (at most 20): what the
    server matches an expected exception class against."""
    return [f"{getattr(c, '__module__', '?')}.{getattr(c, '__qualname__', '?')}"
            for c in kind.__mro__][:20]


def raised(exc: BaseException) -> list:
    """An exception as the children send it: ``["raised", module, qualname, text, mro]``."""
    kind = type(exc)
    return ["raised", str(getattr(kind, "__module__", "?")), str(kind.__qualname__),
            text(exc), class_names(kind)]


def sign_line(key: bytes, seq: int, payload: str) -> str:
    """One authenticated line of a results channel: ``HMAC SEQ PAYLOAD``."""
    body = f"{seq} {payload}"
    mac = hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{mac} {body}\n"


def type_name(value: Any) -> str:
    kind = type(value)
    module = getattr(kind, "__module__", "?")
    name = getattr(kind, "__qualname__", getattr(kind, "__name__", "?"))
    return name if module == "builtins" else f"{module}.{name}"


# -- the child's side ---------------------------------------------------------------------------

# the types a value must have, exactly, to cross the call proxy (``call_proxy.py``): there a
# subclass (a namedtuple, an IntEnum) would reach the other side as its base type and lose its
# attributes, so it is "not plain" and the test is rerun in process instead
EXACT = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple,
                   dict, set, frozenset})


def encode(value: Any, exact: bool = False) -> list:
    """The data-only form of ``value`` (JSON-ready lists); raises :class:`NotPlain`. With
    ``exact``, every part must be of one of the :data:`EXACT` types itself (no subclass)."""
    budget = [MAX_NODES, MAX_CHARS]
    return _encode(value, 0, budget, exact)


def _charge(budget: list[int], nodes: int, chars: int) -> None:
    budget[0] -= nodes
    budget[1] -= chars
    if budget[0] < 0 or budget[1] < 0:
        raise NotPlain("a value too large to check")


def _encode(value: Any, depth: int, budget: list[int], exact: bool = False) -> list:
    if depth > MAX_DEPTH:
        raise NotPlain("a value nested too deeply to check")
    _charge(budget, 1, 0)
    kind = type(value)
    if exact and kind not in EXACT:
        raise NotPlain(type_name(value))
    if value is None:
        return ["none"]
    if kind is bool:
        return ["bool", bool(value)]
    # issubclass(type(...)): isinstance() would believe a fake __class__
    if issubclass(kind, int):
        number = int.__int__(value)  # the base type's slot: no method of a subclass runs
        if number.bit_length() > 4 * MAX_CHARS:
            raise NotPlain("a value too large to check")
        text = hex(number)
        _charge(budget, 0, len(text))
        return ["int", text]
    if issubclass(kind, float):
        return ["float", float.hex(float.__float__(value))]
    if issubclass(kind, complex):
        number = complex.__complex__(value)
        return ["complex", float.hex(number.real), float.hex(number.imag)]
    if issubclass(kind, str):
        text = str.__str__(value)
        _charge(budget, 0, len(text))
        return ["str", text]
    if issubclass(kind, bytes | bytearray):
        array = issubclass(kind, bytearray)
        raw = bytes(bytearray.copy(value)) if array else bytes.__bytes__(value)
        _charge(budget, 0, 2 * len(raw))
        return ["bytearray" if array else "bytes", raw.hex()]
    if issubclass(kind, dict):
        pairs = list(dict.items(value))
        return ["dict", [[_encode(k, depth + 1, budget, exact),
                          _encode(v, depth + 1, budget, exact)] for k, v in pairs]]
    for base, tag in _CONTAINERS.items():
        if issubclass(kind, base):
            if base is list:
                items = list.copy(value)
            elif base is tuple:
                items = list(tuple.__getitem__(value, slice(None)))
            else:
                items = list(base.__iter__(value))
            _charge(budget, len(items), 0)
            return [tag, [_encode(item, depth + 1, budget, exact) for item in items]]
    if getattr(kind, "__module__", "") == "numpy" and getattr(value, "ndim", None) == 0 \
            and hasattr(value, "item"):
        return _encode(value.item(), depth + 1, budget)
    raise NotPlain(type_name(value))


# -- the server's side --------------------------------------------------------------------------

def decode(data: Any) -> Any:
    """The value ``data`` encodes; ``ValueError`` when it is not exactly what :func:`encode`
    writes (the run is then treated as tampered)."""
    budget = [MAX_NODES, MAX_CHARS]
    return _decode(data, 0, budget)


def _decode(data: Any, depth: int, budget: list[int]) -> Any:
    if depth > MAX_DEPTH or not isinstance(data, list) or not data \
            or not isinstance(data[0], str):
        raise ValueError("a malformed value")
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("a value too large")
    tag, args = data[0], data[1:]

    def one(kind: type) -> Any:
        if len(args) != 1 or type(args[0]) is not kind:
            raise ValueError(f"a malformed {tag}")
        return args[0]

    if tag == "none" and not args:
        return None
    if tag == "bool":
        return one(bool)
    if tag == "int":
        text = one(str)
        if len(text) > 4 * MAX_CHARS or not text.lstrip("-").startswith("0x"):
            raise ValueError("a malformed int")
        return int(text, 16)
    if tag == "float":
        return float.fromhex(one(str))
    if tag == "complex":
        if len(args) != 2 or not all(type(a) is str for a in args):
            raise ValueError("a malformed complex")
        return complex(float.fromhex(args[0]), float.fromhex(args[1]))
    if tag == "str":
        return one(str)
    if tag in ("bytes", "bytearray"):
        raw = bytes.fromhex(one(str))
        return raw if tag == "bytes" else bytearray(raw)
    if tag == "dict":
        pairs = one(list)
        out: dict = {}
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("a malformed dict")
            key = _decode(pair[0], depth + 1, budget)
            try:
                out[key] = _decode(pair[1], depth + 1, budget)
            except TypeError as exc:  # an unhashable key
                raise ValueError("a malformed dict key") from exc
        return out
    if tag in ("list", "tuple", "set", "frozenset"):
        items = [_decode(item, depth + 1, budget) for item in one(list)]
        try:
            return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        except TypeError as exc:
            raise ValueError(f"a malformed {tag}") from exc
    raise ValueError(f"an unknown value tag {tag[:20]!r}")


def show(value: Any, limit: int = 120) -> str:
    """A short repr for messages."""
    try:
        text = repr(value)
    except RecursionError:
        text = "<deep value>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def equal(actual: Any, expected: Any) -> bool:
    """``actual == expected`` on decoded plain data: Python's own semantics (1 == 1.0 == True,
    a list is not a tuple, a set equals a frozenset, nan is not nan), with no code of the
    candidate's involved."""
    try:
        return bool(actual == expected)
    except RecursionError:
        return False


def approx_equal(actual: Any, expected: Any, rel: float | None = None,
                 abs_: float | None = None) -> bool:
    """pytest.approx's rule: numbers within ``max(rel * |expected|, abs)`` (defaults 1e-6 and
    1e-12; ``abs`` alone means no relative tolerance), recursively through lists, tuples and
    dicts of the same shape; anything else must be equal; nan is never equal."""
    if rel is None and abs_ is None:
        rel, abs_ = 1e-6, 1e-12
    elif rel is None:
        rel = 0.0
    elif abs_ is None:
        abs_ = 1e-12
    return _approx(actual, expected, rel, abs_, 0)


def _number(value: Any) -> bool:
    return isinstance(value, int | float | complex) and not isinstance(value, bool)


def _approx(actual: Any, expected: Any, rel: float, abs_: float, depth: int) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and set(actual) == set(expected)
                and all(_approx(actual[k], expected[k], rel, abs_, depth + 1) for k in expected))
    if isinstance(expected, list | tuple):
        return (type(actual) is type(expected) and len(actual) == len(expected)
                and all(_approx(a, e, rel, abs_, depth + 1)
                        for a, e in zip(actual, expected, strict=True)))
    if not (_number(expected) and _number(actual)):
        return equal(actual, expected)
    if actual == expected:
        return True
    if isinstance(expected, float | complex) and (
            any(map(math.isinf, _parts(expected))) or any(map(math.isnan, _parts(expected)))):
        return False
    if any(map(math.isnan, _parts(actual))) or any(map(math.isinf, _parts(actual))):
        return False
    return abs(actual - expected) <= max(rel * abs(expected), abs_)


def _parts(number: Any) -> tuple[float, ...]:
    return (number.real, number.imag) if isinstance(number, complex) else (float(number),)


def is_close(actual: Any, expected: Any, rel_tol: float = 1e-9, abs_tol: float = 0.0) -> bool:
    """``math.isclose`` (real numbers only; anything else is not close)."""
    if not all(isinstance(v, int | float) for v in (actual, expected)):
        return False
    return math.isclose(actual, expected, rel_tol=rel_tol, abs_tol=abs_tol)


def almost_equal(actual: Any, expected: Any, places: int | None = None,
                 delta: float | None = None) -> bool:
    """``unittest``'s ``assertAlmostEqual`` rule."""
    if equal(actual, expected):
        return True
    try:
        diff = abs(actual - expected)
        if delta is not None:
            return diff <= delta
        return round(diff, 7 if places is None else places) == 0
    except (TypeError, ValueError, OverflowError):
        return False


def count_equal(actual: Any, expected: Any) -> bool:
    """``assertCountEqual``: the same elements, the same number of times, in any order."""
    try:
        first, second = list(actual), list(expected)
    except TypeError:
        return False
    try:
        return collections.Counter(first) == collections.Counter(second)
    except TypeError:  # unhashable elements: match them one by one
        rest = list(second)
        for item in first:
            for k, other in enumerate(rest):
                if equal(item, other):
                    del rest[k]
                    break
            else:
                return False
        return not rest


# -- doctest output ------------------------------------------------------------------------------

def doctest_output(chunks: list[Any]) -> str:
    """What a doctest example printed: text chunks and the reprs of displayed values, as
    doctest's displayhook writes them (``None`` shows nothing)."""
    out = []
    for kind, item in chunks:
        if kind == "text":
            out.append(item)
        elif item is not None:
            out.append(repr(item) + "\n")
    return "".join(out)


def doctest_matches(want: str, got: str, flags: int) -> bool:
    """doctest's own comparison (``OutputChecker``) with the example's option flags."""
    return doctest.OutputChecker().check_output(want, got, flags)


def exception_line(module: str, qualname: str, message: str) -> str:
    """``traceback.format_exception_only``'s last line for an exception (what doctest
    compares against a ``Traceback`` example)."""
    name = qualname if module in ("builtins", "__main__", "") else f"{module}.{qualname}"
    return f"{name}: {message}\n" if message else f"{name}\n"
