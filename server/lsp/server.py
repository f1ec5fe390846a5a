"""The plancode language server: state shared by the handlers, lifecycle and configuration.

Handlers live in ``inline.py`` (ghost text and completion) and ``implement.py`` (verified
implementations); this module owns what they share: settings, the model manager, the FIM
cache, in-flight request tokens, and the background jobs. Nothing here writes to stdout: that
is the protocol stream (logging goes to stderr or ``--log-file``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.workspace import TextDocument

from server import __version__
from server.config import Settings
from server.engine.types import CancelToken
from server.errors import PlancodeError
from server.lsp.fim import SuggestionCache
from server.lsp.jobs import Jobs
from server.lsp.models import ModelManager

_LOAD_TOKENS = itertools.count(1)

log = logging.getLogger(__name__)

MAX_DOCUMENT_CHARS = 2_000_000


class PlancodeProtocol(LanguageServerProtocol):
    """Also tells the server about ``$/cancelRequest``: pygls can only cancel requests that
    have not started, and a command runs inside pygls' executeCommand wrapper, so long jobs
    register their own cancel hooks by request id."""

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        hook = getattr(self._server, "cancel_hooks", {}).pop(msg_id, None)
        if hook is not None:
            hook()
        super()._handle_cancel_notification(msg_id)


class PlancodeServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("plancode", __version__, protocol_cls=PlancodeProtocol,
                         max_workers=4)
        self.cancel_hooks: dict[Any, Any] = {}
        self.settings = Settings.from_env()
        self.models = ModelManager(self._on_model_state)
        self.jobs = Jobs(self.models)
        self.fim_cache = SuggestionCache()
        self._inflight: dict[str, CancelToken] = {}
        self._inflight_lock = threading.Lock()
        self._load_token: str | None = None
        self.stats: dict[str, Any] = {"inline_requests": 0, "inline_cache_hits": 0,
                                      "verified_served": 0, "evaluated_tokens_total": 0,
                                      "last_fim": None}

    # -- documents -------------------------------------------------------------------------
    def document(self, uri: str) -> TextDocument:
        """An open document (or a file on disk); unknown or huge documents are errors."""
        doc = self.workspace.text_documents.get(unquote(uri))
        if doc is None:
            path = uri_to_path(uri)
            if path is None or not path.is_file():
                raise JsonRpcInvalidParams(f"unknown document {uri}: it is not open and not a "
                                           "file on disk")
            doc = self.workspace.get_text_document(uri)
        if len(doc.source) > MAX_DOCUMENT_CHARS:
            raise JsonRpcInvalidParams(
                f"{uri} has {len(doc.source):,} characters; plancode handles files up to "
                f"{MAX_DOCUMENT_CHARS:,}")
        return doc

    def supersede(self, uri: str) -> CancelToken:
        """A token for a new request on ``uri``; the previous request's token is cancelled."""
        token = CancelToken()
        with self._inflight_lock:
            old = self._inflight.get(uri)
            self._inflight[uri] = token
        if old is not None:
            old.cancel()
        return token

    def record_fim(self, result: Any) -> None:
        """Account one FIM answer (a cache hit evaluates nothing)."""
        gen = result.generation
        if result.cached:
            self.stats["inline_cache_hits"] += 1
        evaluated = gen.evaluated_tokens if gen is not None else 0
        self.stats["evaluated_tokens_total"] += evaluated
        self.stats["last_fim"] = {
            "cached": result.cached,
            "evaluated_tokens": evaluated,
            "reused_tokens": gen.reused_tokens if gen is not None else 0,
            "prompt_tokens": gen.prompt_tokens if gen is not None else 0,
            "completion_tokens": gen.completion_tokens if gen is not None else 0,
            "seconds": round(result.seconds, 4),
        }

    # -- configuration ---------------------------------------------------------------------
    def apply_settings(self, values: dict[str, Any], source: str) -> bool:
        """Validate and apply settings; on error show which key and why, keep the old ones."""
        try:
            new = Settings.from_mapping(values, self.settings)
        except PlancodeError as exc:
            self.show(types.MessageType.Error, f"plancode: invalid {source}: {exc.message}. "
                      f"Keeping the previous value. ({exc.fix})")
            return False
        reload = self.models.needs_reload(new) and self.models.state != "idle"
        self.settings = new
        if reload:
            self.jobs.cancel_all()
            self.fim_cache = SuggestionCache()
            self.models.load(new)
        return True

    # -- messages and progress -------------------------------------------------------------
    def show(self, kind: types.MessageType, message: str) -> None:
        log.info("showMessage: %s", message)
        try:
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        except Exception:  # no client attached (unit use): logging is enough
            log.debug("could not send showMessage", exc_info=True)

    def supports_progress(self) -> bool:
        caps = self.client_capabilities
        return bool(caps and caps.window and caps.window.work_done_progress)

    def _on_model_state(self, state: str, message: str) -> None:
        """Model loading is reported as server-initiated $/progress and, on error, a message."""
        try:
            if state == "loading" and self.supports_progress():
                token = f"plancode-load-{next(_LOAD_TOKENS)}"  # unique per process
                self._load_token = token
                self.work_done_progress.create(token)
                self.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                    title="plancode", message=message, cancellable=False))
            elif state in {"ready", "error"} and self._load_token is not None:
                self.work_done_progress.end(self._load_token,
                                            types.WorkDoneProgressEnd(message=message))
                self._load_token = None
            if state == "error":
                self.show(types.MessageType.Error, f"plancode: {message}")
            self.window_log_message(types.LogMessageParams(
                type=types.MessageType.Info, message=f"plancode model: {state}: {message}"))
        except Exception:
            log.debug("could not report model state", exc_info=True)


def uri_to_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme not in {"file", ""}:
        return None
    return Path(unquote(parsed.path))


def create_server() -> PlancodeServer:
    """A server with every handler registered."""
    from server.lsp import implement, inline, lifecycle

    server = PlancodeServer()
    lifecycle.register(server)
    inline.register(server)
    implement.register(server)
    return server
