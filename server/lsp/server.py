"""The composition root of the language server: ``create_server`` wires the handlers.

Handlers are top-level functions in ``lifecycle.py``, ``inline.py`` and ``implement.py`` that
take the :class:`~plancode.lsp.language_server.PlancodeServer`; they import that module and
never each other or this one, so every LSP module imports on its own.
"""

from __future__ import annotations

from lsprotocol import types

from plancode.lsp import implement, inline, lifecycle
from plancode.lsp.language_server import PlancodeServer


def create_server() -> PlancodeServer:
    """A server with every handler registered."""
    server = PlancodeServer()
    feature, command = server.feature, server.command

    feature(types.INITIALIZE)(lifecycle.initialize)
    feature(types.INITIALIZED)(lifecycle.initialized)
    feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(lifecycle.did_change_configuration)
    feature(types.SHUTDOWN)(lifecycle.shutdown)

    feature(types.TEXT_DOCUMENT_INLINE_COMPLETION,
            types.InlineCompletionOptions())(inline.inline_completion)
    feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())(inline.completion)
    feature(inline.STATS)(inline.stats)
    feature(inline.CURSOR)(inline.cursor)
    feature(types.TEXT_DOCUMENT_DID_OPEN)(inline.did_open)
    feature(types.TEXT_DOCUMENT_DID_SAVE)(inline.did_save)
    feature(types.TEXT_DOCUMENT_DID_CLOSE)(inline.did_close)

    feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.RefactorRewrite]))(implement.code_action)
    command(implement.COMMAND)(implement.implement)
    command(implement.LAST_RESULT)(implement.last_result)
    command(implement.ACCEPT)(implement.accept_answer)
    feature(implement.REQUEST)(implement.implement_request)
    return server
