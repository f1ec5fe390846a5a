"""Ghost-text latency while typing: plancode, llama-server with cache reuse, and no reuse.

    .venv/bin/python -m benchmarks.typing [--model qwen2.5-coder-0.5b] [--chars 150]
        [--replay server/analysis/splice.py:_find_target] [--replay FILE:FUNCTION ...]
        [--sides server,llama-server,baseline] [--rounds 2] [--baseline-every 3]
        [--pause 0.1] [--threads 0] [--before COMMIT] [--out docs/typing.md]
        [--plot docs/typing-latency.png]

Run it as a module from the repository root: started as a script (``python
benchmarks/typing.py``) this file would shadow the standard library's ``typing``.

A real function's body is cut out of its file and typed back one keystroke at a time (Enter
also brings the next line's indentation, as an editor's auto-indent does). After each
keystroke the editor waits ``--pause`` (its debounce) and asks for ghost text. Three sides
type the same keystrokes, each in a pass of its own (a side's background work must only get
the time a real user leaves it); the passes run in turn, ``--rounds`` times, so background
load on a shared machine falls on every side:

* **server** -- ``python -m plancode serve`` driven over stdio by a pygls LSP client:
  full-text ``didChange``, the pause, ``textDocument/inlineCompletion``, timed client-side;
  ``plancode/stats`` after each answer says what the server evaluated for it.
* **llama-server** -- built from the llama.cpp source llama-cpp-python vendors
  (``benchmarks/build_llama_server.sh``), same model file and threads, started with
  ``--cache-reuse 256``, driven as llama.vim drives it: ``/infill`` with ``input_prefix``,
  ``input_suffix``, ``input_extra``, ``prompt`` (the cursor line up to the cursor),
  ``cache_prompt: true`` and ``t_max_predict_ms``, behind llama.vim's client-side cache of
  suggestions (exact and typed-ahead hits answer without a request). Greedy, so the sides
  can be compared suggestion by suggestion.
* **baseline** -- the same FIM prompt straight to a ``llama_cpp.Llama`` whose state is reset
  before every call (no reuse, no cache), on every ``--baseline-every``-th keystroke.
* **before** (with ``--before COMMIT``) -- the server side again, run from a git worktree of
  an older commit, so a change is measured against what it replaced in the same run.

Prints the tables and writes them, with the command and the machine, to ``--out``; ``--plot``
draws the latency of every keystroke. ``--ablate`` adds server passes with one piece switched
off at a time (KV shifting, answer-first, prefetch, context) on the first replay.
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
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from llama_cpp import Llama
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from benchmarks.machine import cpu_name
from plancode.config import Settings
from plancode.doctor.llama_build import LLAMA_VERSION
from plancode.engine.kv_reuse import common_prefix
from plancode.lsp.fim import FimRequest, SuggestionCache, build_request, stop_strings, trim
from plancode.models.catalog import DEFAULT_MODEL
from plancode.models.store import ModelStore
from plancode.prompts import FimFormat, fim_format_for

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
    rest: list[str] = field(default_factory=list)  # the body still to type after each one


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
        rest=[body[len(typed):] for typed in states],
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
    key: int = 0  # the keystroke's index


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples: list[Sample], rest: list[str]) -> dict[str, float]:
    """Latency percentiles (ms), prompt cost and suggestion quality of one side."""
    ms = [s.seconds * 1000 for s in samples]
    ran = [s for s in samples if not s.cached]
    shown = [s for s in samples if s.suggestion]
    right = [s for s in shown if rest[s.key].startswith(s.suggestion)]
    ratio = [s.evaluated_tokens / s.prompt_tokens for s in ran if s.prompt_tokens]
    return {
        "requests": len(samples),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "model_calls": len(ran),
        "model_p50_ms": percentile([s.seconds * 1000 for s in ran], 50),
        "model_p95_ms": percentile([s.seconds * 1000 for s in ran], 95),
        # the first keystroke of a pass reads the whole file into the cache on every side
        "warm_p50_ms": percentile([s.seconds * 1000 for s in ran if s.key], 50),
        "warm_p95_ms": percentile([s.seconds * 1000 for s in ran if s.key], 95),
        "hits": len(samples) - len(ran),
        "typed_ahead": sum(s.typed_ahead for s in samples),
        "evaluated_median_model": statistics.median([s.evaluated_tokens for s in ran])
        if ran else 0,
        "evaluated_mean_model": statistics.fmean([s.evaluated_tokens for s in ran])
        if ran else 0,
        "evaluated_share_pct": 100 * statistics.median(ratio) if ratio else float("nan"),
        "prompt_median": statistics.median([s.prompt_tokens for s in ran]) if ran else 0,
        "shown": len(shown),
        "right": len(right),
        "right_pct": 100 * len(right) / len(shown) if shown else float("nan"),
        "right_chars": sum(common_prefix(s.suggestion, rest[s.key]) for s in shown)
        / max(len(samples), 1),
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
    """A field of a custom request's result (pygls gives objects; plain dicts also work);
    None when it has no such field (an older server's counters)."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def suggestion_of(result: Any) -> str:
    """The first inline item's text ('' when the server offered nothing)."""
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    if not items:
        return ""
    text = items[0].insert_text
    return text if isinstance(text, str) else text.value


def server_env(args: argparse.Namespace, overrides: dict[str, str]) -> dict[str, str]:
    """The server's settings: the model, FIM only (no background verification), our limits."""
    return {**os.environ, "PLANCODE_MODEL": args.model, "PLANCODE_INLINE_VERIFY": "false",
            "PLANCODE_INLINE_MAX_TOKENS": str(args.max_tokens),
            "PLANCODE_INLINE_BUDGET_MS": str(args.budget_ms),
            "PLANCODE_N_THREADS": str(args.threads), "PLANCODE_N_CTX": str(args.n_ctx),
            **overrides}


async def request_once(client: LanguageClient, uri: str, key: Keystroke, version_: int,
                       pause: float, before: Any, index: int) -> tuple[Sample, Any]:
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
    sample = fim_sample(before, after, seconds, suggestion_of(result))
    sample.key = index
    return sample, after


def fim_sample(before: Any, after: Any, seconds: float, suggestion: str) -> Sample:
    """One request's accounting from the server's counters before and after it."""
    def delta(*path: str) -> int:
        old, new = before, after
        for name in path:
            old, new = field_of(old, name), field_of(new, name)
        return int(new or 0) - int(old or 0)  # a counter an older server lacks counts 0

    last = field_of(after, "last_fim")
    if delta("inline_requests") != 1 or last is None:
        raise SystemExit("plancode/stats did not account exactly one FIM request")
    cached = delta("inline_cache_hits") > 0
    return Sample(seconds, suggestion, 0 if cached else int(field_of(last, "prompt_tokens")),
                  0 if cached else int(field_of(last, "evaluated_tokens")), cached,
                  delta("fim_cache", "typed_ahead_hits") > 0)


async def server_pass(scenario: Scenario, args: argparse.Namespace, workdir: Path,
                      overrides: dict[str, str], root: Path = ROOT,
                      name: str = "server") -> tuple[list[Sample], dict]:
    """Type the scenario through ``plancode serve`` run from the checkout ``root`` (this one,
    or the ``--before`` commit's); the samples and the final counters."""
    messages: list[str] = []
    client = make_client(messages)
    await client.start_io(sys.executable, "-m", "plancode", "serve", "--log-file",
                          str(workdir / "serve.log"), env=server_env(args, overrides),
                          cwd=str(root))
    stderr = asyncio.create_task(drain(client._server.stderr if client._server else None))
    samples: list[Sample] = []
    try:
        await client.initialize_async(types.InitializeParams(
            capabilities=CLIENT_CAPABILITIES, root_uri=workdir.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workdir.as_uri(), name="typing")]))
        client.initialized(types.InitializedParams())
        await wait_ready(messages)
        for other in args.context_files:
            source = ROOT / other
            client.text_document_did_open(types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=source.as_uri(), language_id="python", version=1,
                    text=source.read_text())))
        path = workdir / Path(scenario.source).name
        path.write_text(scenario.start_text)
        uri = path.as_uri()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=scenario.start_text)))
        if args.think > 0:  # the cursor rests before typing: the plugins say where
            first = scenario.keystrokes[0]
            client.protocol.notify("plancode/cursor", {
                "textDocument": {"uri": uri},
                "position": {"line": first.line, "character": max(first.character - 1, 0)}})
            await asyncio.sleep(args.think)
        stats = await client.protocol.send_request_async(STATS, {})
        for i, key in enumerate(scenario.keystrokes):
            sample, stats = await request_once(client, uri, key, i + 2, args.pause, stats, i)
            samples.append(sample)
            progress(name, i, len(scenario.keystrokes), samples)
    finally:
        await shut_down(client)
        stderr.cancel()
    return samples, plain(stats)


def plain(obj: Any) -> Any:
    """pygls' reply objects (namedtuples) as plain dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


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


def progress(side: str, i: int, total: int, samples: list[Sample]) -> None:
    """A line on stderr every 25 keystrokes: the run is long on a small CPU."""
    if (i + 1) % 25 == 0 or i + 1 == total:
        p50 = percentile([x.seconds * 1000 for x in samples], 50)
        print(f"  {side}: {i + 1}/{total} keystrokes, p50 so far {p50:.0f} ms",
              file=sys.stderr, flush=True)


def context_chunks(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The other files' text both the server (opened documents) and llama-server
    (``input_extra``) get: each opened file's first chunk, as the server's ring takes it."""
    from plancode.lsp.context_ring import chunk_around, display_name

    return [(display_name((ROOT / f).as_uri()), chunk_around((ROOT / f).read_text(), 0))
            for f in args.context_files]


# -- the llama-server pass -------------------------------------------------------------------


def llama_server_binary(explicit: str) -> Path:
    """The llama-server that benchmarks/build_llama_server.sh built (or ``--llama-server``)."""
    path = Path(explicit) if explicit else (
        Path(os.environ.get("PLANCODE_LLAMA_SERVER_DIR",
                            Path.home() / ".cache" / "plancode" / "llama-server"))
        / LLAMA_VERSION / "bin" / "llama-server")
    if not path.is_file():
        raise SystemExit(f"no llama-server at {path}: build it with "
                         "benchmarks/build_llama_server.sh (or pass --llama-server PATH, or "
                         "leave llama-server out of --sides)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama-server with ``--cache-reuse 256``, behind llama.vim's client-side cache."""

    def __init__(self, binary: Path, model_path: Path, args: argparse.Namespace,
                 extra: list[tuple[str, str]], log: Path) -> None:
        self.port = free_port()
        self.args = args
        self.extra = [{"filename": name, "text": text} for name, text in extra]
        self.cache = SuggestionCache()
        threads = str(args.threads)
        self.command = [str(binary), "-m", str(model_path), "--host", "127.0.0.1",
                        "--port", str(self.port), "-t", threads, "-tb", threads,
                        "-c", str(args.n_ctx), "-np", "1", "-b", "512", "-ub", "512",
                        "--cache-reuse", "256", "-fa", "off"]
        self.log = log.open("w")
        self.proc = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited with {self.proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("llama-server did not become healthy")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def ring_update(self) -> None:
        """llama.vim's background ring update: the extra context, no prediction, cached."""
        body = {"input_prefix": "", "input_suffix": "", "input_extra": self.extra,
                "prompt": "", "n_predict": 0, "samplers": [], "cache_prompt": True,
                "t_max_prompt_ms": 1, "t_max_predict_ms": 1}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/infill",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as r:
            r.read()

    def complete(self, req: FimRequest, index: int) -> Sample:
        """llama.vim's cache first, then ``/infill``; the answer post-processed as ours."""
        start = time.perf_counter()
        typed_before = self.cache.typed_ahead_hits
        hit = self.cache.get(req)
        if hit is not None:
            return Sample(time.perf_counter() - start, hit, 0, 0, True,
                          self.cache.typed_ahead_hits > typed_before, index)
        body = {
            "input_prefix": req.prefix[: len(req.prefix) - len(req.line_prefix)],
            "input_suffix": req.suffix,
            "input_extra": self.extra,
            "prompt": req.line_prefix,
            "n_predict": self.args.max_tokens,
            "stop": list(stop_strings(req)),
            "samplers": ["top_k"],
            "top_k": 1,
            "stream": False,
            "cache_prompt": True,
            "t_max_predict_ms": self.args.budget_ms,
        }
        data = json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/infill", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as r:
            out = json.loads(r.read())
        seconds = time.perf_counter() - start
        raw = out.get("content", "")
        if out.get("stop_type") != "word" and not out.get("stopped_eos") and "\n" in raw:
            raw = raw[: raw.rfind("\n")]  # an unfinished last line, dropped as ours does
        text = trim(req, raw)
        self.cache.put(req, text)
        timings = out.get("timings", {})
        evaluated = int(timings.get("prompt_n", out.get("tokens_evaluated", 0)))
        prompt = evaluated + int(timings.get("cache_n", 0))  # evaluated + reused
        return Sample(seconds, text, prompt, evaluated, False, False, index)


def llama_server_pass(scenario: Scenario, server: LlamaServer) -> list[Sample]:
    samples: list[Sample] = []
    if server.args.think > 0:  # what llama.vim sends while the cursor rests: its ring update
        server.ring_update()
        time.sleep(server.args.think)
    for i, key in enumerate(scenario.keystrokes):
        time.sleep(server.args.pause)
        samples.append(server.complete(build_request(key.text, key.line, key.column), i))
        progress("llama-server", i, len(scenario.keystrokes), samples)
    return samples


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

    def prompt(self, req: FimRequest) -> list[int]:
        """The FIM prompt as the engine lays it out and tokenizes it (the cursor line after
        the middle token; the user's text never as special tokens)."""
        fmt = self.fmt
        head = req.prefix[: len(req.prefix) - len(req.line_prefix)]
        return (self._tokens(fmt.prefix, True) + self._tokens(head)
                + self._tokens(fmt.suffix, True) + self._tokens(req.suffix)
                + self._tokens(fmt.middle, True)
                + (self._tokens(req.line_prefix) if req.line_prefix else []))

    def complete(self, req: FimRequest, max_tokens: int, index: int) -> Sample:
        """One suggestion from a cold state, timed, post-processed as the server does."""
        tokens = self.prompt(req)
        stops = list(dict.fromkeys(stop_strings(req) + self.fmt.stops))
        start = time.perf_counter()
        self.llm.reset()  # n_tokens = 0: the whole prompt is evaluated again
        out = self.llm.create_completion(
            tokens, max_tokens=min(max_tokens, self.n_ctx - len(tokens)), temperature=0.0,
            repeat_penalty=1.0, stop=stops)
        seconds = time.perf_counter() - start
        choice = out["choices"][0]
        raw = choice["text"]
        if choice["finish_reason"] == "length" and "\n" in raw:
            raw = raw[: raw.rfind("\n")]
        prompt_tokens = out["usage"]["prompt_tokens"]
        return Sample(seconds, trim(req, raw), prompt_tokens, prompt_tokens, key=index)


def baseline_pass(scenario: Scenario, baseline: Baseline, args: argparse.Namespace
                  ) -> list[Sample]:
    samples: list[Sample] = []
    for i, key in enumerate(scenario.keystrokes):
        if i % args.baseline_every:
            continue
        req = build_request(key.text, key.line, key.column)
        samples.append(baseline.complete(req, args.max_tokens, i))
        progress("baseline", i, len(scenario.keystrokes), samples)
    return samples


# -- running the passes ----------------------------------------------------------------------

ABLATIONS = {
    "no KV shifting (prefix reuse only)": {"PLANCODE_KV_REUSE_CHUNK": "0"},
    "no answer-first (whole suggestion before answering)": {"PLANCODE_INLINE_BUDGET_MS": "60000"},
    "no prefetch": {"PLANCODE_INLINE_PREFETCH": "false"},
    "no other-file context": {"PLANCODE_INLINE_CONTEXT": "false"},
}


@dataclass
class Replay:
    scenario: Scenario
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)  # the server's final counters
    ablations: dict[str, list[Sample]] = field(default_factory=dict)


def run(args: argparse.Namespace, replays: list[Replay], model_path: Path) -> None:
    """Every side's passes over every replay, in turn, ``--rounds`` times."""
    binary = llama_server_binary(args.llama_server) if "llama-server" in args.sides else None
    extra = context_chunks(args)
    with tempfile.TemporaryDirectory(prefix="plancode-typing-") as tmp:
        work = Path(tmp)
        for round_ in range(args.rounds):
            for replay in replays:
                sc = replay.scenario
                for side in args.sides:
                    print(f"round {round_ + 1}: {side} on {sc.source}:{sc.function}",
                          file=sys.stderr, flush=True)
                    if side == "server":
                        got, stats = asyncio.run(server_pass(sc, args, work, {}))
                        replay.stats[f"round {round_ + 1}"] = stats
                    elif side == "before":
                        got, _ = asyncio.run(server_pass(sc, args, work, {}, args.before_root,
                                                         "before"))
                    elif side == "llama-server":
                        assert binary is not None
                        ls = LlamaServer(binary, model_path, args, extra,
                                         work / "llama-server.log")
                        try:
                            got = llama_server_pass(sc, ls)
                        finally:
                            ls.close()
                    elif round_ == 0:  # the baseline has no state: one round is enough
                        base = Baseline(model_path, args.threads, args.n_ctx)
                        got = baseline_pass(sc, base, args)
                        del base
                    else:
                        continue
                    replay.samples.setdefault(side, []).extend(got)
                    save(args, replays)  # after every pass: a killed run keeps what it did
        if args.ablate and "server" in args.sides:
            first = replays[0]
            for name, env in ABLATIONS.items():
                print(f"ablation: {name}", file=sys.stderr, flush=True)
                got, _ = asyncio.run(server_pass(first.scenario, args, work, env))
                first.ablations[name] = got
                save(args, replays)


# -- the report ------------------------------------------------------------------------------

NUMBERS = {1: "One", 2: "Two", 3: "Three", 4: "Four"}
SIDE_NAMES = {
    "server": "plancode serve (LSP)",
    "before": "plancode serve before issue 14",
    "llama-server": "llama-server --cache-reuse 256 (llama.vim requests + cache)",
    "baseline": "llama-cpp-python, no reuse",
}


def command_line() -> str:
    return shlex.join([".venv/bin/python", "-m", "benchmarks.typing", *sys.argv[1:]])


def run_command(argv: list[str], samples: str) -> str:
    """The command that measured ``samples``: this one, without ``--report-only FILE`` (an
    older samples file does not record its command)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--report-only":
            skip = True
        elif not arg.startswith("--report-only="):
            out.append(arg)
    if "--samples" not in out:
        out += ["--samples", samples]
    return shlex.join([".venv/bin/python", "-m", "benchmarks.typing", *out])


def table(columns: list[tuple[str, dict[str, float]]]) -> list[str]:
    """A markdown table, one column per side."""
    rows = [
        ("requests", "requests", "{:.0f}"),
        ("latency p50, all keystrokes (ms)", "p50_ms", "{:.0f}"),
        ("latency p95, all keystrokes (ms)", "p95_ms", "{:.0f}"),
        ("keystrokes that ran the model", "model_calls", "{:.0f}"),
        ("latency p50, model-run keystrokes (ms)", "model_p50_ms", "{:.0f}"),
        ("latency p95, model-run keystrokes (ms)", "model_p95_ms", "{:.0f}"),
        ("... after each pass's first keystroke, p50 (ms)", "warm_p50_ms", "{:.0f}"),
        ("... after each pass's first keystroke, p95 (ms)", "warm_p95_ms", "{:.0f}"),
        ("answered from a suggestion cache (typed-ahead)", "hits", "{:.0f}"),
        ("prompt tokens evaluated per model call, median", "evaluated_median_model", "{:.0f}"),
        ("prompt tokens evaluated per model call, mean", "evaluated_mean_model", "{:.1f}"),
        ("... as a share of the prompt, median (%)", "evaluated_share_pct", "{:.1f}"),
        ("prompt size per model call (tokens), median", "prompt_median", "{:.0f}"),
        ("keystrokes with a suggestion shown", "shown", "{:.0f}"),
        ("... whose whole suggestion was what got typed next (%)", "right_pct", "{:.0f}"),
        ("correct characters offered per keystroke", "right_chars", "{:.1f}"),
    ]
    out = ["| | " + " | ".join(name for name, _ in columns) + " |",
           "|---|" + "---:|" * len(columns)]
    for label, key, fmt in rows:
        cells = []
        for _, s in columns:
            v = s.get(key, float("nan"))
            cells.append("-" if v != v else fmt.format(v))
        if key == "hits":
            cells = [f"{c} ({s['typed_ahead']:.0f})" if c != "-" else c
                     for c, (_, s) in zip(cells, columns, strict=True)]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def report(args: argparse.Namespace, replays: list[Replay], seconds: float,
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    threads = args.threads or os.cpu_count() or 1
    lines = [
        "# Typing latency: ghost text per keystroke",
        "",
        "A function's body is cut out of its file and typed back, one keystroke at a time "
        "(Enter brings the next line's indentation, as auto-indent does); after each "
        f"keystroke the editor waits {args.pause * 1000:.0f} ms and asks for ghost text at "
        f"the cursor. {NUMBERS.get(len(args.sides), len(args.sides))} sides type the same "
        "keystrokes, each in a pass of its own, the "
        f"passes in turn ({args.rounds} round(s); the baseline, which keeps no state, once, "
        f"on every {args.baseline_every}. keystroke)"
        + (f". After opening the file the cursor rests {args.think:g} s before the first "
           "keystroke, and each client does what it does then: plancode's editor plugins "
           "send `plancode/cursor` (the server computes the suggestion there while idle), "
           "llama.vim sends its ring update (the extra context, `n_predict: 0`)"
           if args.think > 0 else "") + ":",
        "",
        f"- **{SIDE_NAMES['server']}**: `plancode serve` over stdio, timed by the client.",
        f"- **{SIDE_NAMES['llama-server']}**: llama-server built from the llama.cpp source "
        "llama-cpp-python vendors (`benchmarks/build_llama_server.sh`: same commit, same "
        "flags), same model file and threads, `--cache-reuse 256 -np 1 -fa off`, driven by "
        "llama.vim's `/infill` request shape (`input_prefix`, `input_suffix`, `input_extra`, "
        f"`prompt`, `cache_prompt: true`, `t_max_predict_ms: {args.budget_ms}` — the same "
        "budget plancode gets) behind llama.vim's client-side suggestion cache; greedy.",
        f"- **{SIDE_NAMES['baseline']}**: the same FIM prompt from a reset state each time.",
        *([f"- **{SIDE_NAMES['before']}**: the same LSP pass against `plancode serve` run from "
           f"a checkout of commit `{args.before}` (prefix-only KV reuse, whole suggestions, no "
           "prefetch, no other-file context), on the same model file and threads."]
          if "before" in args.sides else []),
        "",
        "Both plancode and llama-server get the same other-file context "
        f"({', '.join(f'`{f}`' for f in args.context_files) or 'none'}: opened in the "
        "editor / sent as `input_extra`); the baseline gets none.",
        "",
    ]
    for n, replay in enumerate(replays):
        sc = replay.scenario
        tuned = " (the replay plancode was tuned on)" if n == 0 else \
            " (a second file, not tuned on)"
        lines += [f"## `{sc.source}`: `{sc.function}`{tuned}", "",
                  f"{len(sc.keystrokes)} keystrokes typed:", "", "```python", sc.body, "```",
                  ""]
        columns = [(SIDE_NAMES[side], summarize(replay.samples[side], sc.rest))
                   for side in args.sides if side in replay.samples]
        lines += table(columns) + [""]
        by = dict(zip(args.sides, [c[1] for c in columns], strict=False))
        if "server" in by and "llama-server" in by:
            s, ls = by["server"], by["llama-server"]
            lines += [f"plancode / llama-server at p50: all keystrokes "
                      f"{s['p50_ms']:.0f} / {ls['p50_ms']:.0f} ms, model-run keystrokes "
                      f"{s['model_p50_ms']:.0f} / {ls['model_p50_ms']:.0f} ms.", ""]
            lines += targets(s, ls, by.get("before")) + [""]
        for key, stats in replay.stats.items():
            bg = {k: stats.get(k) for k in ("answered_early", "cancelled", "debounced",
                                            "prefetches", "prefetches_cancelled",
                                            "background_evaluated_tokens", "settled_tokens")}
            prefetch_hits = stats.get("fim_cache", {}).get("prefetch_hits")
            lines.append(f"- server counters, {key}: {bg}, prefetch hits {prefetch_hits}, "
                         f"context {stats.get('context')}")
        lines.append("")
        if replay.ablations:
            lines += ["### One piece off at a time (server only, one pass each)", ""]
            cols = [("all on", summarize(replay.samples["server"], sc.rest))]
            cols += [(name, summarize(got, sc.rest)) for name, got in replay.ablations.items()]
            lines += table(cols) + [""]
    lines += notes(args, load)
    shared = ", shared with other jobs" if busy(load) else ""
    lines += [
        "## Command and machine",
        "",
        "```",
        args.measured_by,
        "```",
        "",
        f"- Date: {args.started}",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores{shared}; "
        f"{threads} threads on every side; {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}",
        f"- Load average (1, 5, 15 min) before the run {fmt_load(load[0])} (it lags: it "
        f"still counts what ran before), after it {fmt_load(load[1])}: absolute times are "
        "only comparable within this run",
        f"- Model: {args.model} (CPU), n_ctx {args.n_ctx}, at most {args.max_tokens} tokens "
        f"per suggestion, greedy; llama-cpp-python {version('llama_cpp_python')} (llama.cpp "
        f"vendored in it, also built as llama-server), pygls {version('pygls')}",
        f"- Wall time of the run: {seconds:.0f} s (model loads and pauses included)",
    ]
    if args.plot:
        lines += ["", f"![latency per keystroke]({Path(args.plot).name})"]
    return "\n".join(lines) + "\n"


def targets(s: dict, ls: dict, before: dict | None) -> list[str]:
    """Issue 14's targets against this replay's figures, met or not, as they fell."""
    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    share_mean = 100 * s["evaluated_mean_model"] / s["prompt_median"] if s["prompt_median"] \
        else float("nan")
    out = [
        "Against issue 14's targets:",
        "",
        f"- model-run p50 <= 300 ms: {s['model_p50_ms']:.0f} ms, "
        f"{mark(s['model_p50_ms'] <= 300)}",
        f"- model-run p95 <= 800 ms: {s['model_p95_ms']:.0f} ms with each pass's cold first "
        f"keystroke, {mark(s['model_p95_ms'] <= 800)}; {s['warm_p95_ms']:.0f} ms after it, "
        f"{mark(s['warm_p95_ms'] <= 800)}",
        f"- plancode <= llama-server at p50: model-run {s['model_p50_ms']:.0f} vs "
        f"{ls['model_p50_ms']:.0f} ms, {mark(s['model_p50_ms'] <= ls['model_p50_ms'])}; all "
        f"keystrokes {s['p50_ms']:.0f} vs {ls['p50_ms']:.0f} ms (both suggestion-cache hits; "
        f"plancode's cache is one JSON-RPC hop away, llama.vim's in the editor), "
        f"{mark(s['p50_ms'] <= ls['p50_ms'])}",
        f"- prompt tokens evaluated per model call <= 5% of the prompt: median "
        f"{s['evaluated_share_pct']:.1f}%, {mark(s['evaluated_share_pct'] <= 5)}; mean "
        f"{share_mean:.1f}% (the cold first calls), {mark(share_mean <= 5)}",
    ]
    if before is not None:
        out.append(f"- suggestions no worse than before issue 14: correct characters per "
                   f"keystroke {s['right_chars']:.1f} vs {before['right_chars']:.1f}, "
                   f"{mark(s['right_chars'] >= before['right_chars'])}; whole suggestion right "
                   f"{s['right_pct']:.0f}% vs {before['right_pct']:.0f}%, "
                   f"{mark(s['right_pct'] >= before['right_pct'])}")
    return out


def busy(load: tuple[tuple[float, ...], ...]) -> bool:
    """Whether the 1-minute load average at the end of the run exceeded the core count by
    half a core or more: then other jobs shared the machine with the benchmark (the average
    before the run still counts whatever ran before it)."""
    return load[1][0] >= (os.cpu_count() or 1) + 0.5


def notes(args: argparse.Namespace, load: tuple[tuple[float, ...], ...]) -> list[str]:
    """What the numbers mean (the figures are in the tables above)."""
    quiet = ("- **Load**: nothing else ran on the machine (load average below); the sides "
             "ran in turn, pass after pass, on the same cores.")
    shared = ("- **Load**: the machine was shared with other jobs (the load average below "
              "is above the core count). Absolute times here are inflated over an idle "
              "machine, and unevenly; the sides ran in turn, pass after pass, so each saw "
              "the same kind of load, but only comparisons within this run mean much.")
    return [
        "## What the numbers mean",
        "",
        "- **Latency** is wall time per keystroke's request, timed by the client: for "
        "plancode from sending `textDocument/inlineCompletion` to its answer (JSON-RPC over "
        "stdio included, the pause before it not); for llama-server the client-side cache "
        "lookup and, on a miss, the `/infill` HTTP request; for the baseline "
        "`Llama.reset()` plus `create_completion` in-process.",
        "- **Model-run keystrokes** are the ones a side answered by running the model (not "
        "from a suggestion cache). The first keystroke of every pass finds an empty cache "
        "and evaluates the whole prompt (every side does; 2-3.5 s here); with few model "
        "runs in a pass it alone sets the p95, so the rows *after each pass's first "
        "keystroke* leave it out. plancode answers a multi-line suggestion with its whole "
        f"lines once {args.budget_ms} ms have passed (the first line as soon as it is done, "
        "if later) and keeps decoding the rest in the background; llama-server stops "
        f"decoding at the first line end after `t_max_predict_ms` ({args.budget_ms} ms).",
        "- **Prompt tokens evaluated per model call**: plancode's from `plancode/stats` "
        "(the engine's count for that request; background work -- the rest of a block, "
        "settling moved cells, prefetches -- is counted apart, in the server counters "
        "line), llama-server's from its reply (`timings.prompt_n`), the baseline's whole "
        "prompt. The prompt sizes differ: plancode's and llama-server's carry the other-file "
        "context, llama-server adds its repository header and formats the prompt its own "
        "way (this commit puts `prompt` at the end of the prefix, before the suffix).",
        "- **What makes plancode's side fast** (each switched off in the ablation table): "
        "the cursor line goes after the FIM middle token, so typing on a line only appends "
        "to the prompt (one token evaluated per keystroke; the last token of the line, back "
        "to the start of the word under the cursor, is re-spelled by the model: token "
        "healing, docs/engine.md); Enter or a window move shifts the cached suffix instead "
        "of re-evaluating it (KV shifting, settled exactly in spare time); a block is "
        "answered with its first whole lines at the budget and finished in the background; "
        "after a suggestion the next one is prefetched; a newer keystroke cancels within "
        "one token.",
        "- **Suggestion quality**: a suggestion is *right* when the body typed next starts "
        "with all of it; *correct characters offered* counts, per keystroke, how many "
        "characters of the suggestion on screen were what got typed next (0 when nothing is "
        "shown), which also credits a long suggestion that is right for its first lines.",
        shared if busy(load) else quiet,
        "",
    ]


def fmt_load(load: tuple[float, ...]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)


def plot(path: Path, replays: list[Replay], sides: list[str]) -> bool:
    """Latency per keystroke and its distribution, every side, one row per replay."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    colors = {"server": "tab:blue", "llama-server": "tab:orange", "baseline": "tab:red",
              "before": "tab:gray"}
    fig, axes = plt.subplots(len(replays), 2, figsize=(12, 4 * len(replays)), squeeze=False)
    for row, replay in zip(axes, replays, strict=True):
        left, right = row
        n = len(replay.scenario.keystrokes)
        for side in sides:
            samples = replay.samples.get(side, [])
            first = {}
            for s in samples:  # the first round's sample of each keystroke
                first.setdefault(s.key, s)
            xs = sorted(first)
            left.plot([x + 1 for x in xs], [first[x].seconds * 1000 for x in xs],
                      color=colors[side], lw=1, marker="." if side == "baseline" else None,
                      label=SIDE_NAMES[side])
            ms = sorted(s.seconds * 1000 for s in samples)
            if ms:
                right.step(ms, [(i + 1) / len(ms) for i in range(len(ms))],
                           color=colors[side], label=SIDE_NAMES[side])
        left.axhline(300, color="grey", ls="--", lw=0.8)
        title = f"{replay.scenario.source}:{replay.scenario.function}"
        left.set(yscale="log", xlabel="keystroke", ylabel="latency (ms)", xlim=(0, n + 1),
                 title=f"{title}: per keystroke (round 1)")
        left.legend(fontsize=7)
        right.axvline(300, color="grey", ls="--", lw=0.8)
        right.set(xscale="log", xlabel="latency (ms)", ylabel="fraction of keystrokes",
                  title="distribution (all rounds)")
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", default=os.environ.get("PLANCODE_MODEL", DEFAULT_MODEL),
                   help="catalog name or .gguf path (default $PLANCODE_MODEL or the default)")
    p.add_argument("--replay", action="append", default=[],
                   help="FILE:FUNCTION whose body is typed (repeatable; default: "
                   "server/analysis/splice.py:_find_target and "
                   "server/lsp/positions.py:to_index)")
    p.add_argument("--context-files", default="server/analysis/functions.py",
                   help="comma-separated files opened beside the typed one ('' for none)")
    p.add_argument("--sides", default="server,llama-server,baseline",
                   help="comma-separated: server, llama-server, baseline")
    p.add_argument("--rounds", type=int, default=2, help="passes of each side, in turn")
    p.add_argument("--baseline-every", type=int, default=3,
                   help="the baseline types every keystroke but asks on every N-th")
    p.add_argument("--ablate", action="store_true",
                   help="also run the server with one piece off at a time (first replay)")
    p.add_argument("--chars", type=int, default=150, help="keystrokes to type (0: the whole body)")
    p.add_argument("--pause", type=float, default=0.1,
                   help="seconds between a keystroke and its request")
    p.add_argument("--threads", type=int, default=Settings().threads(),
                   help="llama.cpp threads on every side (default: one per core)")
    p.add_argument("--n-ctx", type=int, default=Settings().n_ctx, help="context window")
    p.add_argument("--max-tokens", type=int, default=Settings().inline_max_tokens,
                   help="most tokens per suggestion")
    p.add_argument("--budget-ms", type=int, default=Settings().inline_budget_ms,
                   help="plancode's inline_budget_ms and llama-server's t_max_predict_ms")
    p.add_argument("--think", type=float, default=0.0,
                   help="seconds the cursor rests in the opened file before the first "
                   "keystroke (plancode's plugins send plancode/cursor; llama.vim updates its "
                   "ring of extra context); 0 types at once")
    p.add_argument("--before", default="",
                   help="also type through the server of this git commit (a 'before' side, "
                   "run from a worktree of it), e.g. the commit before issue 14")
    p.add_argument("--llama-server", default="", help="llama-server binary (default: the "
                   "one benchmarks/build_llama_server.sh built)")
    p.add_argument("--out", default="docs/typing.md", help="markdown report ('' to skip)")
    p.add_argument("--plot", default="docs/typing-latency.png", help="PNG plot ('' to skip)")
    p.add_argument("--samples", default="", help="also write every request as JSON here")
    p.add_argument("--report-only", default="",
                   help="write the report from a --samples file of an earlier run (same "
                   "flags) instead of running anything")
    args = p.parse_args(argv)
    args.replay = args.replay or ["server/analysis/splice.py:_find_target",
                                  "server/lsp/positions.py:to_index"]
    args.sides = [s for s in args.sides.split(",") if s]
    unknown = set(args.sides) - set(SIDE_NAMES)
    if unknown:
        p.error(f"unknown side(s): {', '.join(sorted(unknown))}")
    args.context_files = [f for f in args.context_files.split(",") if f]
    args.before_root = None
    if args.before:
        args.before_root = worktree(args.before)
        if "before" not in args.sides:
            args.sides.insert(1, "before")
    elif "before" in args.sides:
        p.error("the 'before' side needs --before COMMIT")
    return args


def worktree(commit: str) -> Path:
    """A detached git worktree of ``commit`` (made once, then reused) to run its server from."""
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=ROOT,
                         capture_output=True, text=True)
    if sha.returncode != 0:
        raise SystemExit(f"--before {commit}: not a commit of this repository")
    path = Path(tempfile.gettempdir()) / f"plancode-before-{sha.stdout.strip()[:12]}"
    if not (path / "server").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(path),
                        sha.stdout.strip()], cwd=ROOT, check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.measured_by = command_line()
    args.started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    replays = []
    for spec in args.replay:
        source, _, function = spec.partition(":")
        scenario = build_scenario(ROOT / source, function, args.chars)
        if not scenario.keystrokes:
            raise SystemExit(f"{spec}: nothing to type")
        replays.append(Replay(scenario))
    if args.report_only:
        seconds, load = load_samples(Path(args.report_only), replays, args)
    else:
        model_path = ModelStore(progress=False).resolve(args.model)
        load_before = os.getloadavg()
        start = time.perf_counter()
        run(args, replays, model_path)
        seconds = time.perf_counter() - start
        load = (load_before, os.getloadavg())
    if args.plot and not plot(ROOT / args.plot, replays, args.sides):
        args.plot = ""
    text = report(args, replays, seconds, load)
    print(text)
    if args.out:
        (ROOT / args.out).write_text(text)
    if not args.report_only:
        save(args, replays, seconds, load)
    return 0


def save(args: argparse.Namespace, replays: list[Replay], seconds: float = float("nan"),
         load: Any = None) -> None:
    """Every request so far as JSON in ``--samples`` (``--report-only`` reads it back)."""
    if not args.samples:
        return
    Path(args.samples).write_text(json.dumps(
        [{"replay": f"{r.scenario.source}:{r.scenario.function}",
          "samples": {k: [asdict(s) for s in v] for k, v in r.samples.items()},
          "ablations": {k: [asdict(s) for s in v] for k, v in r.ablations.items()},
          "stats": r.stats, "seconds": seconds, "load": load, "command": args.measured_by,
          "started": args.started} for r in replays], indent=1))


def load_samples(path: Path, replays: list[Replay], args: argparse.Namespace
                 ) -> tuple[float, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Fill ``replays`` from an earlier run's ``--samples`` file; its wall time and load."""
    data = json.loads(path.read_text())
    for replay, saved in zip(replays, data, strict=True):
        replay.samples = {k: [Sample(**s) for s in v] for k, v in saved["samples"].items()}
        replay.ablations = {k: [Sample(**s) for s in v] for k, v in saved["ablations"].items()}
        replay.stats = saved["stats"]
    first = data[0]
    args.measured_by = first.get("command") or run_command(sys.argv[1:], str(path))
    args.started = first.get("started") or datetime.fromtimestamp(
        path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC (when the samples were saved)")
    load = first.get("load") or [[float("nan")] * 3] * 2
    return first.get("seconds", float("nan")), (tuple(load[0]), tuple(load[1]))


if __name__ == "__main__":
    sys.exit(main())
