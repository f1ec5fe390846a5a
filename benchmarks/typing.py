"""Ghost-text latency while typing: ``plancode serve`` against llama-cpp-python with no reuse.

    .venv/bin/python -m benchmarks.typing [--model qwen2.5-coder-0.5b] [--chars 150]
        [--source server/analysis/splice.py] [--function _find_target] [--pause 0.1]
        [--threads 0] [--out docs/typing.md] [--plot docs/typing-latency.png]

Run it as a module from the repository root: started as a script (``python
benchmarks/typing.py``) this file would shadow the standard library's ``typing``.

A real function's body is cut out of its file and typed back one keystroke at a time (Enter
also brings the next line's indentation, as an editor's auto-indent does). Every keystroke's
request is made twice, in turn and never both at once (they would fight over the cores), so
both sides run on the same machine under the same background load:

* **server** -- ``python -m server.cli serve`` driven over stdio by a pygls LSP client: per
  keystroke a full-text ``didChange``, a ``--pause`` (100 ms, the editor's debounce), then
  ``textDocument/inlineCompletion`` at the cursor, timed client-side. ``plancode/stats`` after
  each answer says how many prompt tokens the server evaluated for it and whether its
  suggestion cache answered.
* **baseline** -- the same FIM prompt (``build_request`` and the model's FIM tokens, built as
  the engine builds it) sent straight to a ``llama_cpp.Llama`` whose state is reset before
  every call: greedy, the same max tokens and stop strings, the same threads, and every
  request evaluates its whole prompt.

Prints a table and writes it, with the command and the machine, to ``--out``; ``--plot``
draws the latency of every keystroke (needs matplotlib; skipped without it).
"""

# ruff: noqa: E402  (the imports follow the guard below)
from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # started as a script, benchmarks/ comes first on sys.path and this file shadows ``typing``
    sys.exit("run it from the repository root as a module: "
             ".venv/bin/python -m benchmarks.typing")

import argparse
import ast
import asyncio
import json
import os
import platform
import shlex
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from llama_cpp import Llama
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from benchmarks.machine import cpu_name
from server.config import Settings
from server.lsp.fim import FimRequest, build_request, stop_strings, trim
from server.models.catalog import DEFAULT_MODEL
from server.models.store import ModelStore
from server.prompts import FimFormat, fim_format_for

ROOT = Path(__file__).resolve().parent.parent
READY, FAILED = "plancode model: ready", "plancode model: error"
STATS = "plancode/stats"
LOAD_TIMEOUT = 300.0


# -- the keystrokes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Keystroke:
    """The document after one keystroke and the cursor just after what was typed.

    ``column`` counts code points (what ``build_request`` takes), ``character`` UTF-16 units
    (what an LSP position carries).
    """

    text: str
    line: int
    column: int
    character: int


@dataclass(frozen=True)
class Scenario:
    """The document before typing, the body that gets typed, and every keystroke's state."""

    source: str
    function: str
    start_text: str
    body: str
    keystrokes: list[Keystroke]


def body_lines(source: str, name: str) -> tuple[int, int]:
    """0-based ``[first, last)`` lines of function ``name``'s body (its docstring excluded)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            stmts = node.body
            if _is_docstring(stmts[0]) and len(stmts) > 1:
                stmts = stmts[1:]
            if stmts[0].lineno == node.lineno:
                raise SystemExit(f"{name} is a one-line function: nothing to type line by line")
            return stmts[0].lineno - 1, stmts[-1].end_lineno or stmts[-1].lineno
    raise SystemExit(f"no function named {name!r} in the source file")


def _is_docstring(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def typed_states(body: str, limit: int) -> list[str]:
    """What has been typed of ``body`` after each keystroke, at most ``limit`` (0: all).

    The first line's indentation is there before the first keystroke (the editor indented the
    new line), and Enter brings the next line's indentation with it (auto-indent), so each
    keystroke is one visible character or one Enter.
    """
    i = len(body) - len(body.lstrip(" \t"))
    states: list[str] = []
    while i < len(body) and (limit <= 0 or len(states) < limit):
        j = i + 1
        if body[i] == "\n":
            while j < len(body) and body[j] in " \t":
                j += 1
        i = j
        states.append(body[:i])
    return states


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def keystroke(head: str, typed: str, tail: str) -> Keystroke:
    """The document with ``typed`` written between ``head`` and ``tail`` on lines of its own."""
    before = head + typed
    line_text = before[before.rfind("\n") + 1 :]
    return Keystroke(before + "\n" + tail, before.count("\n"), len(line_text),
                     utf16_len(line_text))


def build_scenario(path: Path, function: str, chars: int) -> Scenario:
    """Cut ``function``'s body out of ``path`` and list the keystrokes that type it back."""
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    first, last = body_lines(source, function)
    head, tail = "".join(lines[:first]), "".join(lines[last:])
    body = "".join(lines[first:last]).removesuffix("\n")
    indent = body[: len(body) - len(body.lstrip(" \t"))]
    states = typed_states(body, chars)
    return Scenario(
        source=str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT)
        else str(path),
        function=function,
        start_text=head + indent + "\n" + tail,
        body=states[-1] if states else "",
        keystrokes=[keystroke(head, typed, tail) for typed in states],
    )


# -- one request's outcome and the summary ---------------------------------------------------


@dataclass
class Sample:
    """One request on one side: wall time, the suggestion, and what its prompt cost."""

    seconds: float
    suggestion: str
    prompt_tokens: int
    evaluated_tokens: int
    cached: bool = False
    typed_ahead: bool = False
    tail_tokens: int = 0  # prompt tokens from the FIM suffix token on (baseline only)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples: list[Sample]) -> dict[str, float]:
    """Latency percentiles (ms), tokens evaluated per request and cache hits of one side."""
    ms = [s.seconds * 1000 for s in samples]
    evaluated = [s.evaluated_tokens for s in samples]
    ran = [s for s in samples if not s.cached]
    hits = len(samples) - len(ran)
    return {
        "requests": len(samples),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
        "evaluated_median": statistics.median(evaluated),
        "evaluated_mean": statistics.fmean(evaluated),
        "evaluated_total": sum(evaluated),
        "evaluated_median_model": statistics.median([s.evaluated_tokens for s in ran])
        if ran else 0,
        "prompt_median": statistics.median([s.prompt_tokens for s in ran]) if ran else 0,
        "model_p50_ms": percentile([s.seconds * 1000 for s in ran], 50) if ran else 0.0,
        "model_calls": len(ran),
        "hits": hits,
        "hit_pct": 100 * hits / len(samples),
        "typed_ahead": sum(s.typed_ahead for s in samples),
    }


# -- the server pass -------------------------------------------------------------------------


CLIENT_CAPABILITIES = types.ClientCapabilities(
    window=types.WindowClientCapabilities(work_done_progress=True),
    text_document=types.TextDocumentClientCapabilities(
        synchronization=types.TextDocumentSyncClientCapabilities(),
        inline_completion=types.InlineCompletionClientCapabilities(),
    ),
)


def make_client(messages: list[str]) -> LanguageClient:
    """A pygls client that records the server's messages and accepts its progress tokens."""
    client = LanguageClient("plancode-typing-benchmark", "1")

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(_: LanguageClient, params: types.LogMessageParams) -> None:
        messages.append(params.message)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show_message(_: LanguageClient, params: types.ShowMessageParams) -> None:
        messages.append(params.message)

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def progress_create(_: LanguageClient, params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def progress(_: LanguageClient, params: types.ProgressParams) -> None:
        return None

    return client


async def drain(stream: asyncio.StreamReader | None) -> None:
    """Read the server's stderr so a chatty native library can never fill the pipe."""
    while stream is not None and await stream.read(65536):
        pass


async def wait_ready(messages: list[str], timeout: float = LOAD_TIMEOUT) -> None:
    """Until the server logs that its model is ready (its load runs after ``initialized``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(m.startswith(READY) for m in messages):
            return
        failed = [m for m in messages if m.startswith(FAILED)]
        if failed:
            raise SystemExit(f"the server could not load the model: {failed[0]}")
        await asyncio.sleep(0.05)
    raise SystemExit(f"the model was not ready after {timeout:.0f} s")


def field_of(obj: Any, name: str) -> Any:
    """A field of a custom request's result (pygls gives objects; plain dicts also work)."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)


def suggestion_of(result: Any) -> str:
    """The first inline item's text ('' when the server offered nothing)."""
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    if not items:
        return ""
    text = items[0].insert_text
    return text if isinstance(text, str) else text.value


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """The server's settings: the model, FIM only (no background verification), our limits."""
    return {**os.environ, "PLANCODE_MODEL": args.model, "PLANCODE_INLINE_VERIFY": "false",
            "PLANCODE_INLINE_MAX_TOKENS": str(args.max_tokens),
            "PLANCODE_N_THREADS": str(args.threads), "PLANCODE_N_CTX": str(args.n_ctx)}


async def request_once(client: LanguageClient, uri: str, key: Keystroke, version_: int,
                       pause: float, before: Any) -> tuple[Sample, Any]:
    """didChange, pause, inlineCompletion (timed), then the server's counters for it."""
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version_),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=key.text)]))
    await asyncio.sleep(pause)
    start = time.perf_counter()
    result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=key.line, character=key.character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
    seconds = time.perf_counter() - start
    after = await client.protocol.send_request_async(STATS, {})
    return fim_sample(before, after, seconds, suggestion_of(result)), after


def fim_sample(before: Any, after: Any, seconds: float, suggestion: str) -> Sample:
    """One request's accounting from the server's counters before and after it."""
    def delta(*path: str) -> int:
        old, new = before, after
        for name in path:
            old, new = field_of(old, name), field_of(new, name)
        return int(new) - int(old)

    last = field_of(after, "last_fim")
    if delta("inline_requests") != 1 or last is None:
        raise SystemExit("plancode/stats did not account exactly one FIM request")
    cached = delta("inline_cache_hits") > 0
    if not cached and delta("evaluated_tokens_total") == 0:  # a model call evaluates >= 1
        raise SystemExit("plancode/stats has no accounting for this request's model call")
    return Sample(seconds, suggestion, 0 if cached else int(field_of(last, "prompt_tokens")),
                  delta("evaluated_tokens_total"), cached,
                  delta("fim_cache", "typed_ahead_hits") > 0)


async def run_both(scenario: Scenario, args: argparse.Namespace, workdir: Path,
                   baseline: Baseline) -> tuple[list[Sample], list[Sample]]:
    """Type through ``plancode serve`` over stdio, one timed inline request per keystroke,
    each followed by the same request made by ``baseline`` (in turn, never at the same time:
    both sides see the same machine, background load included)."""
    messages: list[str] = []
    client = make_client(messages)
    await client.start_io(sys.executable, "-m", "server.cli", "serve", "--log-file",
                          str(workdir / "serve.log"), env=server_env(args), cwd=str(ROOT))
    stderr = asyncio.create_task(drain(client._server.stderr if client._server else None))
    server: list[Sample] = []
    base: list[Sample] = []
    try:
        await client.initialize_async(types.InitializeParams(
            capabilities=CLIENT_CAPABILITIES, root_uri=workdir.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workdir.as_uri(), name="typing")]))
        client.initialized(types.InitializedParams())
        await wait_ready(messages)
        path = workdir / Path(scenario.source).name
        path.write_text(scenario.start_text)
        uri = path.as_uri()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=scenario.start_text)))
        stats = await client.protocol.send_request_async(STATS, {})
        for i, key in enumerate(scenario.keystrokes):
            sample, stats = await request_once(client, uri, key, i + 2, args.pause, stats)
            server.append(sample)
            req = build_request(key.text, key.line, key.column)
            base.append(await asyncio.to_thread(baseline.complete, req, args.max_tokens))
            progress(i, len(scenario.keystrokes), server, base)
    finally:
        await shut_down(client)
        stderr.cancel()
    return server, base


async def shut_down(client: LanguageClient) -> None:
    """shutdown + exit, then wait for the process (the model's memory goes with it)."""
    try:
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
    except Exception as exc:  # the server died already: stopping is all that is left
        print(f"server shutdown: {exc!r}", file=sys.stderr)
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
    await client.stop()


def progress(i: int, total: int, server: list[Sample], base: list[Sample]) -> None:
    """A line on stderr every ten keystrokes: the run is long on a small CPU."""
    if (i + 1) % 10 == 0 or i + 1 == total:
        p50s = [percentile([x.seconds * 1000 for x in side], 50) for side in (server, base)]
        print(f"  {i + 1}/{total} keystrokes, p50 so far: server {p50s[0]:.0f} ms, "
              f"baseline {p50s[1]:.0f} ms", file=sys.stderr)


# -- the baseline pass -----------------------------------------------------------------------


class Baseline:
    """llama-cpp-python on its own: the same prompt and decoding, the state reset every call."""

    def __init__(self, model_path: Path, threads: int, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self.llm = Llama(model_path=str(model_path), n_gpu_layers=0, n_threads=threads,
                         n_threads_batch=threads, n_ctx=n_ctx, n_batch=512, verbose=False)
        fmt = fim_format_for(self._is_special)
        if fmt is None:
            raise SystemExit(f"{model_path} has no fill-in-the-middle tokens")
        self.fmt: FimFormat = fmt

    def _tokens(self, text: str, special: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def _is_special(self, text: str) -> bool:
        """One special token of the vocabulary (the engine's test for FIM tokens)."""
        return len(self._tokens(text, True)) == 1 and len(self._tokens(text)) > 1

    def prompt(self, req: FimRequest) -> tuple[list[int], int]:
        """The FIM prompt as the engine tokenizes it (the user's text never as special
        tokens), and how many of its tokens come from the FIM suffix token on."""
        fmt = self.fmt
        head = self._tokens(fmt.prefix, True) + self._tokens(req.prefix)
        tail = (self._tokens(fmt.suffix, True) + self._tokens(req.suffix)
                + self._tokens(fmt.middle, True))
        return head + tail, len(tail)

    def complete(self, req: FimRequest, max_tokens: int) -> Sample:
        """One suggestion from a cold state, timed, post-processed as the server does."""
        tokens, tail = self.prompt(req)
        stops = list(dict.fromkeys(stop_strings(req) + self.fmt.stops))
        start = time.perf_counter()
        # n_tokens = 0: create_completion finds no prefix to reuse, and eval() drops the
        # whole KV cache before it evaluates the prompt from its first token
        self.llm.reset()
        out = self.llm.create_completion(
            tokens, max_tokens=min(max_tokens, self.n_ctx - len(tokens)), temperature=0.0,
            repeat_penalty=1.0, stop=stops)
        seconds = time.perf_counter() - start
        choice = out["choices"][0]
        raw = choice["text"]
        if choice["finish_reason"] == "length" and "\n" in raw:
            raw = raw[: raw.rfind("\n")]  # unfinished last line, dropped as complete_fim does
        prompt_tokens = out["usage"]["prompt_tokens"]
        return Sample(seconds, trim(req, raw), prompt_tokens, prompt_tokens, tail_tokens=tail)


# -- the report ------------------------------------------------------------------------------


def command_line() -> str:
    return shlex.join([".venv/bin/python", "-m", "benchmarks.typing", *sys.argv[1:]])


def table(s: dict[str, float], b: dict[str, float], b_same: float) -> list[str]:
    """The side-by-side markdown table (``b_same``: the baseline's p50 over the keystrokes
    the server ran the model for)."""
    def row(label: str, key: str, fmt: str = "{:.0f}") -> str:
        return f"| {label} | {fmt.format(s[key])} | {fmt.format(b[key])} |"

    hits = f"{s['hits']:.0f} ({s['hit_pct']:.1f}%), {s['typed_ahead']:.0f} of them typed-ahead"
    return [
        "| | server (`plancode serve` over LSP) | llama-cpp-python, no reuse |",
        "|---|---:|---:|",
        row("requests (one per keystroke)", "requests"),
        row("latency p50 (ms)", "p50_ms"),
        row("latency p95 (ms)", "p95_ms"),
        row("latency mean (ms)", "mean_ms"),
        row("latency max (ms)", "max_ms"),
        f"| suggestion-cache hits | {hits} | 0 (no cache) |",
        row("requests that ran the model", "model_calls"),
        f"| latency p50 of the keystrokes the server ran the model for (ms) "
        f"| {s['model_p50_ms']:.0f} | {b_same:.0f} |",
        row("prompt tokens evaluated per request, median", "evaluated_median"),
        row("prompt tokens evaluated per request, mean", "evaluated_mean", "{:.1f}"),
        row("prompt tokens evaluated per model call, median", "evaluated_median_model"),
        row("prompt tokens evaluated, all requests", "evaluated_total"),
        row("prompt size per model call (tokens), median", "prompt_median"),
    ]


def times(slow: float, fast: float) -> str:
    """``slow / fast`` as a speed-up factor ("1.7x", "430x")."""
    ratio = slow / fast if fast else float("inf")
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def report(scenario: Scenario, args: argparse.Namespace, server: list[Sample],
           base: list[Sample], seconds: float, load: tuple[float, float]) -> str:
    """The whole markdown document: results, ratios, command, machine, notes."""
    s, b = summarize(server), summarize(base)
    ran = [i for i, x in enumerate(server) if not x.cached]
    b_same = percentile([base[i].seconds * 1000 for i in ran], 50)
    threads = args.threads or os.cpu_count() or 1
    lines = [
        "# Typing latency: ghost text per keystroke",
        "",
        f"`{scenario.source}`'s `{scenario.function}` has its body removed and typed back, "
        f"{len(scenario.keystrokes)} keystrokes (Enter brings the next line's indentation, "
        f"as auto-indent does); after each one the editor waits {args.pause * 1000:.0f} ms and "
        "asks for ghost text at the cursor. Each request goes to the server and then, once the "
        "server has answered, straight to llama-cpp-python with no reuse (in turn, never at "
        "the same time, so both sides run on the same machine in the same conditions).",
        "",
        *table(s, b, b_same),
        "",
        f"**Baseline p50 / server p50 = {times(b['p50_ms'], s['p50_ms'])}** "
        f"(p95: {times(b['p95_ms'], s['p95_ms'])}, mean: {times(b['mean_ms'], s['mean_ms'])}; "
        "p50 on the keystrokes where the server ran the model: "
        f"{times(b_same, s['model_p50_ms'])}).",
        "",
        "What the keystrokes typed (the first line's indentation was there before them):",
        "",
        "```python",
        scenario.body,
        "```",
        "",
        "## Command and machine",
        "",
        "```",
        command_line(),
        "```",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores; {threads} threads on both sides; "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}; "
        f"1-minute load average {load[0]:.2f} before the run, {load[1]:.2f} after it",
        f"- Model: {args.model} (CPU), n_ctx {args.n_ctx}, at most {args.max_tokens} "
        f"tokens per suggestion, greedy; llama-cpp-python {version('llama_cpp_python')}, "
        f"pygls {version('pygls')}",
        f"- Wall time of the run: {seconds:.0f} s (both model loads and the pauses included)",
    ]
    if args.plot:
        lines += ["", f"![latency per keystroke]({Path(args.plot).name})"]
    return "\n".join(lines + ["", *notes(s, server, base)]) + "\n"


def notes(s: dict[str, float], server: list[Sample], base: list[Sample]) -> list[str]:
    """What the numbers mean, with this run's figures."""
    ran = [i for i, x in enumerate(server) if not x.cached]
    tail = statistics.median([base[i].tail_tokens for i in ran]) if ran else 0
    same_ran = sum(server[i].suggestion == base[i].suggestion for i in ran)
    same_all = sum(x.suggestion == y.suggestion for x, y in zip(server, base, strict=True))
    same_size = sum(server[i].prompt_tokens == base[i].prompt_tokens for i in ran)
    return [
        "## What the numbers mean",
        "",
        "- **Latency** is wall time per request: for the server, client-side from sending "
        "`textDocument/inlineCompletion` to its answer (JSON-RPC over stdio included, the "
        "pause before it not); for the baseline, `Llama.reset()` plus `create_completion` "
        "in-process. Decoding (up to the max tokens, or a stop string) is in both.",
        "- **Prompt tokens evaluated** on the server come from the server itself "
        "(`plancode/stats` after each answer: the engine's evaluated tokens for that request, "
        "0 when the suggestion cache answered). The baseline evaluates every prompt token of "
        f"every request. Both sides built prompts of the same size for {same_size} of the "
        f"{len(ran)} keystrokes the server ran the model for.",
        "- **KV reuse.** The engine keeps the longest token prefix a prompt shares with the "
        "previous one, and the FIM window starts on a snapped line, so a keystroke changes "
        "only the end of the prefix. But in the prefix-suffix-middle order everything after "
        "the cursor comes later in the prompt: the suffix (16 lines below the cursor) and the "
        f"FIM tokens, a median of {tail:.0f} tokens here, are re-evaluated on every model "
        f"call. That is most of the {s['evaluated_median_model']:.0f} tokens a model call "
        "evaluated, against the whole prompt for the baseline.",
        f"- **Cache hits** ({s['hits']:.0f} of {s['requests']:.0f}, {s['typed_ahead']:.0f} "
        "typed-ahead) are answers from the server's suggestion cache. A typed-ahead hit is a "
        "keystroke that typed the next characters of the suggestion already on screen: the "
        "server answers with the rest of it without running the model. As long as the model "
        "guessed the code right, typing through its suggestion costs a few milliseconds a "
        "keystroke, which is why the server's median sits far below one model call; the p95 "
        "is the cost of the keystrokes that leave the suggestion.",
        f"- **Same suggestions.** The two sides offered the same text for {same_all} of "
        f"{len(server)} keystrokes, {same_ran} of the {len(ran)} where the server ran the "
        "model. A typed-ahead answer is the rest of an earlier suggestion, which a fresh "
        "request need not repeat; and where both ran the model on the same prompt, greedy "
        "decoding can still part at a near tie, because the logits round differently: the "
        "engine evaluates 64-token chunks on top of a reused cache, llama-cpp-python "
        "512-token batches from scratch.",
    ]


def plot(path: Path, server: list[Sample], base: list[Sample]) -> bool:
    """Latency per keystroke and its distribution, both sides; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = range(1, len(server) + 1)
    left.plot(x, [b.seconds * 1000 for b in base], color="tab:red", lw=1,
              label="llama-cpp-python, no reuse")
    left.plot(x, [s.seconds * 1000 for s in server], color="tab:blue", lw=1, label="server")
    hits = [(i, s.seconds * 1000) for i, s in zip(x, server, strict=True) if s.cached]
    if hits:
        left.scatter(*zip(*hits, strict=True), s=10, color="tab:green", zorder=3,
                     label="server: cache hit")
    left.set(yscale="log", xlabel="keystroke", ylabel="latency (ms)", title="per keystroke")
    left.legend(fontsize=8)
    for samples, color, label in ((server, "tab:blue", "server"),
                                  (base, "tab:red", "llama-cpp-python, no reuse")):
        ms = sorted(s.seconds * 1000 for s in samples)
        right.step(ms, [(i + 1) / len(ms) for i in range(len(ms))], color=color, label=label)
    right.set(xscale="log", xlabel="latency (ms)", ylabel="fraction of requests",
              title="distribution")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", default=os.environ.get("PLANCODE_MODEL", DEFAULT_MODEL),
                   help="catalog name or .gguf path (default $PLANCODE_MODEL or the default)")
    p.add_argument("--source", default="server/analysis/splice.py",
                   help="file holding the function to type")
    p.add_argument("--function", default="_find_target", help="the function whose body is typed")
    p.add_argument("--chars", type=int, default=150, help="keystrokes to type (0: the whole body)")
    p.add_argument("--pause", type=float, default=0.1,
                   help="seconds between a keystroke and its request")
    p.add_argument("--threads", type=int, default=Settings().threads(),
                   help="llama.cpp threads on both sides (default: one per core)")
    p.add_argument("--n-ctx", type=int, default=Settings().n_ctx, help="context window")
    p.add_argument("--max-tokens", type=int, default=Settings().inline_max_tokens,
                   help="most tokens per suggestion")
    p.add_argument("--out", default="docs/typing.md", help="markdown report ('' to skip)")
    p.add_argument("--plot", default="docs/typing-latency.png", help="PNG plot ('' to skip)")
    p.add_argument("--samples", default="", help="also write every request as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenario = build_scenario(ROOT / args.source, args.function, args.chars)
    if not scenario.keystrokes:
        raise SystemExit("nothing to type")
    model_path = ModelStore(progress=False).resolve(args.model)
    print(f"typing {len(scenario.keystrokes)} keystrokes of {scenario.source}:"
          f"{scenario.function} with {args.model}", file=sys.stderr)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    baseline = Baseline(model_path, args.threads, args.n_ctx)  # loaded before the server starts
    with tempfile.TemporaryDirectory(prefix="plancode-typing-") as tmp:
        server, base = asyncio.run(run_both(scenario, args, Path(tmp), baseline))
    seconds = time.perf_counter() - start
    if args.plot and not plot(ROOT / args.plot, server, base):
        args.plot = ""
    text = report(scenario, args, server, base, seconds,
                  (load_before, os.getloadavg()[0]))
    print(text)
    if args.out:
        (ROOT / args.out).write_text(text)
    if args.samples:
        Path(args.samples).write_text(json.dumps(
            {"server": [asdict(s) for s in server], "baseline": [asdict(s) for s in base]},
            indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
