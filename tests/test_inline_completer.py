"""The keystroke pieces of ghost text: answer first (budget, whole lines), prefetch and its
cancellation, the adaptive debounce, the context ring, and the LSP modules' import graph."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from plancode.config import Settings
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import CancelToken, Generation
from plancode.lsp.completer import InlineCompleter, accepted
from plancode.lsp.context_ring import ContextRing, similarity
from plancode.lsp.debounce import TypingRhythm
from plancode.lsp.fim import SuggestionCache, _LineWatcher, build_request, complete_fim

LSP = Path(__file__).resolve().parent.parent / "server" / "lsp"
BODY = "def total(xs):\n    "  # the cursor on the first line of a body: a block is wanted


def _req(doc: str):
    line = doc.count("\n")
    return build_request(doc, line, len(doc) - (doc.rfind("\n") + 1))


# -- answer first, finish later --------------------------------------------------------------


def _progress(text: str) -> Generation:
    return Generation(text, "length", 10, 10, 0, len(text))


def test_the_budget_answers_with_whole_lines_only() -> None:
    req = _req(BODY)
    answers: list[str] = []
    stop = CancelToken()
    watcher = _LineWatcher(req, SuggestionCache(), 0.05, lambda t, g: answers.append(t),
                           stop, "model")
    watcher(_progress("s = 0\n    for x in"))  # one whole line, but the budget has not passed
    assert answers == []
    time.sleep(0.06)
    watcher(_progress("s = 0\n    for x in xs"))  # budget passed: the whole line, not "for x"
    assert answers == ["s = 0"]
    watcher(_progress("s = 0\n    for x in xs:\n        s += x\n    return"))
    assert answers == ["s = 0"], "answered once"
    assert watcher.cache is not None and watcher.cache.get(req) == "s = 0\n    for x in xs:\n" \
        "        s += x", "later lines land in the cache"
    assert not stop.cancelled
    watcher(_progress("s = 0\n    for x in xs:\n        s += x\n    return s\n\nprint(total"))
    watcher(_progress("s = 0\n    for x in xs:\n        s += x\n    return s\n\nprint(total([1]))"
                      "\n"))
    assert stop.cancelled and watcher.final, "a line the stop rules cut ends the generation"


def test_nothing_is_answered_before_a_line_is_done() -> None:
    answers: list[str] = []
    watcher = _LineWatcher(_req(BODY), None, 0.0, lambda t, g: answers.append(t),
                           CancelToken(), "model")
    watcher(_progress("return sum(x"))
    watcher(_progress("\n"))  # the rest of the cursor line is empty: nothing to show yet
    assert answers == []
    watcher(_progress("\n    return sum(xs)\n"))
    assert answers == ["\n    return sum(xs)"]


def test_a_real_model_answers_first_and_the_cache_gets_the_rest(
        tiny_engine: LlamaEngine) -> None:
    doc = "# Numbers 1 to 40, one per line, in a Python list.\nnumbers = [\n    1,\n    2,\n    "
    req = _req(doc)
    assert req.multiline
    cache = SuggestionCache()
    early: list[str] = []
    result = complete_fim(tiny_engine, req, cache, 48, budget=0.0,
                          answer=lambda text, gen: early.append(text))
    assert len(early) == 1 and early[0].strip()
    final = result.text
    assert final.startswith(early[0]) and len(final) > len(early[0])
    assert final[len(early[0])] == "\n", "the first answer ends on a line end"
    assert cache.get(req) == final


# -- prefetch and cancellation ---------------------------------------------------------------


def _completer(engine: LlamaEngine, **settings: object) -> InlineCompleter:
    base = replace(Settings(), inline_max_tokens=200, inline_budget_ms=0, inline_debounce_ms=0,
                   inline_context=False, inline_prefetch=True)
    chosen = replace(base, **settings)
    return InlineCompleter(lambda: engine, lambda: chosen)


def test_accepting_moves_the_cursor_past_the_suggestion() -> None:
    assert accepted("ab\ncd\n", 1, 1, "XY") == ("ab\ncXYd\n", 1, 3)
    assert accepted("ab\r\ncd\n", 1, 1, "X\n  Y") == ("ab\r\ncX\n  Yd\n", 2, 3)


class _PrefetchHolds:
    """The tiny engine, except that its second FIM call (the prefetch) waits for its cancel
    token before it decodes: a fast CPU otherwise finishes the prefetch before the test's
    keystroke comes, and there is nothing left to cancel."""

    def __init__(self, engine: LlamaEngine) -> None:
        self._engine = engine
        self.calls = 0

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def fim(self, prefix, suffix, params, cancel=None, on_progress=None, extra=(), middle=""):
        self.calls += 1
        deadline = time.monotonic() + 30
        while self.calls == 2 and cancel is not None and not cancel.cancelled \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._engine.fim(prefix, suffix, params, cancel, on_progress, extra, middle)


def test_a_prefetch_is_cancelled_by_the_next_keystroke(tiny_engine: LlamaEngine) -> None:
    completer = _completer(_PrefetchHolds(tiny_engine))  # type: ignore[arg-type]
    doc = "squares = [" + ", ".join(str(i * i) for i in range(1, 13)) + ", "
    uri = "file:///numbers.py"

    async def scenario() -> None:
        first = await completer.suggest(uri, doc, 0, len(doc))
        assert first, "the model suggested the rest of the list"
        deadline = time.monotonic() + 30
        while completer.stats.prefetches == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert completer.stats.prefetches == 1 and completer.busy, "the prefetch is running"
        other = "words = ['alpha', 'beta', "
        started = time.monotonic()
        await completer.suggest(uri, other, 0, len(other))  # a keystroke the cache misses
        assert completer.stats.prefetches_cancelled == 1
        assert time.monotonic() - started < 30

    asyncio.run(scenario())
    completer.shutdown()


def test_a_keystroke_that_types_into_the_suggestion_keeps_the_prefetch(
        tiny_engine: LlamaEngine) -> None:
    completer = _completer(tiny_engine)
    doc = "cubes = [" + ", ".join(str(i ** 3) for i in range(1, 9)) + ", "
    uri = "file:///cubes.py"

    async def scenario() -> None:
        first = await completer.suggest(uri, doc, 0, len(doc))
        assert first
        while completer.stats.prefetches == 0:
            await asyncio.sleep(0.01)
        typed = doc + first[0]
        rest = await completer.suggest(uri, typed, 0, len(typed))  # typed-ahead: cache hit
        assert rest == first[1:]
        assert completer.stats.prefetches_cancelled == 0

    asyncio.run(scenario())
    completer.shutdown()


def test_a_newer_keystroke_cancels_the_running_generation(tiny_engine: LlamaEngine) -> None:
    """The older request's generation is stopped (the engine checks before every token:
    test_engine.py measures the delay) and answers nothing; the newer one is answered."""
    completer = _completer(tiny_engine, inline_max_tokens=400, inline_prefetch=False)
    uri = "file:///long.py"
    doc = "values = [" + ", ".join(str(i) for i in range(1, 30)) + ", "

    async def scenario() -> tuple[str | None, str | None, None]:
        older = asyncio.create_task(completer.suggest(uri, doc, 0, len(doc)))
        await asyncio.sleep(1.0)  # the older generation is decoding by now
        newer_doc = "names = ['a', 'b', "
        newer = await completer.suggest(uri, newer_doc, 0, len(newer_doc))
        return await older, newer, None

    older, newer, _ = asyncio.run(scenario())
    assert older is None, "a superseded request answers nothing"
    assert newer, "the newer request got its suggestion"
    assert completer.stats.cancelled == 1, "the older generation was stopped, not finished"
    completer.shutdown()


class _SettlingEngine:
    """A scripted engine: a block answered line by line, then decoding until cancelled, and
    moved KV cells that take a while to settle (the real engine's ``settle``, slowed down)."""

    def __init__(self) -> None:
        self.stale_tokens = 0
        self.settled = 0
        self.calls = 0

    def fim(self, prefix: str, suffix: str, params: object, cancel: CancelToken,
            on_progress: object = None, middle: str = "") -> Generation:
        self.calls += 1
        self.stale_tokens = 1000  # this call moved cached cells: settling them takes 2 s
        text = f"a{self.calls} = 1\n    b = 2\n"
        deadline = time.monotonic() + 10
        while not cancel.cancelled and time.monotonic() < deadline:  # the rest of the block
            if on_progress is not None:
                on_progress(Generation(text, "length", 10, 1, 9, len(text)))
            time.sleep(0.01)
        return Generation(text, "cancelled", 10, 1, 9, len(text))

    def settle(self, cancel: CancelToken, chunk: int) -> int:
        done = 0
        while self.stale_tokens > 0 and not cancel.cancelled:
            time.sleep(0.02)  # 16 cells at a time
            self.stale_tokens -= chunk
            done += chunk
        self.settled += done
        return done


def test_background_settling_never_delays_the_next_keystroke() -> None:
    """A keystroke that cancels the rest of a block must not then wait behind the settling
    the old work starts once it stops (it used to: 1-2 s keystrokes on the typing replay)."""
    engine = _SettlingEngine()
    settings = replace(Settings(), inline_max_tokens=50, inline_budget_ms=0,
                       inline_debounce_ms=0, inline_context=False, inline_prefetch=False)
    completer = InlineCompleter(lambda: engine, lambda: settings)  # type: ignore[arg-type]
    uri = "file:///block.py"

    async def scenario() -> float:
        first = await completer.suggest(uri, BODY, 1, 4)
        assert first and first.startswith("a1 = 1"), first  # answered early; still decoding
        await asyncio.sleep(0.1)
        doc = BODY + "x"
        started = time.monotonic()
        second = await completer.suggest(uri, doc, 1, 5)  # a cache miss: cancels the rest
        assert second and second.startswith("a2"), second
        return time.monotonic() - started

    waited = asyncio.run(scenario())
    completer.shutdown()
    assert waited < 0.5, f"the keystroke waited {waited:.2f} s behind background settling"
    assert engine.settled < 1000, "settling the old call's cells ran to the end first"


class _CountingEngine:
    """A scripted FIM engine: one fixed suggestion per call, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def fim(self, prefix: str, suffix: str, params: object, cancel: CancelToken,
            on_progress: object = None, middle: str = "") -> Generation:
        self.calls += 1
        return Generation("total = 0", "stop", 50, 50, 0, 3)


def test_warming_where_the_cursor_rests_answers_the_first_keystroke_from_the_cache() -> None:
    """plancode/cursor: the suggestion at the resting cursor is computed while the worker is
    idle; the first request there is then a cache hit (no model call)."""
    engine = _CountingEngine()
    settings = replace(Settings(), inline_budget_ms=0, inline_debounce_ms=0,
                       inline_context=False, inline_prefetch=True)
    completer = InlineCompleter(lambda: engine, lambda: settings)  # type: ignore[arg-type]
    uri = "file:///warm.py"
    assert completer.warm(uri, BODY, 1, 4)
    deadline = time.monotonic() + 10
    while completer.stats.warmups == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    completer._pool.submit(lambda: None).result()  # the warm-up has finished
    assert engine.calls == 1 and completer.stats.warmups == 1
    assert not completer.warm(uri, BODY, 1, 4), "already in the cache: nothing to do"
    got = asyncio.run(completer.suggest(uri, BODY, 1, 4))
    assert got == "total = 0" and engine.calls == 1, "answered from the cache"
    assert completer.stats.inline_cache_hits == 1
    completer.shutdown()


# -- adaptive debounce -----------------------------------------------------------------------


def test_the_debounce_follows_the_typing_interval() -> None:
    rhythm = TypingRhythm()
    assert rhythm.delay("u", 100) == 0  # nothing known yet
    for i in range(6):
        rhythm.observe("u", i * 0.05)  # a burst: 50 ms apart
    assert rhythm.delay("u", 100) == pytest.approx(0.06)
    assert rhythm.delay("u", 0) == 0, "0 switches it off"
    rhythm.observe("u", 10.0)  # a pause resets the estimate
    rhythm.observe("u", 10.4)  # a slow keystroke: no wait
    assert rhythm.delay("u", 100) == 0


def test_a_request_superseded_during_the_debounce_never_runs_the_model(
        tiny_engine: LlamaEngine) -> None:
    completer = _completer(tiny_engine, inline_debounce_ms=200, inline_prefetch=False,
                           inline_max_tokens=8)
    uri = "file:///burst.py"
    now = time.monotonic()
    for i in range(5):  # the user has been typing 60 ms apart
        completer.rhythm.observe(uri, now - 0.3 + 0.06 * i)

    async def scenario() -> tuple[str | None, str | None]:
        a = asyncio.create_task(completer.suggest(uri, "x = [1, 2", 0, 9))
        await asyncio.sleep(0.02)
        b = asyncio.create_task(completer.suggest(uri, "x = [1, 2,", 0, 10))
        return await a, await b

    first, _ = asyncio.run(scenario())
    assert first is None and completer.stats.debounced == 1
    assert completer.stats.evaluated_tokens_total > 0, "the newer request ran"
    completer.shutdown()


# -- context beyond the window ----------------------------------------------------------------


def test_the_ring_keeps_other_files_and_evicts_near_duplicates() -> None:
    ring = ContextRing(max_chunks=2)
    util = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n\n\ndef lerp(a, b, t):\n" \
        "    return a + (b - a) * t\n"
    ring.add("file:///p/util.py", util)
    ring.add("file:///p/util.py", util + "\n\nPI = 3.14\n")  # mostly the same: replaces it
    assert ring.stats()["chunks"] == 1 and ring.stats()["evicted"] == 1
    assert similarity(util, util) == 1.0
    ring.index_definitions("file:///p/util.py", util)
    req = _req("from util import clamp\n\nv = clamp(")
    extra = ring.extra("file:///p/main.py", req)
    assert [name for name, _ in extra] == ["p/util.py"]
    assert ring.extra("file:///p/util.py", req) == (), "a file is not its own context"
    ring.add("file:///p/a.py", "A = 1\nB = 2\n")
    ring.add("file:///p/b.py", "C = 3\nD = 4\n")
    assert ring.stats()["chunks"] == 2, "the oldest chunk leaves the ring"


def test_definitions_the_cursor_names_are_sent() -> None:
    ring = ContextRing()
    ring.index_definitions("file:///p/geometry.py",
                           'def area(r):\n    """Area of a circle of radius r."""\n'
                           '    return 3.14159 * r * r\n\n\ndef unused():\n    pass\n')
    extra = ring.extra("file:///p/main.py", _req("x = area("))
    assert len(extra) == 1
    name, text = extra[0]
    assert name == "p/geometry.py" and "def area(r):" in text and "unused" not in text
    assert "3.14159" not in text, "the body is elided"


# -- structure ---------------------------------------------------------------------------------


def _lsp_modules() -> list[str]:
    return sorted(p.stem for p in LSP.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", _lsp_modules())
def test_each_lsp_module_imports_alone(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import plancode.lsp.{module}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_lsp_modules_import_no_circle() -> None:
    graph: dict[str, set[str]] = {}
    for name in _lsp_modules():
        tree = ast.parse((LSP / f"{name}.py").read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("plancode.lsp."):
                    deps.add(node.module.removeprefix("plancode.lsp."))
                elif node.module == "plancode.lsp":
                    deps.update(a.name for a in node.names)
        graph[name] = deps
    assert not any("server" in deps for deps in graph.values()), \
        "server.py is the composition root: nothing imports it"

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import circle: {' -> '.join((*path, node))}"
        for dep in graph.get(node, ()):
            visit(dep, (*path, node))

    for name in graph:
        visit(name, ())
