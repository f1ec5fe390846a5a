"""initialize / initialized / configuration / shutdown handlers."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from plancode.lsp.language_server import PlancodeServer


def _plancode_section(settings: Any) -> dict:
    """Settings may arrive flat or under a "plancode" key (VS Code sends the latter)."""
    if not isinstance(settings, dict):
        return {}
    inner = settings.get("plancode")
    return inner if isinstance(inner, dict) else settings


def initialize(ls: PlancodeServer, params: types.InitializeParams) -> None:
    options = params.initialization_options
    if options is not None and not isinstance(options, dict):
        ls.show(types.MessageType.Error, "plancode: initializationOptions must be an object")
        return
    if options:
        ls.apply_settings(_plancode_section(options), "initializationOptions")


def initialized(ls: PlancodeServer, params: types.InitializedParams) -> None:
    ls.models.load(ls.settings)  # in the background: requests are answered meanwhile


def did_change_configuration(ls: PlancodeServer,
                             params: types.DidChangeConfigurationParams) -> None:
    values = _plancode_section(params.settings)
    if values:
        ls.apply_settings(values, "setting")


def shutdown(ls: PlancodeServer, *args: Any) -> None:
    ls.jobs.shutdown()
    ls.inline.shutdown()
