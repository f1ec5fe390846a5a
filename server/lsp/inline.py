"""Ghost text while typing: ``textDocument/inlineCompletion`` and a ``completion`` fallback.

Each request: supersede the document's previous request, answer from the verified cache when
the cursor sits in an empty function whose plan-then-code job has finished (starting that job
in the background when it has not), otherwise make a fill-in-the-middle suggestion on the
interactive engine (KV-reused, cached by the text around the cursor, trimmed by stop rules).
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor

from lsprotocol import types

from server.analysis.functions import FunctionInfo, find_function
from server.lsp.fim import build_request, complete_fim
from server.lsp.jobs import job_key
from server.lsp.positions import line_texts, to_index, to_position
from server.lsp.server import PlancodeServer, uri_to_path
from server.pipeline import PipelineResult

log = logging.getLogger(__name__)

_FIM_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plancode-fim")
STATS = "plancode/stats"
PLACEHOLDER_LINE = re.compile(r"^\s*(pass|\.\.\.)?\s*$")


def plan_comment(result: PipelineResult, indent: str) -> str:
    """A short comment block: the verdict and (when the winner had one) its plan."""
    c = result.chosen
    assert c is not None
    total = len(c.run.verdicts) if c.run else 0
    head = f"{indent}# plancode: {result.status}, {c.passed}/{total} tests pass ({c.strategy})"
    steps = [f"{indent}# {s[:96]}" for s in c.plan.splitlines()[:8]] if c.plan else []
    return "\n".join([head, *steps]) + "\n"


def verified_body(text: str, info: FunctionInfo, result: PipelineResult,
                  with_plan: bool) -> str | None:
    """The chosen body, when applying it changes nothing outside the function's body."""
    c = result.chosen
    if c is None or c.spliced_text is None:
        return None
    new = c.spliced_text
    tail = len(text) - info.body_end
    if new[: info.body_start] != text[: info.body_start] or new[len(new) - tail:] != text[
            info.body_end:]:
        return None  # it also adds imports or helpers: the code action applies those
    body = new[info.body_start : len(new) - tail].replace("\r\n", "\n")
    if with_plan:
        body = plan_comment(result, info.body_indent) + body
    return body.rstrip("\n")


def _cursor_in_empty_body(info: FunctionInfo | None, lines: list[str], line: int) -> bool:
    return (info is not None and info.body_is_empty and line > info.start_line
            and PLACEHOLDER_LINE.match(lines[line]) is not None)


async def suggest(ls: PlancodeServer, uri: str,
                  position: types.Position) -> tuple[str, types.Range] | None:
    """The suggestion text and the range it replaces, or None."""
    ls.stats["inline_requests"] += 1
    token = ls.supersede(uri)
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
    if _cursor_in_empty_body(info, lines, line) and path is not None and path.is_file():
        assert info is not None
        key = job_key(path, info, ls.settings)
        job = ls.jobs.get(key)
        if job is not None and job.future.done() and not job.future.cancelled() \
                and job.future.exception() is None:
            body = verified_body(text, info, job.future.result(), ls.settings.plan_comments)
            if body is not None:
                ls.stats["verified_served"] += 1
                line_range = types.Range(start=to_position(doc, lines, line, 0),
                                         end=to_position(doc, lines, line, len(lines[line])))
                return body, line_range
        elif job is None and ls.models.state == "ready" and ls.settings.inline_verify:
            ls.jobs.start(key, uri, path, line, text, info, ls.settings)

    engine = ls.models.interactive()
    if engine is None:
        return None
    req = build_request(text, line, col)
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(
            _FIM_POOL, complete_fim, engine, req, ls.fim_cache, ls.settings.inline_max_tokens,
            token)
    except asyncio.CancelledError:
        token.cancel()
        raise
    ls.record_fim(result)
    if token.cancelled or not result.text:
        return None
    return result.text, here


def register(server: PlancodeServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: PlancodeServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        found = await suggest(ls, params.text_document.uri, params.position)
        if found is None:
            return types.InlineCompletionList(items=[])
        text, rng = found
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=text, range=rng)])

    @server.feature(STATS)
    def stats(ls: PlancodeServer, *args: object) -> dict:
        """Counters for benchmarks and status bars: requests, cache hits, the last FIM
        request's prompt accounting, the model state."""
        return {**ls.stats, "fim_cache": ls.fim_cache.stats(), "model_state": ls.models.state}

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    async def completion(ls: PlancodeServer,
                         params: types.CompletionParams) -> types.CompletionList:
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
