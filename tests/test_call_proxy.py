"""The split run's call proxy (server/testing/call_proxy.py) against a scripted worker.

No sandbox here: the proxy runs in this process and a thread plays the worker on the other
end of two pipes, answering with what a hostile worker could send. Every broken answer must
make the call raise ``ProxyError`` (a BaseException: ``pytest.raises(Exception)`` does not
catch it) and be reported; what cannot cross raises ``ProxyFallback``; honest answers come
back as the judge's own objects. The real two-sandbox runs are in tests/test_split_run.py and
the attack matrix (tests/sandbox_attacks.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator

import pytest

from plancode.testing import pytest_import, values

# what the sandbox copies beside them
sys.modules.setdefault("plancode_values", values)
sys.modules.setdefault("plancode_pytest_import", pytest_import)
from plancode.testing import call_proxy, call_worker  # noqa: E402

Script = Callable[[dict], bytes]  # request -> raw bytes the fake worker writes


class FakeWorker:
    """A thread at the far end of the pipes: reads each request, writes what ``script``
    returns for it (with None, nothing at all), and ends after anything that does not end a
    line."""

    def __init__(self, script: Script) -> None:
        self.requests: list[dict] = []
        self.script = script
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        self._r, self._w = req_r, resp_w
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with os.fdopen(self._r, "rb") as requests:
            for line in requests:
                request = json.loads(line)
                self.requests.append(request)
                out = self.script(request)
                if out is None:
                    break
                try:
                    os.write(self._w, out)
                except OSError:
                    break
                if not out.endswith(b"\n"):
                    break
        os.close(self._w)


def answer(request: dict, result: list, **more: object) -> bytes:
    body = {"seq": request["seq"], "result": result, "out": "", "err": "", "changed": [],
            "warnings": [], **more}
    return (json.dumps(body) + "\n").encode()


@pytest.fixture
def proxied(tmp_path) -> Iterator[Callable[[Script], tuple[types.FunctionType, list]]]:
    """(the proxy of ``mod.f``, the reports) for a worker that follows ``script``; the last
    worker made is ``make.worker``."""
    made = []

    def make(script: Script) -> tuple[types.FunctionType, list]:
        worker = FakeWorker(script)
        reports: list = []
        module = types.ModuleType("shopmod")
        module.__file__ = str(tmp_path / "shopmod.py")

        class PriceError(ValueError):
            pass

        PriceError.__module__ = "shopmod"
        exec("def f(*args, **kwargs):\n    '''Doc.'''\n", module.__dict__)  # noqa: S102
        module.PriceError = PriceError
        sys.modules["shopmod"] = module
        proxy = call_proxy.Proxy({"file": module.__file__, "qualname": "f",
                                  "fds": [worker.req_w, worker.resp_r]},
                                 lambda kind, message: reports.append((kind, message)))
        proxy.patch(module)
        made.append(worker)
        make.worker = worker  # type: ignore[attr-defined]
        return module.f, reports

    yield make
    sys.modules.pop("shopmod", None)
    for worker in made:
        for fd in (worker.req_w, worker.resp_r):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_the_proxy_looks_like_the_function_and_returns_plain_data(proxied) -> None:
    f, reports = proxied(lambda r: answer(r, ["value", values.encode({"a": [1, 2.5]})]))
    assert f.__name__ == "f" and f.__doc__ == "Doc." and f.__wrapped__ is not None
    assert f.__globals__ is sys.modules["shopmod"].__dict__  # doctest's finder needs it
    assert f(1, key="x") == {"a": [1, 2.5]}
    assert reports == []


def test_printed_text_mutations_and_returned_arguments_come_back(proxied, capsys) -> None:
    def script(request: dict) -> bytes:
        return answer(request, ["arg", 0], out="total: 3\n", err="careful\n",
                      changed=[[0, values.encode([1, 2, 3])]])

    f, _reports = proxied(script)
    prices = [3, 1, 2]
    inner = prices
    assert f(prices) is prices and inner == [1, 2, 3]
    captured = capsys.readouterr()
    assert captured.out == "total: 3\n" and captured.err == "careful\n"


def test_exceptions_become_the_judges_own_classes(proxied) -> None:
    outcomes = iter([
        ["raised", "builtins", "KeyError", "'x'", ["builtins.KeyError"], values.encode(("x",))],
        ["raised", "shopmod", "PriceError", "negative", ["shopmod.PriceError",
                                                         "builtins.ValueError"], None],
        ["raised", "elsewhere", "Odd", "odd", ["elsewhere.Odd", "builtins.TypeError"], None],
        ["raised", "builtins", "Skipped", "no", ["builtins.Skipped", "builtins.BaseException"],
         None],
        ["raised", "builtins", "KeyboardInterrupt", "", ["builtins.KeyboardInterrupt"], None],
    ])
    f, _reports = proxied(lambda r: answer(r, next(outcomes)))
    with pytest.raises(KeyError) as info:
        f()
    assert info.value.args == ("x",)
    with pytest.raises(sys.modules["shopmod"].PriceError, match="negative"):
        f()
    with pytest.raises(TypeError, match="odd") as info:  # the nearest builtin base it named
        f()
    assert isinstance(info.value, call_proxy.RemoteError)
    # pytest's skip (not an Exception) and KeyboardInterrupt never reach the judge as such
    for _ in range(2):
        with pytest.raises(call_proxy.RemoteError):
            f()


@pytest.mark.parametrize("name, script, why", [
    ("malformed", lambda r: b"not json\n", "malformed"),
    ("wrong shape", lambda r: answer(r, ["value"]), "malformed"),
    ("bad value", lambda r: answer(r, ["value", ["int", "12"]]), "malformed"),
    ("extra keys", lambda r: answer(r, ["value", ["none"]], sneaky=1), "malformed"),
    ("out of order", lambda r: answer({"seq": r["seq"] + 1}, ["value", ["none"]]),
     "out of order"),
    ("two answers", lambda r: answer(r, ["value", ["none"]]) * 2, "more than one answer"),
    ("oversized", lambda r: b"x" * (call_proxy.MAX_RESPONSE + 10), "over"),
    ("no newline, then gone", lambda r: b'{"seq": 1', "middle of a line"),
    ("died", lambda r: None, "ended in the middle of a call"),
    ("changed an immutable", lambda r: answer(r, ["value", ["none"]],
                                              changed=[[0, values.encode(7)]]), "immutable"),
    ("changed a type", lambda r: answer(r, ["value", ["none"]],
                                        changed=[[0, values.encode((1,))]]), "type"),
    ("named a missing argument", lambda r: answer(r, ["arg", 5]), "not sent"),
])
def test_a_broken_worker_fails_the_call_never_passes_it(proxied, name, script, why) -> None:
    f, reports = proxied(script)
    with pytest.raises(call_proxy.ProxyError, match=why):
        try:
            f([1] if "type" in name else 1)
        except Exception:  # noqa: BLE001 - what a test's except Exception would do
            pytest.fail(f"{name}: a plain Exception handler caught the protocol error")
    # a protocol break taints every answer of that worker: every test is reported
    assert [k for k, _m in reports] == ["proxy-broken", "proxy-error"], name
    with pytest.raises(call_proxy.ProxyError):  # and the connection stays broken
        f(1)


def test_an_unasked_answer_between_calls_breaks_the_connection(proxied) -> None:
    f, reports = proxied(lambda r: answer(r, ["value", ["none"]]))
    assert f() is None
    os.write(proxied.worker._w, answer({"seq": 2}, ["value", ["int", "0x1"]]))  # unasked
    import time

    time.sleep(0.05)
    with pytest.raises(call_proxy.ProxyError, match="nobody asked"):
        f()
    assert [k for k, _m in reports] == ["proxy-broken", "proxy-error"]


def test_a_second_answer_after_the_last_call_is_caught_at_the_tests_end(proxied) -> None:
    """The worker answers right, then its own wrong answer follows: the first answer is a
    value the candidate could as well have returned; the second breaks the protocol, and the
    plugin asks ``pending`` when the test ends (and when the session ends)."""
    import time

    f, _reports = proxied(lambda r: answer(r, ["value", values.encode(4)]))
    assert f() == 4
    assert call_proxy_of(f).pending() == ""
    os.write(proxied.worker._w, answer({"seq": 1}, ["value", values.encode(-1)]))
    time.sleep(0.05)
    assert "nobody asked" in call_proxy_of(f).pending()
    assert call_proxy_of(f).pending() == ""  # reported once; every later call fails
    with pytest.raises(call_proxy.ProxyError):
        f()


def call_proxy_of(f: types.FunctionType) -> call_proxy.Proxy:
    return f.__closure__[0].cell_contents.__self__


def test_what_cannot_cross_falls_back_in_process(proxied, tmp_path) -> None:
    f, reports = proxied(lambda r: answer(r, ["notplain", "generator"]))
    with pytest.raises(call_proxy.ProxyFallback, match="generator"):
        f(1)
    with pytest.raises(call_proxy.ProxyFallback, match="not plain data"):
        f(lambda: 1)  # a callable argument is not sent at all
    assert [k for k, _m in reports] == ["fallback", "fallback"]
    with pytest.raises(call_proxy.ProxyFallback, match="cannot see"):
        f(str(tmp_path / "made-by-the-test.txt"))  # the judge's /tmp is its own


def test_a_test_that_changes_the_modules_globals_falls_back(proxied) -> None:
    f, _reports = proxied(lambda r: answer(r, ["value", ["none"]]))
    module = sys.modules["shopmod"]
    assert f() is None
    module.RATE = 3  # what monkeypatch.setattr(shopmod, ...) does
    with pytest.raises(call_proxy.ProxyFallback, match="changed shopmod.RATE"):
        f()


def test_the_worker_serves_calls_with_what_they_printed_and_changed() -> None:
    def total(prices, discount=0):
        import warnings

        prices.sort()
        print("total")
        warnings.warn("old", DeprecationWarning, stacklevel=1)
        return prices

    request = {"seq": 4, "args": [values.encode([3, 1])], "kwargs": [["discount",
                                                                       values.encode(5)]]}
    response = call_worker.serve(total, request)
    assert response["seq"] == 4 and response["result"] == ["arg", 0]
    assert response["changed"] == [[0, values.encode([1, 3])]]
    assert response["out"] == "total\n"
    assert response["warnings"][0][1] == "DeprecationWarning"
    call_proxy._check_response(response, 4)  # what the judge accepts

    def gen(n):
        yield n

    assert call_worker.serve(gen, {"seq": 1, "args": [values.encode(1)], "kwargs": []})[
        "result"][0] == "notplain"
