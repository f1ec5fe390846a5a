"""Ghost text handlers: ``textDocument/inlineCompletion``, the ``completion`` fallback,
``plancode/stats``, ``plancode/cursor`` (warm the cache where the cursor rests), and the
document notifications that feed the context ring.

Each request: answer from the verified cache when the cursor sits in an empty function whose
plan-then-code job has finished (starting that job in the background when it has not),
otherwise ask the :class:`~plancode.lsp.completer.InlineCompleter` for a fill-in-the-middle
suggestion (cache first, then the model: KV-reused, answered first and finished later).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from lsprotocol import types

from plancode.analysis.functions import find_function
from plancode.lsp.jobs import job_key
from plancode.lsp.language_server import PlancodeServer, uri_to_path
from plancode.lsp.positions import line_texts, to_index, to_position
from plancode.lsp.verified import PLACEHOLDER_LINE, cursor_in_empty_body, verified_body

log = logging.getLogger(__name__)

STATS = "plancode/stats"
CURSOR = "plancode/cursor"


async def suggest(ls: PlancodeServer, uri: str,
                  position: types.Position) -> tuple[str, types.Range] | None:
    """The suggestion text and the range it replaces, or None."""
    doc = ls.document(uri)
    text = doc.source
    lines = line_texts(text)
    line, col = to_index(doc, lines, position)
    here = types.Range(start=position, end=position)

    # parse only where a verified body could go (a blank or placeholder line), not on every
    # keystroke of ordinary typing
    placeholder = PLACEHOLDER_LINE.match(lines[line]) is not None
    info = find_function(text, line) if placeholder and text.strip() else None
    path = uri_to_path(uri)
    if cursor_in_empty_body(info, lines, line) and path is not None and path.is_file():
        assert info is not None
        key = job_key(path, info, ls.settings)
        job = ls.jobs.get(key)
        if job is not None and job.future.done() and not job.future.cancelled() \
                and job.future.exception() is None:
            body = verified_body(text, info, job.future.result(), ls.settings.plan_comments)
            if body is not None:
                ls.inline.stats.inline_requests += 1
                ls.verified_served += 1
                line_range = types.Range(start=to_position(doc, lines, line, 0),
                                         end=to_position(doc, lines, line, len(lines[line])))
                return body, line_range
        elif job is None and ls.models.state == "ready" and ls.settings.inline_verify:
            # a job nobody asked for yet: never one that loads the larger model
            ls.jobs.start(key, uri, path, line, text, info,
                          dataclasses.replace(ls.settings, escalate_model=""))

    found = await ls.inline.suggest(uri, text, line, col)
    return (found, here) if found else None


async def inline_completion(ls: PlancodeServer,
                            params: types.InlineCompletionParams) -> types.InlineCompletionList:
    found = await suggest(ls, params.text_document.uri, params.position)
    if found is None:
        return types.InlineCompletionList(items=[])
    text, rng = found
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=text, range=rng)])


def stats(ls: PlancodeServer, *args: object) -> dict:
    """Counters for benchmarks and status bars: requests, cache hits, the last FIM
    request's prompt accounting, background work, the model state."""
    return {**ls.inline.report(), "verified_served": ls.verified_served,
            "model_state": ls.models.state}


async def completion(ls: PlancodeServer, params: types.CompletionParams) -> types.CompletionList:
    """For clients without inline completion: one item whose textEdit inserts the
    suggestion; its filterText starts with the word being typed so clients keep it."""
    found = await suggest(ls, params.text_document.uri, params.position)
    if found is None:
        return types.CompletionList(is_incomplete=True, items=[])
    text, rng = found
    doc = ls.document(params.text_document.uri)
    lines = line_texts(doc.source)
    line, col = to_index(doc, lines, params.position)
    word = re.search(r"[\w.]*$", lines[line][:col])
    typed = word.group(0) if word else ""
    first = text.strip().splitlines()[0] if text.strip() else text
    item = types.CompletionItem(
        label=first[:80] or "plancode",
        kind=types.CompletionItemKind.Snippet,
        detail="plancode",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                          value=f"```python\n{text}\n```"),
        text_edit=types.TextEdit(range=rng, new_text=text),
        insert_text_format=types.InsertTextFormat.PlainText,
        filter_text=typed + text,
        sort_text="0",
        preselect=True,
    )
    return types.CompletionList(is_incomplete=True, items=[item])


# -- documents: what the context ring learns from ------------------------------------------


def did_open(ls: PlancodeServer, params: types.DidOpenTextDocumentParams) -> None:
    """An opened file: its top chunk and its definitions join the context ring."""
    item = params.text_document
    ls.inline.opened(item.uri, item.text)


def did_save(ls: PlancodeServer, params: types.DidSaveTextDocumentParams) -> None:
    """A saved file: the chunk around the last edit joins the ring; definitions re-read."""
    uri = params.text_document.uri
    doc = ls.workspace.text_documents.get(uri)
    if doc is not None:
        ls.inline.saved(uri, doc.source)


def cursor(ls: PlancodeServer, params: object) -> None:
    """``plancode/cursor`` ``{textDocument: {uri}, position}``: where the cursor rests, sent
    (debounced) by plancode's editor plugins. The suggestion there is computed while the
    worker is idle, so the first keystroke after opening or moving is not a cold prompt."""
    uri = _field(_field(params, "textDocument"), "uri")
    pos = _field(params, "position")
    doc = ls.workspace.text_documents.get(uri) if isinstance(uri, str) else None
    if doc is None or pos is None or ls.models.state != "ready":
        return
    lines = line_texts(doc.source)
    try:
        position = types.Position(line=int(_field(pos, "line")),
                                  character=int(_field(pos, "character")))
        line, col = to_index(doc, lines, position)
    except Exception:  # noqa: BLE001 - a malformed or stale position: nothing to warm
        return
    ls.inline.warm(uri, doc.source, line, col)


def _field(obj: object, name: str) -> object:
    """A field of a custom message's params (pygls gives objects; plain dicts also work)."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def did_close(ls: PlancodeServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.inline.closed(params.text_document.uri)
