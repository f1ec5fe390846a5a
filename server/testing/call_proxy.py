"""The judge's side of a split run: the function under test, replaced by a proxy (issue 31).

Copied into the sandbox as ``plancode_call_proxy.py`` (standard library and
``plancode_values`` only). In a split run pytest and plancode's plugin run the user's tests in
a sandbox that holds the *user's original* file of the function under test, and no code of
the candidate's at all; the candidate's code runs in a second sandbox, the worker
(``call_worker.py``), which this module sends each call to over a pipe. The plugin calls
:func:`install` before any conftest or test module is imported: an import hook then replaces
the function, the moment its module has been executed, by a proxy that looks like it
(``functools.wraps``: name, signature, docstring) and

* sends the call's arguments in the data-only encoding (``values.py``, exact types only);
* decodes the answer strictly into objects of the judge's own (nothing else is trusted: a
  malformed, oversized, out-of-order or unasked-for answer, or a worker that died, makes the
  call raise :class:`ProxyError` — a ``BaseException``, so ``pytest.raises(Exception)`` does
  not catch it — and the plugin reports the test as an error, never a pass);
* re-raises the worker's exception as the builtin class, or the class of that name in a module
  the judge has loaded (the user's own exception classes), else as a :class:`RemoteError`
  (with the nearest builtin base the worker named) that names the remote type;
* replays what the call printed (so ``capsys`` sees it) and the warnings it raised, and copies
  the arguments' mutations back in place.

A call that cannot cross (an argument or a return value that is not plain data, a test that
patches, monkeypatches or writes files the worker cannot see) raises :class:`ProxyFallback`
and is reported: the server reruns that test the old way, in process, and labels it so.
"""

from __future__ import annotations

import builtins
import functools
import importlib.abc
import json
import os
import select
import sys
import tempfile
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any

import plancode_values as values  # type: ignore[import-not-found]

MAX_RESPONSE = 16 * 1024 * 1024  # bytes of one answer (values and printed text included)
MAX_TEXT = 1_000_000
MAX_MESSAGE = 500
MAX_WARNINGS = 100
_MISSING = object()
_RESPONSE_KEYS = frozenset({"seq", "result", "out", "err", "changed", "warnings"})
_ALLOWED_BASE = (Exception, SystemExit)  # what a remote exception may become in the judge


class ProxyFallback(BaseException):  # noqa: N818 - named for what the judge does with it
    """This call cannot be checked out of process: rerun the test in process."""


class ProxyError(BaseException):
    """The worker broke the protocol (or died): the test is an error, never a pass."""


class RemoteError(Exception):
    """An exception of a class the judge does not have, raised in the worker."""


class RemoteWarning(UserWarning):
    """A warning of a category the judge does not have, raised in the worker."""


# (kind, message): "fallback" (rerun the running test in process), "proxy-error" (the running
# test is an error), "proxy-broken" (the worker broke the protocol: every test is an error)
Report = Callable[[str, str], None]


class Proxy:
    """The connection to the worker, and the state the judge's calls must not drift from."""

    def __init__(self, config: dict, report: Report) -> None:
        self.paths = {os.path.realpath(p) for p in (config.get("file"), config.get("real"))
                      if p}
        self.qualname = str(config["qualname"])
        self.fd_out, self.fd_in = (int(x) for x in config["fds"])
        for fd in (self.fd_out, self.fd_in):
            os.set_inheritable(fd, False)  # subprocesses of the tests do not get them
        self.report = report
        self.unsafe: Callable[[], str] = lambda: ""  # the plugin: why the running test may not
        self.lock = threading.Lock()
        self.owner = os.getpid()
        self.seq = 0
        self.broken = ""
        self.installed: list[tuple[types.ModuleType, Any]] = []  # (module, proxy)
        self.globals: list[tuple[types.ModuleType, dict, dict]] = []
        self.environ = _environment()
        self.cwd = os.getcwd()
        try:
            self.top = set(os.listdir(self.cwd))
        except OSError:
            self.top = set()
        self.private = tuple(dict.fromkeys(
            p.rstrip("/") + "/" for p in (tempfile.gettempdir(), "/tmp", "/dev/shm",
                                          os.environ.get("HOME", ""),
                                          os.environ.get("TMPDIR", "")) if p and p != "/"))

    # -- the import hook ------------------------------------------------------------------

    def matches(self, path: str | None) -> bool:
        return bool(path) and os.path.realpath(str(path)) in self.paths

    def patch(self, module: types.ModuleType) -> None:
        """Replace the function in ``module`` (the user's, just executed) by the proxy."""
        original = module.__dict__.get(self.qualname, _MISSING)
        if not isinstance(original, types.FunctionType):
            what = "nothing" if original is _MISSING else type(original).__name__
            self._fallback(f"the user's {module.__name__}.{self.qualname} is {what}, not a "
                           "plain function", now=False)
            return
        proxy = self.make_proxy(original, module)
        module.__dict__[self.qualname] = proxy
        self.installed.append((module, proxy))
        self.globals.append((module, dict(module.__dict__), _small_plain(module.__dict__)))

    def make_proxy(self, original: types.FunctionType, module: types.ModuleType) -> Any:
        call = self.call

        def proxy(*args: Any, **kwargs: Any) -> Any:
            return call(args, kwargs)

        # the module's own globals: doctest's finder takes only functions defined there
        made = types.FunctionType(proxy.__code__, module.__dict__, original.__name__, None,
                                  proxy.__closure__)
        functools.update_wrapper(made, original)
        made.__plancode_proxy__ = True  # type: ignore[attr-defined]
        return made

    def unpatched(self) -> str:
        """A loaded module of the target's file whose function is not the proxy ("" if none):
        its tests would have checked the user's own code."""
        mine = {id(m) for m, _p in self.installed}
        for module in list(sys.modules.values()):
            if id(module) in mine or not self.matches(getattr(module, "__file__", None)):
                continue
            return f"{getattr(module, '__name__', '?')} was loaded without the call proxy"
        return ""

    # -- one call -----------------------------------------------------------------------------

    def call(self, args: tuple, kwargs: dict) -> Any:
        with self.lock:
            response = self._exchange(args, kwargs)
        self._replay(response)
        self._restore(args, kwargs, response["changed"])
        return self._result(response["result"], args, kwargs)

    def _exchange(self, args: tuple, kwargs: dict) -> dict:
        if os.getpid() != self.owner:  # the parent reported the fork (install): the test is
            # rerun in process whatever happens here; an Exception lets a pool report it back
            raise RuntimeError("plancode: the function was called from a forked process")
        if self.broken:
            self._error(self.broken)
        why = self.unsafe() or self.drift()
        if why:
            self._fallback(why)
        try:
            request: dict = {"args": [values.encode(a, exact=True) for a in args],
                             "kwargs": [[str(k), values.encode(v, exact=True)]
                                        for k, v in kwargs.items()]}
        except values.NotPlain as exc:
            self._fallback(f"an argument is not plain data ({exc})")
        where = self._private_path([*args, *kwargs.values()])
        if where:
            self._fallback(f"an argument names {where!r}, which the worker cannot see")
        self.seq += 1
        request["seq"] = self.seq
        self._unasked()
        self._send((json.dumps(request, separators=(",", ":")) + "\n").encode("utf-8"))
        return self._receive()

    def drift(self) -> str:
        """What the test changed that the worker would not see ("" when nothing): the
        module's globals (monkeypatched or rebound), the environment, the directory."""
        for module, names, small in self.globals:
            now = module.__dict__
            for name in set(now) | set(names):
                value, before = now.get(name, _MISSING), names.get(name, _MISSING)
                if value is before or name == self.qualname or name.startswith("__") \
                        or isinstance(value, types.ModuleType):
                    continue  # a submodule imported later, __warningregistry__, ...
                return f"the test changed {module.__name__}.{name}"
            for name, encoded in small.items():
                try:
                    if values.encode(now.get(name), exact=True) != encoded:
                        return f"the test changed the contents of {module.__name__}.{name}"
                except values.NotPlain:
                    return f"the test changed the contents of {module.__name__}.{name}"
        if _environment() != self.environ:
            return "the test changed the environment"
        try:
            if os.getcwd() != self.cwd:
                return "the test changed the working directory"
        except OSError:
            return "the test removed the working directory"
        return ""

    def _private_path(self, items: list, budget: list[int] | None = None) -> str:
        """A string among the arguments that names a file only the judge has (its /tmp, its
        HOME, a file a test created in its working directory), "" when none."""
        budget = budget if budget is not None else [10_000]
        for item in items:
            budget[0] -= 1
            if budget[0] < 0:
                return ""
            kind = type(item)
            if kind in (list, tuple, set, frozenset):
                found = self._private_path(list(item), budget)
            elif kind is dict:
                found = self._private_path([*item.keys(), *item.values()], budget)
            elif kind in (str, bytes) and 0 < len(item) < 4096:
                text = os.fsdecode(item) if kind is bytes else item
                found = text if "\0" not in text and self._private_file(text) else ""
            else:
                found = ""
            if found:
                return found
        return ""

    def _private_file(self, text: str) -> bool:
        if os.path.isabs(text):
            return any((text.rstrip("/") + "/").startswith(p) for p in self.private)
        first = text.replace("\\", "/").lstrip("./").split("/", 1)[0]
        try:
            return bool(first) and first not in self.top and os.path.lexists(text)
        except (OSError, ValueError):
            return False

    def pending(self) -> str:
        """Why the connection broke between calls: an answer nobody asked for is waiting
        ("" when none; reported once). The plugin asks after each test and at the end: a
        worker that answered a call twice must not leave the test that made it passed."""
        if self.broken or os.getpid() != self.owner:
            return ""
        try:
            ready, _, _ = select.select([self.fd_in], [], [], 0)
            data = os.read(self.fd_in, 1) if ready else b""
        except OSError:
            return ""
        if not data:
            return ""  # nothing, or the worker ended: the next call says so
        self.broken = "the worker sent an answer nobody asked for"
        message = f"plancode call proxy: {self.broken}"
        return message

    # -- the pipe ------------------------------------------------------------------------------

    def _unasked(self) -> None:
        """Nothing may arrive between two calls."""
        try:
            ready, _, _ = select.select([self.fd_in], [], [], 0)
            if ready:
                data = os.read(self.fd_in, 1)
                self._error("the worker sent an answer nobody asked for" if data
                            else "the worker ended")
        except OSError as exc:
            self._error(f"the worker's pipe failed: {exc}")

    def _send(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd_out, data):]
        except OSError as exc:
            self._error(f"the worker is gone ({exc.strerror or exc})")

    def _receive(self) -> dict:
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = os.read(self.fd_in, 1 << 16)
            except OSError as exc:
                self._error(f"the worker's pipe failed: {exc}")
            if not chunk:
                self._error("the worker ended in the middle of a call" if not chunks else
                            "the worker's answer ended in the middle of a line")
            size += len(chunk)
            if size > MAX_RESPONSE:
                self._error(f"the worker's answer is over {MAX_RESPONSE} bytes")
            chunks.append(chunk)
            if b"\n" in chunk:
                break
        data = b"".join(chunks)
        line, _, rest = data.partition(b"\n")
        if rest:
            self._error("the worker sent more than one answer to one call")
        try:
            response = json.loads(line)
            _check_response(response, self.seq)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            self._error(f"the worker's answer is malformed: {str(exc)[:200]}")
        return response

    # -- the answer ----------------------------------------------------------------------------

    def _replay(self, response: dict) -> None:
        if response["out"]:
            sys.stdout.write(response["out"])
        if response["err"]:
            sys.stderr.write(response["err"])
        for module, qualname, mro, message in response["warnings"]:
            category = _resolve(module, qualname, mro, Warning, (Warning,), RemoteWarning)
            warnings.warn_explicit(message, category, "<plancode worker>", 0)

    def _restore(self, args: tuple, kwargs: dict, changed: list) -> None:
        for key, encoded in changed:
            try:
                target = _argument(args, kwargs, key)
                new = values.decode(encoded)
                if type(new) is not type(target):
                    raise ValueError("an argument changed its type")
                _update(target, new, 0)
            except (ValueError, TypeError, RecursionError) as exc:
                self._error(f"the worker's answer is malformed: {exc}")

    def _result(self, result: list, args: tuple, kwargs: dict) -> Any:
        tag = result[0]
        try:
            if tag == "value":
                return values.decode(result[1])
            if tag == "arg":
                return _argument(args, kwargs, result[1])
        except (ValueError, TypeError, RecursionError) as exc:
            self._error(f"the worker's answer is malformed: {exc}")
        if tag == "notplain":
            self._fallback(f"the function returned {str(result[1])[:100]}, which is not plain "
                           "data")
        if tag == "broken":
            self._error(str(result[1])[:MAX_MESSAGE], permanent=False)
        raise _exception(result)

    def _fallback(self, why: str, now: bool = True) -> None:
        message = f"plancode: cannot check this call out of process: {why}"
        self.report("fallback", message)
        if now:
            raise ProxyFallback(message)

    def _error(self, why: str, permanent: bool = True) -> Any:
        """Fail this call. ``permanent``: the worker broke the protocol, so no answer of its
        can be trusted any more, earlier ones included (an answer accepted for an earlier
        call may have been one of two): every test of the run is reported (``proxy-broken``)."""
        message = f"plancode call proxy: {why}"
        if permanent:
            first = not self.broken
            self.broken = self.broken or why
            if first:
                self.report("proxy-broken", message)
        self.report("proxy-error", message)
        raise ProxyError(message)


def _environment() -> dict[str, str]:
    """The environment a test could change for the function (pytest's own variables, such
    as ``PYTEST_CURRENT_TEST``, left out)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _check_response(response: Any, seq: int) -> None:
    """Raise ValueError unless ``response`` is exactly what the worker is allowed to send."""
    if not isinstance(response, dict) or set(response) != _RESPONSE_KEYS:
        raise ValueError("not a response object")
    if response["seq"] != seq or type(response["seq"]) is not int:
        raise ValueError("an answer to another call (out of order)")
    for key in ("out", "err"):
        if type(response[key]) is not str or len(response[key]) > MAX_TEXT:
            raise ValueError(f"a malformed {key}")
    result = response["result"]
    if type(result) is not list or not result or type(result[0]) is not str:
        raise ValueError("a malformed result")
    tag, rest = result[0], result[1:]
    shapes = {"value": len(rest) == 1,
              "arg": len(rest) == 1 and type(rest[0]) in (int, str),
              "notplain": len(rest) == 1 and type(rest[0]) is str,
              "broken": len(rest) == 1 and type(rest[0]) is str,
              "raised": (len(rest) == 5 and all(type(x) is str for x in rest[:3])
                         and _names_ok(rest[3]) and (rest[4] is None or type(rest[4]) is list))}
    if not shapes.get(tag, False):
        raise ValueError(f"an unknown or malformed result {str(tag)[:20]!r}")
    changed = response["changed"]
    if type(changed) is not list or any(
            type(c) is not list or len(c) != 2 or type(c[0]) not in (int, str) for c in changed):
        raise ValueError("a malformed list of changed arguments")
    if len({json.dumps(c[0]) for c in changed}) != len(changed):
        raise ValueError("an argument changed twice")
    shown = response["warnings"]
    if type(shown) is not list or len(shown) > MAX_WARNINGS or any(
            type(w) is not list or len(w) != 4 or type(w[0]) is not str
            or type(w[1]) is not str or not _names_ok(w[2]) or type(w[3]) is not str
            for w in shown):
        raise ValueError("malformed warnings")


def _names_ok(names: Any) -> bool:
    return type(names) is list and len(names) <= 20 and all(type(n) is str for n in names)


def _argument(args: tuple, kwargs: dict, key: Any) -> Any:
    """The judge's own argument ``key`` (a position or a keyword); ValueError when the call
    had no such argument or it cannot change."""
    if type(key) is int and 0 <= key < len(args):
        value = args[key]
    elif type(key) is str and key in kwargs:
        value = kwargs[key]
    else:
        raise ValueError("the worker named an argument that was not sent")
    if type(value) not in (list, dict, set, bytearray, tuple):
        raise ValueError("the worker changed an immutable argument")
    return value


def _update(target: Any, new: Any, depth: int) -> None:
    """Make ``target`` equal ``new`` in place, keeping the identity of nested containers
    where their type is unchanged."""
    if depth > values.MAX_DEPTH:
        raise ValueError("nested too deeply")
    kind = type(target)
    if kind is list:
        if len(target) == len(new):
            for i, item in enumerate(new):
                if not _update_nested(target[i], item, depth):
                    target[i] = item
        else:
            target[:] = new
    elif kind is tuple:
        if len(target) != len(new):
            raise ValueError("a tuple argument changed its length")
        for old, item in zip(target, new, strict=True):
            if not _update_nested(old, item, depth) and not values.equal(old, item):
                raise ValueError("a tuple argument changed")
    elif kind is dict:
        kept = {}
        for key, item in new.items():
            old = target.get(key, _MISSING)
            kept[key] = old if old is not _MISSING and _update_nested(old, item, depth) \
                else item
        target.clear()
        target.update(kept)
    elif kind is set:
        target.clear()
        target.update(new)
    elif kind is bytearray:
        target[:] = new


def _update_nested(old: Any, new: Any, depth: int) -> bool:
    if type(old) is type(new) and type(old) in (list, dict, set, bytearray, tuple):
        _update(old, new, depth + 1)
        return True
    return False


_made: dict[tuple[str, str, type], type] = {}


def _resolve(module: str, qualname: str, mro: list[str], base: type,
             allowed: tuple[type, ...], generic: type) -> type:
    """The judge's class for a remote class: the builtin of that name, the class of that
    qualified name in a module the judge has loaded (never imported for this), else a class of
    that name made here on the nearest builtin base the worker named (or ``generic``)."""
    if module == "builtins":
        found = getattr(builtins, qualname, None)
    else:
        found = sys.modules.get(module)
        for part in qualname.split(".") if found is not None else ():
            found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, base) and issubclass(found, allowed):
        return found
    near = generic
    for name in mro[1:]:
        owner, _, short = name.rpartition(".")
        candidate = getattr(builtins, short, None) if owner == "builtins" else None
        if isinstance(candidate, type) and issubclass(candidate, base) \
                and issubclass(candidate, allowed) and candidate not in (Exception, Warning):
            near = candidate
            break
    key = (module, qualname, near)
    if key not in _made:
        bases = (generic,) if near is generic else (generic, near)
        try:
            _made[key] = type(qualname.rsplit(".", 1)[-1] or "Remote", bases,
                              {"__module__": module, "__qualname__": qualname})
        except TypeError:  # a layout conflict between the bases
            _made[key] = generic
    return _made[key]


def _exception(result: list) -> BaseException:
    """The judge's exception for the worker's ``raised`` result."""
    _tag, module, qualname, message, mro, encoded = result
    kind = _resolve(module, qualname, mro, BaseException, _ALLOWED_BASE, RemoteError)
    if kind is RemoteError:
        name = qualname if module in ("builtins", "") else f"{module}.{qualname}"
        return RemoteError(f"{name}: {message}" if message else name)
    args: tuple | None = None
    if encoded is not None:
        try:
            decoded = values.decode(encoded)
            args = decoded if type(decoded) is tuple else None
        except (ValueError, RecursionError):
            args = None
    for made in ((args,) if args is not None else ()) + ((message,),):
        try:
            exc = kind(*made)  # the user's own class: trusted code
        except Exception:  # noqa: BLE001, S112 - its __init__ may want other arguments
            continue
        if isinstance(exc, kind):
            return exc
    exc = kind.__new__(kind)
    exc.args = args if args is not None else (message,)
    return exc


def _small_plain(namespace: dict, limit: int = 4_000) -> dict:
    """The encodings of the module's small mutable globals of plain data (``limit`` JSON
    characters in all: each call compares them again): a test that changes their contents
    changes what the worker's copy would not see."""
    found = {}
    for name, value in list(namespace.items()):
        if type(value) not in (list, dict, set, bytearray) or name.startswith("__"):
            continue
        try:
            encoded = values.encode(value, exact=True)
        except values.NotPlain:
            continue
        size = len(json.dumps(encoded))
        if size <= limit:
            found[name] = encoded
            limit -= size
    return found


class _Loader(importlib.abc.Loader):
    """The target file's loader, with the proxy put in once the module has run."""

    def __init__(self, inner: Any, proxy: Proxy) -> None:
        self._inner, self._proxy = inner, proxy

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._inner.exec_module(module)
        self._proxy.patch(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, ... (doctest, linecache)
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: asks the others, and wraps the target file's loader."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if self._proxy.matches(spec.origin) and spec.loader is not None \
                    and hasattr(spec.loader, "exec_module"):
                spec.loader = _Loader(spec.loader, self._proxy)
            return spec
        return None


def install(config: dict, report: Report) -> Proxy:
    """Put the import hook first on ``sys.meta_path`` (and patch the target's module if it
    is loaded already); the proxy it installs."""
    proxy = Proxy(config, report)
    # a test that forks (multiprocessing) would call the proxy from a child, which cannot
    # use the pipe or report: the parent reports the running test before the fork instead
    os.register_at_fork(before=lambda: proxy._fallback(
        "the test forks a process, which would call the function away from the judge",
        now=False) if proxy.installed else None)
    for module in list(sys.modules.values()):
        if proxy.matches(getattr(module, "__file__", None)):
            proxy.patch(module)
    sys.meta_path.insert(0, _Finder(proxy))
    return proxy
