"""Verified implementations: the code action, the ``plancode.implement`` command (with
``$/progress`` and ``workspace/applyEdit``) and the ``plancode/implement`` request.

The job runs on the background engine off the event loop. ``$/cancelRequest`` cancels it: the
generation stops within a token and the sandbox kills the running tests.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams, JsonRpcRequestCancelled

from plancode.analysis.functions import find_function, functions
from plancode.errors import PlancodeError
from plancode.lsp.jobs import job_key
from plancode.lsp.language_server import PlancodeServer, uri_to_path
from plancode.lsp.positions import line_texts, offset_to_position
from plancode.lsp.verified import plan_comment
from plancode.pipeline import PipelineResult

log = logging.getLogger(__name__)

COMMAND = "plancode.implement"
LAST_RESULT = "plancode.lastResult"
REQUEST = "plancode/implement"
TITLE = "Implement with plan (verified)"

EVENT_TEXT = {
    "loading": lambda d: "loading the model",
    "discovered": lambda d: f"{len(d['tests'])} test(s) found"
    if d["tests"] else "no tests found: writing tests with the model (unverified)",
    "generating": lambda d: f"candidate {d['candidate'] + 1}/{d['of']} ({d['strategy']})",
    "testing": lambda d: f"testing candidate {d['candidate'] + 1}",
    "repairing": lambda d: "repairing the best candidate with its test failures",
    "done": lambda d: d["status"],
}


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def final_text(text: str, result: PipelineResult, with_plan: bool) -> str | None:
    """The document with the chosen implementation (and, if asked, its plan comment)."""
    chosen = result.chosen
    if chosen is None or chosen.spliced_text is None:
        return None
    new = chosen.spliced_text
    if not with_plan:
        return new
    target = next((f for f in functions(new) if f.qualname == result.function), None)
    if target is None:
        return new
    comment = plan_comment(result, target.body_indent).replace("\n", target.newline)
    return new[: target.body_start] + comment + new[target.body_start :]


def minimal_edit(doc: Any, old: str, new: str) -> types.TextEdit:
    """One TextEdit turning ``old`` into ``new`` (common head and tail left alone)."""
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[len(old) - 1 - tail] == new[len(new) - 1 - tail]:
        tail += 1
    rng = types.Range(start=offset_to_position(doc, old, head),
                      end=offset_to_position(doc, old, len(old) - tail))
    return types.TextEdit(range=rng, new_text=new[head : len(new) - tail])


async def run_job(ls: PlancodeServer, uri: str, line: Any, progress_token: str | None = None,
                  cancelled: asyncio.Event | None = None,
                  ) -> tuple[PipelineResult, str, int | None]:
    """Run (or reuse) the job for the function at ``line``; return it with the text it saw."""
    if not isinstance(uri, str) or not isinstance(line, int) or isinstance(line, bool):
        raise JsonRpcInvalidParams("plancode.implement takes (uri: string, line: integer)")
    doc = ls.document(uri)
    path = uri_to_path(uri)
    if path is None or not path.is_file():
        raise JsonRpcInvalidParams(f"{uri} is not a file on disk: save it first so its tests "
                                   "can be found and run")
    text, version = doc.source, doc.version
    if not 0 <= line < len(line_texts(text)):
        raise JsonRpcInvalidParams(f"line {line} is outside {uri}")
    info = find_function(text, line)
    if info is None:
        raise JsonRpcInvalidParams(f"no function definition at line {line + 1} of {uri}")
    if ls.models.state == "error" and ls.models.error is not None:
        raise JsonRpcInternalError(str(ls.models.error))

    loop = asyncio.get_running_loop()

    def listener(event: str, data: dict) -> None:
        if progress_token is None or event not in EVENT_TEXT:
            return
        message = f"{info.qualname}: {EVENT_TEXT[event](data)}"
        pct = None
        if event == "generating":
            pct = int(100 * data["candidate"] / max(data["of"], 1))
        report = types.WorkDoneProgressReport(message=message, percentage=pct)
        loop.call_soon_threadsafe(ls.work_done_progress.report, progress_token, report)

    key = job_key(path, info, ls.settings)
    job = ls.jobs.start(key, uri, path, line, text, info, ls.settings, listener)
    try:
        waiting = asyncio.wrap_future(job.future)
        if cancelled is not None:
            stop = asyncio.ensure_future(cancelled.wait())
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if cancelled.is_set() and not waiting.done():
                ls.jobs.cancel(key)
                raise JsonRpcRequestCancelled(f"implementing {info.qualname} was cancelled")
        result = await waiting
    except asyncio.CancelledError:
        ls.jobs.cancel(key)
        raise
    except PlancodeError as exc:
        raise JsonRpcInternalError(str(exc)) from exc
    return result, text, version


def code_action(ls: PlancodeServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """"Implement with plan (verified)" on a function whose body is empty or partial."""
    doc = ls.document(params.text_document.uri)
    info = find_function(doc.source, params.range.start.line)
    if info is None or info.body_state == "complete":
        return []
    line = params.range.start.line
    return [types.CodeAction(
        title=TITLE, kind=types.CodeActionKind.RefactorRewrite,
        command=types.Command(title=TITLE, command=COMMAND,
                              arguments=[params.text_document.uri, line]))]


async def implement(ls: PlancodeServer, uri: Any = None, line: Any = None) -> dict:
    """The ``plancode.implement`` command: run the job with progress, apply the result."""
    msg_id = ls.protocol.msg_id
    cancelled = asyncio.Event()
    ls.cancel_hooks[msg_id] = cancelled.set
    try:
        return await _implement(ls, uri, line, cancelled)
    finally:
        ls.cancel_hooks.pop(msg_id, None)


async def _implement(ls: PlancodeServer, uri: Any, line: Any,
                     cancelled: asyncio.Event) -> dict:
    token = None
    if ls.supports_progress():
        token = f"plancode-implement-{uuid.uuid4()}"
        await ls.work_done_progress.create_async(token)
        ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
            title="plancode: implement", message="starting", cancellable=True,
            percentage=0))
    try:
        result, seen, version = await run_job(ls, uri, line, token, cancelled)
    except BaseException as exc:
        if token is not None:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(
                message="cancelled" if isinstance(
                    exc, asyncio.CancelledError | JsonRpcRequestCancelled)
                else f"stopped: {exc}"))
        raise
    data = result.to_json()
    data["applied"] = False
    new = final_text(seen, result, ls.settings.plan_comments)
    if new is not None and result.status in {"verified", "unverified"}:
        doc = ls.document(uri)
        if doc.source != seen:
            ls.show(types.MessageType.Warning, f"plancode: {uri} changed while "
                    f"{result.function} was being implemented; nothing was applied")
        else:
            edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=uri, version=version),
                edits=[minimal_edit(doc, seen, new)])])
            reply = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(
                edit=edit, label=f"plancode: implement {result.function}"))
            data["applied"] = bool(reply and reply.applied)
    summary = _summary(result)
    if token is not None:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=summary))
    if result.status == "failing":
        ls.show(types.MessageType.Warning, f"plancode: {summary}; nothing was applied")
    return data


async def implement_request(ls: PlancodeServer, params: Any) -> dict:
    """``{textDocument: {uri}, position: {line, character}}`` -> the whole result."""
    doc = _field(params, "textDocument", "text_document")
    uri = _field(doc, "uri") if doc is not None else _field(params, "uri")
    pos = _field(params, "position")
    line = _field(pos, "line") if pos is not None else _field(params, "line")
    result, _, _ = await run_job(ls, uri, line)
    return result.to_json()


def last_result(ls: PlancodeServer, *args: Any) -> dict | None:
    """The ``plancode.lastResult`` command: the last finished result, if any."""
    return ls.jobs.last.to_json() if ls.jobs.last is not None else None


def _summary(result: PipelineResult) -> str:
    c = result.chosen
    if c is None:
        return f"{result.function}: no usable candidate"
    total = len(c.run.verdicts) if c.run else 0
    return (f"{result.function}: {result.status} ({c.passed}/{total} tests pass, "
            f"{c.strategy}, {len(result.candidates)} candidate(s), "
            f"{result.timings.get('total', 0):.1f}s)"
            + (f"; {result.strength}" if result.strength else ""))
