"""The plancode language server object: the state the handlers share, nothing that handles.

Handlers live in ``lifecycle.py``, ``inline.py`` and ``implement.py`` as top-level functions
that take this server; ``server.py`` is the composition root that registers them. This module
imports none of them, so the handler modules can import it without a circle. It owns the
settings, the model manager, the background jobs and the :class:`InlineCompleter` (the
keystroke state). Nothing here writes to stdout: that is the protocol stream (logging goes to
stderr or ``--log-file``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.workspace import TextDocument

from plancode import __version__
from plancode.config import Settings
from plancode.errors import PlancodeError
from plancode.lsp.completer import InlineCompleter
from plancode.lsp.jobs import Jobs
from plancode.lsp.models import ModelManager

_LOAD_TOKENS = itertools.count(1)

log = logging.getLogger(__name__)

MAX_DOCUMENT_CHARS = 2_000_000


class PlancodeProtocol(LanguageServerProtocol):
    """pygls' protocol, plus ``$/cancelRequest`` reaching a running command.

    pygls 2.1.1 cancels an async request handler's task when the client cancels the request,
    but a command runs as a second task under the built-in ``workspace/executeCommand``
    handler, and the cancel stops only that outer one: pygls answers "cancelled" at once while
    the command runs on. A command inside :meth:`cancellable` gets what a request handler
    gets: its task is cancelled (``asyncio.CancelledError``). The hook is the public
    :meth:`handle_message` (every message the server reads), after pygls' own handling.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cancellable: dict[Any, asyncio.Task] = {}

    @contextmanager
    def cancellable(self) -> Iterator[None]:
        """While inside, ``$/cancelRequest`` for the current request cancels the current task."""
        msg_id, task = self.msg_id, asyncio.current_task()
        if msg_id is None or task is None:
            yield
            return
        self._cancellable[msg_id] = task
        try:
            yield
        finally:
            if self._cancellable.get(msg_id) is task:
                del self._cancellable[msg_id]

    def handle_message(self, message: Any) -> None:
        super().handle_message(message)
        if getattr(message, "method", None) == types.CANCEL_REQUEST:
            task = self._cancellable.pop(message.params.id, None)
            if task is not None:
                task.cancel()


class PlancodeServer(LanguageServer):
    """pygls' server plus plancode's state (handlers are registered by ``create_server``)."""

    def __init__(self) -> None:
        super().__init__("plancode", __version__, protocol_cls=PlancodeProtocol,
                         max_workers=4)
        self.settings = Settings.from_env()
        self.models = ModelManager(self._on_model_state)
        self.jobs = Jobs(self.models)
        self.inline = InlineCompleter(self.models.interactive, lambda: self.settings)
        self.verified_served = 0
        self._load_token: str | None = None

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
            self.inline.forget()
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
