"""Engine for an OpenAI-compatible HTTP server: llama-server, vLLM, Ollama, llama-cpp-python.

With ``backend = "openai"`` the pipeline and the language server talk to a shared server
instead of loading a model in-process. Every call streams (server-sent events) and is read
event by event, so a cancelled request closes the connection within one streamed chunk (a
watcher thread shuts the socket, which also ends a read still waiting for the first token).
Only the standard library is used for HTTP; nothing here downloads or loads a model.

Requests carry the standard OpenAI fields (``temperature``, ``top_p``, ``max_tokens``,
``seed``, ``stop``) plus extras most self-hosted servers accept (``top_k``, ``min_p``,
``logprobs``, ``stream_options.include_usage``). A server that rejects the request (HTTP 400,
422, or 500 as llama-cpp-python answers) is asked once more with the standard fields only; if
that works, the extras are dropped for the rest of the engine's life. Stop strings are also
enforced here, on the streamed text, so a server that caps or ignores them still stops where
the pipeline expects.

What each server reports, and so what :class:`~plancode.engine.types.Generation` holds
(``reused_tokens`` is the prompt prefix the server took from its cache;
``evaluated_tokens = prompt_tokens - reused_tokens``):

================  =====================================  ====================================
server            prompt / completion tokens             cached (reused) prompt tokens
================  =====================================  ====================================
llama-server      ``usage`` in the last chunk            ``usage.prompt_tokens_details``
                                                         ``.cached_tokens`` and
                                                         ``timings.cache_n`` (older builds:
                                                         ``prompt_tokens - timings.prompt_n``)
vLLM              ``usage`` (``include_usage``)          ``prompt_tokens_details
                                                         .cached_tokens`` only when started
                                                         with ``--enable-prompt-tokens-details``
Ollama            ``usage`` (``include_usage``)          not reported (0)
llama-cpp-python  not reported when streaming: prompt    not reported (0)
                  tokens are 0, completion tokens are
                  counted from the stream
OpenAI            ``usage`` (``include_usage``)          ``prompt_tokens_details.cached_tokens``
================  =====================================  ====================================

When a count is not reported, completion tokens are the streamed logprob entries (one per
token) or else the streamed text chunks. ``prompt_seconds`` is the time from sending the
request to the first streamed text (queueing and network included), ``decode_seconds`` the
rest of the stream.

Fill-in-the-middle: llama-server has a native ``/infill`` endpoint that knows the model's own
FIM tokens and tokenizes the user's text without special tokens; it is tried first (once) and
used whenever the server has it. Elsewhere the prompt is rendered with the configured
:class:`~plancode.prompts.FimFormat` and sent to ``/completions`` (the server parses
special-token strings in it, so code that contains the format's control strings can confuse the
model); with ``fim_format=None`` the prefix is simply continued.

llama-cpp-python's server interrupts a stream when another request arrives (its
``interrupt_requests`` setting, on by default); such a stream ends without a finish reason and
is reported as an error. Start it with ``--interrupt_requests False`` when the language server
(which may run a keystroke completion beside a background job) talks to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from plancode.engine.types import CancelToken, Generation, OnText, SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import FIM_FORMATS, FimFormat, Message

CONNECT_TIMEOUT = 5.0  # seconds to open the TCP connection: an absent server fails fast
READ_TIMEOUT = 120.0  # seconds the server may stay silent (long prompts on a busy CPU server)
_CANCEL_POLL = 0.02  # seconds between the watcher's looks at the cancel token
_MAX_STANDARD_STOPS = 4  # OpenAI's own limit, honoured when the extras are dropped
_FINISH = {"stop": "stop", "eos": "stop", "word": "stop", "length": "length",
           "limit": "length", "max_tokens": "length"}
_NO_INFILL = (404, 405, 501)  # the server has no /infill, or the model has no FIM tokens
_REFUSED = (400, 422, 500)  # a refused request (llama-cpp-python answers 500 to bad fields)

BodyFor = Callable[[bool], dict[str, Any]]  # extras allowed? -> request body


class _StatusError(Exception):
    """An HTTP error answer, kept apart so callers can retry or fall back before reporting."""

    def __init__(self, url: str, status: int, detail: str) -> None:
        super().__init__(f"{url} answered HTTP {status}: {detail}")
        self.url, self.status, self.detail = url, status, detail

    def to_plancode(self) -> PlancodeError:
        return PlancodeError(
            str(self),
            "check remote_url (the server's base URL, usually ending in /v1), that the server "
            "is running, and that the model setting names a model it serves",
        )


def _unreachable(url: str, exc: BaseException) -> PlancodeError:
    return PlancodeError(
        f"cannot reach {url}: {exc}",
        "check remote_url and that the server is running and listening there (e.g. "
        "`llama-server -m MODEL.gguf --port 8080` serves http://127.0.0.1:8080/v1)",
    )


class _ServerError(Exception):
    """An error the server reported inside the stream (e.g. the prompt overflowed its context)."""


class _CancelWatch:
    """Shuts a connection's socket as soon as ``cancel`` fires, unblocking any pending read."""

    def __init__(self, conn: http.client.HTTPConnection, cancel: CancelToken | None) -> None:
        self._conn = conn
        self._cancel = cancel
        self._done = threading.Event()
        if cancel is not None:
            threading.Thread(target=self._watch, daemon=True, name="plancode-remote-cancel").start()

    def _watch(self) -> None:
        assert self._cancel is not None
        while not self._done.wait(_CANCEL_POLL):
            if self._cancel.cancelled:
                sock = self._conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):  # already closed
                        sock.shutdown(socket.SHUT_RDWR)
                return

    def stop(self) -> None:
        self._done.set()


@dataclass
class _Collector:
    """Folds streamed events (OpenAI chunks or llama-server's native ones) into a generation."""

    stops: list[str]
    on_text: OnText | None
    text: str = ""
    pieces: int = 0
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    first_at: float | None = None
    cut: bool = False  # a stop string was found here: the rest of the stream is not wanted

    def feed(self, event: dict[str, Any]) -> None:
        if "error" in event:
            err = event["error"]
            raise _ServerError(err.get("message", err) if isinstance(err, dict) else err)
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        if isinstance(event.get("timings"), dict):
            self.timings = event["timings"]
        choices = event.get("choices")
        if isinstance(choices, list):
            if not choices:
                return  # a usage-only chunk
            choice = choices[0]
            delta = choice.get("delta") or choice.get("message") or {}
            piece = delta.get("content") or choice.get("text") or ""
            logprobs = _logprobs(choice.get("logprobs"))
            reason = choice.get("finish_reason")
        elif "content" in event:  # llama-server's native stream (/infill)
            piece = event.get("content") or ""
            logprobs = _logprobs({"content": event.get("completion_probabilities")})
            reason = event.get("stop_type", "stop") if event.get("stop") else None
            if event.get("stop"):
                self.usage = {"prompt_tokens": event.get("tokens_evaluated"),
                              "completion_tokens": event.get("tokens_predicted")}
        else:
            raise ValueError(f"unexpected event {json.dumps(event)[:200]}")
        self.logprobs.extend(logprobs)
        if reason:
            self.finish = _FINISH.get(str(reason), "stop")
        if piece:
            self._add(str(piece))

    def _add(self, piece: str) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.pieces += 1
        start = max(0, len(self.text) - max((len(s) for s in self.stops), default=0))
        self.text += piece
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.finish, self.cut = "stop", True
        elif self.on_text is not None:
            self.on_text(self.text)

    def generation(self, started: float, cancelled: bool) -> Generation:
        end = time.perf_counter()
        first = self.first_at if self.first_at is not None else end
        prompt = _int(self.usage.get("prompt_tokens"))
        if prompt is None and _int(self.timings.get("prompt_n")) is not None:
            prompt = _int(self.timings.get("prompt_n")) + (_int(self.timings.get("cache_n")) or 0)
        prompt = prompt or 0
        reused = min(max(self._cached(prompt), 0), prompt)
        completion = _int(self.usage.get("completion_tokens"))
        if completion is None or self.cut or cancelled:
            completion = len(self.logprobs) or self.pieces
        return Generation(
            text=self.text,
            finish_reason="cancelled" if cancelled else (self.finish or "stop"),
            prompt_tokens=prompt,
            evaluated_tokens=prompt - reused,
            reused_tokens=reused,
            completion_tokens=completion,
            logprobs=self.logprobs,
            prompt_seconds=first - started,
            decode_seconds=end - first,
        )

    def _cached(self, prompt: int) -> int:
        details = self.usage.get("prompt_tokens_details")
        if isinstance(details, dict) and _int(details.get("cached_tokens")) is not None:
            return _int(details["cached_tokens"]) or 0
        if _int(self.timings.get("cache_n")) is not None:
            return _int(self.timings["cache_n"]) or 0
        evaluated = _int(self.timings.get("prompt_n"))
        return prompt - evaluated if evaluated is not None and prompt else 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> int | None:
    return int(value) if _is_number(value) else None


def _logprobs(obj: Any) -> list[float]:
    """Per-token logprobs from a chat (``content``) or legacy (``token_logprobs``) object."""
    if not isinstance(obj, dict):
        return []
    if isinstance(obj.get("content"), list):
        values = [e.get("logprob") for e in obj["content"] if isinstance(e, dict)]
    elif isinstance(obj.get("token_logprobs"), list):
        values = obj["token_logprobs"]
    else:
        return []
    return [float(v) for v in values if _is_number(v)]


def _sse_events(resp: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """Yield each ``data:`` payload of a server-sent event stream as JSON, up to ``[DONE]``.

    A server that ignored ``stream`` and answered with one JSON document yields that document.
    """
    kind = resp.getheader("Content-Type") or ""
    if "json" in kind and "event-stream" not in kind:
        yield json.loads(resp.read())
        return
    data: list[str] = []
    while True:
        raw = resp.readline()
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line:  # comments (": ping") and event:, id:, retry: lines carry nothing here
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value[1:] if value.startswith(" ") else value)
            continue
        if data:  # a blank line (or the end of the stream) completes an event
            payload = "\n".join(data).strip()
            data = []
            if payload == "[DONE]":
                return
            yield json.loads(payload)
        if not raw:
            return


def _no_infill(exc: _StatusError) -> bool:
    """True when an /infill answer means "not here" rather than "bad request"."""
    if exc.status in _NO_INFILL:
        return True
    return exc.status == 400 and any(w in exc.detail.lower() for w in ("infill", "fim"))


def _error_detail(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300] or "(empty body)"
    if isinstance(doc, dict):
        err = doc.get("error", doc.get("detail", doc.get("message", doc)))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return text[:300]


def fim_format_name(model: str) -> str:
    """The FIM_FORMATS key a served model's name suggests (``qwen``, the default, if none)."""
    lowered = model.lower()
    return next((name for name in FIM_FORMATS if name in lowered), "qwen")


class OpenAIEngine:
    """A model served over the OpenAI HTTP API. Thread-safe: each call has its own connection.

    ``remote_url`` is the API base (``http://HOST:PORT/v1``); ``model`` is sent as the request's
    model name (servers that serve one model ignore it; vLLM and Ollama need the served name).
    ``fim_format`` is a key of :data:`plancode.prompts.FIM_FORMATS` naming the served model's FIM
    tokens, or None for a model without them. ``read_timeout`` bounds how long the server may
    stay silent mid-request; connecting is bounded by ``connect_timeout``.
    """

    def __init__(
        self,
        remote_url: str,
        model: str = "",
        fim_format: str | None = "qwen",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        api_key: str | None = None,
        use_infill: bool = True,
    ) -> None:
        self.base_url = remote_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PlancodeError(f"remote_url {remote_url!r} is not an http(s) URL",
                                "set remote_url to the server's base URL, e.g. "
                                "http://127.0.0.1:8080/v1")
        if fim_format is not None and fim_format not in FIM_FORMATS:
            raise PlancodeError(f"unknown FIM format {fim_format!r}",
                                f"use one of {', '.join(FIM_FORMATS)} (or None)")
        self.model = model
        self._fim = FIM_FORMATS[fim_format] if fim_format is not None else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._api_key = api_key
        self._extras = True  # False once the server has refused the non-standard fields
        self._infill: bool | None = None if use_infill else False  # None: not probed yet

    @property
    def fim_format(self) -> FimFormat | None:
        return self._fim

    @property
    def uses_infill(self) -> bool | None:
        """Whether FIM goes to llama-server's ``/infill`` (None until the first FIM call)."""
        return self._infill

    # -- the Engine contract ---------------------------------------------------------------
    def chat(
        self,
        messages: list[Message],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
    ) -> Generation:
        """The assistant's reply to ``messages`` (the server applies the chat template)."""
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]

        def body(extras: bool) -> dict[str, Any]:
            more = {"logprobs": True, "top_logprobs": 1} if extras else {}
            return {"messages": msgs, **self._sampling(params, extras), **more}

        return self._generate("/chat/completions", body, params.stop, cancel, on_text)

    def complete(
        self,
        prompt: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        on_text: OnText | None = None,
    ) -> Generation:
        """Continue raw text (servers parse special-token strings in ``prompt``)."""

        def body(extras: bool) -> dict[str, Any]:
            more = {"logprobs": 1} if extras else {}
            return {"prompt": prompt, **self._sampling(params, extras), **more}

        return self._generate("/completions", body, params.stop, cancel, on_text)

    def fim(
        self,
        prefix: str,
        suffix: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
    ) -> Generation:
        """Fill the hole between ``prefix`` and ``suffix`` (``/infill`` where the server has it)."""
        if cancel is not None and cancel.cancelled:
            return Generation("", "cancelled", 0, 0, 0, 0)
        if self._infill is not False:
            try:
                gen = self._infill_call(prefix, suffix, params, cancel)
            except _StatusError as exc:
                if not _no_infill(exc):
                    raise exc.to_plancode() from None
                self._infill = False
            else:
                self._infill = True
                return gen
        fmt = self._fim
        if fmt is None:
            return self.complete(prefix, params, cancel)
        stops = tuple(dict.fromkeys(params.stop + fmt.stops))
        rendered = dataclasses.replace(params, stop=stops)
        return self.complete(fmt.render(prefix, suffix), rendered, cancel)

    # -- requests --------------------------------------------------------------------------
    def check(self) -> None:
        """Raise a PlancodeError unless something answers HTTP at ``remote_url`` (GET /models)."""
        url = f"{self.base_url}/models"
        conn = self._connect(url)
        assert conn.sock is not None
        conn.sock.settimeout(self.connect_timeout)  # a live server lists its models at once
        try:
            conn.request("GET", urlsplit(url).path, headers=self._headers())
            conn.getresponse().read()
        except (OSError, http.client.HTTPException) as exc:
            raise _unreachable(url, exc) from None
        finally:
            conn.close()

    def _sampling(self, params: SamplingParams, extras: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "stream": True,
        }
        if self.model:
            body["model"] = self.model
        stops = [s for s in params.stop if s]
        if stops:
            body["stop"] = stops if extras else stops[:_MAX_STANDARD_STOPS]
        if extras:
            body.update(top_k=params.top_k, min_p=params.min_p,
                        stream_options={"include_usage": True})
        return body

    def _infill_call(self, prefix: str, suffix: str, params: SamplingParams,
                     cancel: CancelToken | None) -> Generation:
        root = self.base_url.removesuffix("/v1")
        body = {
            "input_prefix": prefix,
            "input_suffix": suffix,
            "n_predict": params.max_tokens,
            "temperature": params.temperature,
            "top_k": params.top_k,
            "top_p": params.top_p,
            "min_p": params.min_p,
            "seed": params.seed,
            "stop": [s for s in params.stop if s],
            "n_probs": 1,
            "cache_prompt": True,
            "stream": True,
        }
        return self._run(f"{root}/infill", body, params.stop, cancel, None)

    def _generate(self, path: str, body: BodyFor, stops: tuple[str, ...],
                  cancel: CancelToken | None, on_text: OnText | None) -> Generation:
        """POST ``path`` with the extras if the server takes them, else with standard fields."""
        if cancel is not None and cancel.cancelled:
            return Generation("", "cancelled", 0, 0, 0, 0)
        url = f"{self.base_url}{path}"
        try:
            return self._run(url, body(self._extras), stops, cancel, on_text)
        except _StatusError as exc:
            if not (self._extras and exc.status in _REFUSED):
                raise exc.to_plancode() from None
            first = exc
        try:
            gen = self._run(url, body(False), stops, cancel, on_text)
        except _StatusError:
            raise first.to_plancode() from None  # not the extras' fault: report the first answer
        self._extras = False
        return gen

    def _run(self, url: str, body: dict[str, Any], stops: tuple[str, ...],
             cancel: CancelToken | None, on_text: OnText | None) -> Generation:
        """Send one streaming request and fold its events; raises _StatusError on HTTP errors."""
        started = time.perf_counter()
        conn = self._connect(url)
        watch = _CancelWatch(conn, cancel)
        collector = _Collector([s for s in stops if s], on_text)
        answered = False  # the server sent a successful status line
        try:
            conn.request("POST", urlsplit(url).path, body=json.dumps(body).encode("utf-8"),
                         headers=self._headers(stream=True))
            resp = conn.getresponse()
            if resp.status >= 400:
                raise _StatusError(url, resp.status, _error_detail(resp.read(65536)))
            answered = True
            for event in _sse_events(resp):
                collector.feed(event)
                if collector.cut or (cancel is not None and cancel.cancelled):
                    break
        except (_StatusError, _ServerError, OSError, http.client.HTTPException,
                ValueError) as exc:
            if cancel is None or not cancel.cancelled:  # a shut socket is how cancel ends a read
                raise self._failure(url, exc, answered) from None
        finally:
            watch.stop()
            conn.close()
        cancelled = cancel is not None and cancel.cancelled and collector.finish is None
        if collector.finish is None and not cancelled:
            raise PlancodeError(
                f"{url} ended the stream before the generation finished",
                "check the server's log; llama-cpp-python's server stops a stream when another "
                "request arrives: start it with --interrupt_requests False",
            )
        return collector.generation(started, cancelled)

    def _failure(self, url: str, exc: Exception, answered: bool) -> Exception:
        """The error to raise for ``exc`` (a _StatusError stays one, for retries/fallbacks)."""
        if isinstance(exc, _StatusError):
            return exc
        if isinstance(exc, _ServerError):
            return PlancodeError(f"{url} reported an error: {exc}",
                                 "see the server's log; a prompt longer than the server's "
                                 "context needs a larger context there (llama-server -c N)")
        if isinstance(exc, TimeoutError):
            return PlancodeError(f"{url} sent nothing for {self.read_timeout:g} s",
                                 "the server may be overloaded or stuck: check its log, or "
                                 "raise the read timeout")
        if isinstance(exc, OSError | http.client.HTTPException) and not answered:
            return _unreachable(url, exc)
        return PlancodeError(f"{url} sent a response plancode cannot read: {exc}",
                             "check that remote_url points at an OpenAI-compatible server (its "
                             "/v1 base) and look at the server's log")

    def _connect(self, url: str) -> http.client.HTTPConnection:
        """Open the TCP connection within ``connect_timeout``, then allow ``read_timeout``."""
        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname or "", parts.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _unreachable(url, exc) from None
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout)
        return conn

    def _headers(self, stream: bool = False) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers
