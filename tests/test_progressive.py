"""Progressive answers, end to end: with weak tests the first candidate that passes them is
shown at once while the search goes on — a line of ``plancode complete --json --stream``, a
``plancode/answer`` notification the editor can accept — and the final answer says why it
differs. The model is a scripted OpenAI-compatible server on loopback (slow on purpose: each
code reply "decodes" for a while), so the order of events is known."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from plancode import prompts
from tests.openai_backend import ScriptedBackend, serving
from tests.test_selection import FIRST_LINE_ONLY, MODULE, RIGHT_A, RIGHT_B, project

ROOT = Path(__file__).resolve().parent.parent


class _Scripted(ScriptedBackend):
    """Plan requests get a plan, test-writing requests no asserts, code requests the next
    reply of ``codes`` after ``delay`` seconds."""

    codes: list[str] = []
    delay = 0.0
    lock = threading.Lock()

    def reply(self, body: str) -> str:
        if prompts.PLAN_REQUEST[:40] in body:
            return "1. Add up quantity times price."
        if "test cases" in body:
            return "No tests."
        with type(self).lock:
            code = type(self).codes.pop(0) if type(self).codes else RIGHT_A
        time.sleep(type(self).delay)
        return f"```python\n{code}```\n"


@pytest.fixture
def backend() -> Iterator[str]:
    with serving(_Scripted) as url:
        yield url


def _shop(tmp_path: Path) -> Path:
    """The selection tests' shop project, with a project marker (the server's root)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    return project(tmp_path)


def _plain(value: object) -> object:
    """pygls hands unknown notifications over as named tuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _env(backend: str, **more: str) -> dict[str, str]:
    return {**os.environ, "PLANCODE_BACKEND": "openai", "PLANCODE_REMOTE_URL": backend,
            "PLANCODE_MODEL": "scripted", "PLANCODE_CANDIDATES": "4",
            "PLANCODE_ESCALATE_MODEL": "", "PLANCODE_REPAIR_ROUNDS": "0", **more}


def test_stream_shows_the_first_passing_answer_then_the_final_one(backend: str,
                                                                  tmp_path: Path) -> None:
    file = _shop(tmp_path)
    _Scripted.codes, _Scripted.delay = [FIRST_LINE_ONLY, RIGHT_A, RIGHT_B, FIRST_LINE_ONLY], 1.0
    proc = subprocess.run([sys.executable, "-m", "plancode", "complete", f"{file}:4", "--json",
                           "--stream"], cwd=ROOT, env=_env(backend), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["final"] for d in lines] == [False, True]
    early, final = lines
    assert early["chosen"]["index"] == 0 and early["status"] == "passes-tests"
    assert early["first_answer"]["seconds"] < final["timings"]["total"] - 1.0, \
        "the first answer came while the other candidates were still decoding"
    assert final["status"] == "passes-tests" and not final["verified"], \
        "one visible test is never called verified"
    assert final["chosen"]["index"] in (1, 2) and final["change"].startswith("replaced: ")
    assert final["first_answer"] == {**early["first_answer"], "kept": False}
    assert "passes your 1 test" in final["strength"]
    assert file.read_text() == MODULE, "complete without --write never writes"


async def test_the_editor_can_accept_the_first_answer_while_the_search_goes_on(
        backend: str, tmp_path: Path) -> None:
    file = _shop(tmp_path)
    _Scripted.codes, _Scripted.delay = [FIRST_LINE_ONLY, RIGHT_A, RIGHT_B, RIGHT_A], 3.0
    client = LanguageClient("progressive-test", "1")
    client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)(lambda params: None)
    for method in (types.PROGRESS, types.WINDOW_LOG_MESSAGE, types.WINDOW_SHOW_MESSAGE):
        client.feature(method)(lambda params: None)
    answers: list[object] = []
    edits: list[types.ApplyWorkspaceEditParams] = []

    @client.feature("plancode/answer")
    def on_answer(params):  # unannotated: pygls would try to structure an annotated type
        answers.append(params)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    await client.start_io(sys.executable, "-m", "plancode", "serve", "--log-file",
                          str(tmp_path / "server.log"), cwd=str(tmp_path),
                          env=_env(backend))
    try:
        await asyncio.wait_for(client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(
                work_done_progress=True)),
            root_uri=tmp_path.as_uri())), timeout=60)
        client.initialized(types.InitializedParams())
        uri = file.as_uri()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=MODULE)))
        start = time.monotonic()
        running = asyncio.ensure_future(client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="plancode.implement", arguments=[uri, 3])))
        while not answers and not running.done() and time.monotonic() - start < 60:
            await asyncio.sleep(0.05)
        assert answers, ("no answer was offered", running.done() and (
            running.exception() or running.result()["first_answer"]))
        offered = _plain(answers[0])
        assert offered["uri"] == uri and offered["function"] == "order_total"
        assert offered["result"]["final"] is False
        assert offered["result"]["chosen"]["index"] == 0
        accepted = await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="plancode.acceptAnswer", arguments=[uri]))
        assert accepted["accepted"] is True
        result = await asyncio.wait_for(running, timeout=10)
        took = time.monotonic() - start
        assert result["applied"] is True and result["chosen"]["index"] == 0
        assert result["change"] == "accepted before the search finished"
        assert took < 4 * 3.0, "accepting stopped the search"
        (edit,) = edits[0].edit.document_changes[0].edits
        assert "lines[0][1] * lines[0][2]" in edit.new_text
        again = await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="plancode.acceptAnswer", arguments=[uri]))
        assert again["accepted"] is False, "nothing left to accept"
        await asyncio.wait_for(client.shutdown_async(None), timeout=30)
        client.exit(None)
    finally:
        if "running" in locals():
            running.cancel()
        await asyncio.wait_for(client.stop(), timeout=30)
