"""Verified implementations: the code action, the ``plancode.implement`` command (with
``$/progress`` and ``workspace/applyEdit``) and the ``plancode/implement`` request.

The job runs on the background engine off the event loop. Either of two messages cancels it:
``window/workDoneProgress/cancel`` for the command's progress token (pygls cancels the token's
future in ``ls.work_done_progress.tokens``; the Cancel button on the editor's progress), or
``$/cancelRequest`` for the request (the command runs inside ``ls.protocol.cancellable()``, so
its task is cancelled; the plancode/implement request is a plain async handler, which pygls
cancels itself). The generation stops within a token and the sandbox kills the running tests;
the request is answered with RequestCancelled and the progress ends with "cancelled".
The progress texts come from :func:`plancode.progress.render`, as the CLI's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams, JsonRpcRequestCancelled

from plancode import progress
from plancode.analysis.functions import find_function, functions
from plancode.errors import PlancodeError
from plancode.lsp.jobs import job_key
from plancode.lsp.language_server import PlancodeProtocol, PlancodeServer, uri_to_path
from plancode.lsp.positions import line_texts, offset_to_position
from plancode.lsp.verified import plan_comment
from plancode.pipeline import PipelineResult

log = logging.getLogger(__name__)

COMMAND = "plancode.implement"
LAST_RESULT = "plancode.lastResult"
ACCEPT = "plancode.acceptAnswer"
ANSWER = "plancode/answer"  # notification: an answer offered while the search goes on
REQUEST = "plancode/implement"
TITLE = "Implement with plan (verified)"

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
    """Run (or reuse) the job for the function at ``line``; return it with the text it saw.

    The job is cancelled with this task (the ``asyncio.CancelledError`` goes on up) or when
    ``cancelled`` is set (then ``JsonRpcRequestCancelled`` is raised: the request is still
    open, and that is its answer).
    """
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
        if progress_token is not None:
            loop.call_soon_threadsafe(ls.work_done_progress.report, progress_token,
                                      progress_report(info.qualname, event, data))

    def answer(result: PipelineResult) -> None:
        loop.call_soon_threadsafe(ls.protocol.notify, ANSWER, {
            "uri": uri, "line": line, "function": info.qualname, "result": result.to_json()})

    key = job_key(path, info, ls.settings)
    job = ls.jobs.start(key, uri, path, line, text, info, ls.settings, listener)
    if progress_token is not None:  # the command's caller shows it and can accept it
        job.answer_listeners.append(answer)
    waiting = asyncio.wrap_future(job.future)
    stop = asyncio.ensure_future(cancelled.wait()) if cancelled is not None else None
    try:
        if stop is not None:
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done() and not waiting.done():
                ls.jobs.cancel(key)
                raise JsonRpcRequestCancelled(f"implementing {info.qualname} was cancelled")
        result = await waiting
    except asyncio.CancelledError:
        ls.jobs.cancel(key)
        raise
    except PlancodeError as exc:
        raise JsonRpcInternalError(str(exc)) from exc
    finally:
        if stop is not None:
            stop.cancel()
        with contextlib.suppress(ValueError):  # the progress has ended: no report after it
            job.listeners.remove(listener)
        with contextlib.suppress(ValueError):
            job.answer_listeners.remove(answer)
    return result, text, version


def progress_report(function: str, event: str, data: dict) -> types.WorkDoneProgressReport:
    """One pipeline event as a ``$/progress`` report: :func:`plancode.progress.render`'s text
    (prefixed with the function's name) and, where the event says, a percentage."""
    return types.WorkDoneProgressReport(message=progress.render(event, data, function),
                                        percentage=progress.percentage(event, data))


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
    protocol = ls.protocol
    if not isinstance(protocol, PlancodeProtocol):  # PlancodeServer's always is
        return await _implement(ls, uri, line)
    with protocol.cancellable():  # $/cancelRequest cancels this task, and so the job
        return await _implement(ls, uri, line)


async def _begin_progress(ls: PlancodeServer) -> tuple[str | None, asyncio.Event]:
    """A cancellable ``$/progress`` for one implement job (when the client shows progress)
    and the event that Cancel on it sets."""
    stop = asyncio.Event()
    if not ls.supports_progress():
        return None, stop
    token = f"plancode-implement-{uuid.uuid4()}"
    await ls.work_done_progress.create_async(token)
    ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
        title="plancode: implement", message="starting", cancellable=True, percentage=0))
    # pygls cancels the token's future on window/workDoneProgress/cancel
    loop = asyncio.get_running_loop()
    ls.work_done_progress.tokens[token].add_done_callback(
        lambda _: loop.call_soon_threadsafe(stop.set))
    return token, stop


async def _implement(ls: PlancodeServer, uri: Any, line: Any) -> dict:
    token, stop = await _begin_progress(ls)
    ending = "stopped"
    try:
        result, seen, version = await run_job(ls, uri, line, token, stop)
        data = result.to_json()
        data["applied"] = False
        new = final_text(seen, result, ls.settings.plan_comments)
        if new is not None and result.status in {"verified", "passes-tests", "unverified"}:
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
        ending = _summary(result)
    except (asyncio.CancelledError, JsonRpcRequestCancelled):
        ending = "cancelled"
        raise
    except Exception as exc:
        ending = f"stopped: {exc}"
        raise
    finally:
        if token is not None:
            ls.work_done_progress.tokens.pop(token, None)
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=ending))
    if result.status == "failing":
        ls.show(types.MessageType.Warning, f"plancode: {ending}; nothing was applied")
    return data


async def implement_request(ls: PlancodeServer, params: Any) -> dict:
    """``{textDocument: {uri}, position: {line, character}}`` -> the whole result."""
    doc = _field(params, "textDocument", "text_document")
    uri = _field(doc, "uri") if doc is not None else _field(params, "uri")
    pos = _field(params, "position")
    line = _field(pos, "line") if pos is not None else _field(params, "line")
    result, _, _ = await run_job(ls, uri, line)
    return result.to_json()


def accept_answer(ls: PlancodeServer, uri: Any = None, *args: Any) -> dict:
    """The ``plancode.acceptAnswer`` command: take the answer offered on ``uri`` now. The
    running ``plancode.implement`` then ends with it and applies it as it would the final
    one (never when the document changed meanwhile)."""
    if not isinstance(uri, str):
        raise JsonRpcInvalidParams("plancode.acceptAnswer takes (uri: string)")
    job = ls.jobs.accept(uri)
    if job is None:
        return {"accepted": False, "why": "no answer is on offer for this file"}
    return {"accepted": True, "function": job.function}


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
