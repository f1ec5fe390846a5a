"""`plancode serve` driven by a real LSP client over stdio (pytest-lsp / pygls client)."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVE = [sys.executable, "-m", "plancode", "serve"]


def _config(**settings: object) -> ClientServerConfig:
    env = {**os.environ, **{f"PLANCODE_{k.upper()}": str(v) for k, v in settings.items()}}
    return ClientServerConfig(server_command=SERVE, server_env=env)


async def _start(client: LanguageClient, root: Path,
                 options: dict | None = None) -> types.InitializeResult:
    return await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options=options,
    ))


async def _wait_ready(client: LanguageClient, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("model: ready" in m.message for m in client.log_messages):
            return
        if any("model: error" in m.message for m in client.log_messages):
            raise AssertionError([m.message for m in client.log_messages])
        await asyncio.sleep(0.1)
    raise AssertionError("model did not load")


def _open(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version,
                                             text=path.read_text() if text is None else text)))
    return uri


async def _open_ready(client: LanguageClient, project: Path,
                      module: str) -> tuple[Path, str, list[str]]:
    """Initialize, wait for the model, open ``textstats/<module>``: (path, uri, lines)."""
    await _start(client, project)
    await _wait_ready(client)
    path = project / "textstats" / module
    return path, _open(client, path), path.read_text().splitlines()


def _median_tests_pass(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-k", "median", "tests/test_numbers.py"], cwd=project,
                          capture_output=True, text=True)


def _change(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))


def _inline(client: LanguageClient, uri: str, line: int, character: int):
    return client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic)))


async def _open_mid_statement(client: LanguageClient, project: Path) -> tuple[str, int]:
    """Start, wait for the model, open words.py with ``    cleaned = title.`` typed above the
    return (the cursor goes at its end, column 18): (uri, line)."""
    await _start(client, project)
    await _wait_ready(client)
    path = project / "textstats" / "words.py"
    text = path.read_text().replace(
        "    return re.sub(", "    cleaned = title.\n    return re.sub(")
    uri = _open(client, path, text)
    return uri, text.splitlines().index("    cleaned = title.")


@pytest.fixture
def project(textstats: Path) -> Path:
    return textstats


# -- the tiny model: protocol behaviour ------------------------------------------------------


@pytest_lsp.fixture(config=_config(model="smollm2-135m", inline_max_tokens=24,
                                   inline_verify="false"))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_initialize_answers_before_the_model_loads_and_advertises_features(
    client: LanguageClient, project: Path
) -> None:
    start = time.monotonic()
    caps = (await _start(client, project)).capabilities
    assert time.monotonic() - start < 5
    assert caps.inline_completion_provider is not None, "VS Code only asks when advertised"
    assert caps.completion_provider is not None and caps.code_action_provider is not None
    assert "plancode.implement" in caps.execute_command_provider.commands
    await _wait_ready(client)
    tokens = list(client.progress_reports)
    assert tokens, "model loading is reported with $/progress"
    kinds = [type(v).__name__ for v in client.progress_reports[tokens[0]]]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_inline_completion_and_completion_fallback(client: LanguageClient,
                                                         project: Path) -> None:
    uri, line = await _open_mid_statement(client, project)
    result = await _inline(client, uri, line, 18)
    assert result is not None and len(result.items) == 1
    item = result.items[0]
    assert item.insert_text and "\n" not in item.insert_text, "mid-statement: one line"
    assert item.range.start == types.Position(line=line, character=18)
    completion = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=18)))
    assert completion.items and completion.items[0].text_edit.new_text == item.insert_text
    stats = await client.protocol.send_request_async("plancode/stats", {})
    assert stats.inline_requests == 2 and stats.inline_cache_hits == 1, "same text: cache hit"
    assert stats.last_fim.cached is True and stats.last_fim.evaluated_tokens == 0


async def test_a_resting_cursor_is_warmed_before_the_first_keystroke(
        client: LanguageClient, project: Path) -> None:
    """plancode/cursor (sent by the editor plugins when the cursor rests): the suggestion
    there is computed in the background; the first request at that spot is a cache hit."""
    uri, line = await _open_mid_statement(client, project)
    client.protocol.notify("plancode/cursor", {"textDocument": {"uri": uri},
                                               "position": {"line": line, "character": 18}})
    client.protocol.notify("plancode/cursor", {"textDocument": {"uri": uri},
                                               "position": {"line": "bad"}})  # ignored
    deadline = time.monotonic() + 60
    stats = await client.protocol.send_request_async("plancode/stats", {})
    while time.monotonic() < deadline and (stats.warmups < 1 or stats.model_state != "ready"
                                           or stats.background_evaluated_tokens == 0):
        await asyncio.sleep(0.1)
        stats = await client.protocol.send_request_async("plancode/stats", {})
    assert stats.warmups == 1 and stats.background_evaluated_tokens > 0
    result = await _inline(client, uri, line, 18)
    assert result is not None and len(result.items) == 1
    stats = await client.protocol.send_request_async("plancode/stats", {})
    assert stats.inline_cache_hits == 1 and stats.last_fim.cached is True


async def test_utf16_positions_with_emoji(client: LanguageClient, project: Path) -> None:
    await _start(client, project)
    await _wait_ready(client)
    path = project / "emoji.py"
    text = 'GREETING = "🐍🐍 hello"  # snakes\nname = "wörld 👋"\nprint(GREETING, '
    path.write_text(text)
    uri = _open(client, path)
    # line 2 is 'print(GREETING, ' : 16 UTF-16 units, no surrogates; line 0 has two emoji
    end_of_line0 = len(text.splitlines()[0].encode("utf-16-le")) // 2
    res0 = await _inline(client, uri, 0, end_of_line0)
    assert res0 is not None
    for item in res0.items:
        assert item.range.start.character == end_of_line0
    res2 = await _inline(client, uri, 2, 16)
    assert res2 is not None and all(i.range.start.character == 16 for i in res2.items)
    with pytest.raises(JsonRpcException):
        await _inline(client, uri, 99, 0)


async def test_burst_of_edits_and_requests(client: LanguageClient, project: Path) -> None:
    await _start(client, project)
    await _wait_ready(client)
    path = project / "burst.py"
    base = "def total(values):\n    result = 0\n    for v in values:\n        "
    path.write_text(base)
    uri = _open(client, path)
    typed = "result += v  # add each value to the running total.."[:50]
    pending = []
    text = base
    for i, ch in enumerate(typed, start=2):
        text += ch
        _change(client, uri, text, i)
        pending.append(_inline(client, uri, 3, 8 + len(text) - len(base)))
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(not isinstance(r, BaseException) or isinstance(r, JsonRpcException)
               for r in results)
    last = results[-1]
    assert not isinstance(last, BaseException)
    doc_line = text.splitlines()[3]
    for item in last.items:
        assert item.range.start == types.Position(line=3, character=len(doc_line))
    again = await _inline(client, uri, 3, len(doc_line))  # the server is still healthy
    assert again is not None


async def test_bad_input_gets_errors_not_crashes(client: LanguageClient, project: Path) -> None:
    await _start(client, project)
    await _wait_ready(client)
    with pytest.raises(JsonRpcException, match="unknown document"):
        await _inline(client, (project / "nope.py").as_uri(), 0, 0)
    uri = _open(client, project / "textstats" / "words.py")
    with pytest.raises(JsonRpcException, match="outside the document"):
        await _inline(client, uri, 10_000, 0)
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="plancode.implement", arguments=[uri, "not a line"]))
    with pytest.raises(JsonRpcException, match="no function definition"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="plancode.implement", arguments=[uri, 0]))
    huge = project / "huge.py"
    huge.write_text("x = 1\n" * 400_000)
    huge_uri = _open(client, huge)
    with pytest.raises(JsonRpcException, match="characters"):
        await _inline(client, huge_uri, 0, 0)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"plancode": {"candidates": 0}}))
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"plancode": {"nGpuLayers": "lots"}}))
    await asyncio.sleep(0.5)
    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any("'candidates'" in e and "between 1 and 32" in e for e in errors)
    assert any("'nGpuLayers'" in e for e in errors)
    result = await _inline(client, uri, 3, 0)  # still serving with the previous settings
    assert result is not None


@pytest_lsp.fixture(config=_config(model="/nonexistent/model.gguf"))
async def broken_client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_missing_model_is_reported_and_the_server_keeps_running(
    broken_client: LanguageClient, project: Path
) -> None:
    await _start(broken_client, project)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not broken_client.messages:
        await asyncio.sleep(0.1)
    assert any("does not exist" in m.message for m in broken_client.messages)
    uri = _open(broken_client, project / "textstats" / "words.py")
    result = await _inline(broken_client, uri, 3, 0)
    assert result is not None and len(result.items) == 0


# -- the tiny model: cancelling an implement job --------------------------------------------


@pytest_lsp.fixture(config=_config(model="smollm2-135m", candidates=8, escalate_model="",
                                   inline_verify="false"))
async def job_client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def _implement(client: LanguageClient, uri: str, line: int) -> asyncio.Future:
    return asyncio.ensure_future(client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="plancode.implement", arguments=[uri, line])))


async def _making_first_candidate(client: LanguageClient, seen: set[str],
                                  timeout: float = 20) -> tuple[str, float]:
    """The progress token of a new implement job (not in ``seen``) once it reports its first
    candidate, and how long that took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for token, values in client.progress_reports.items():
            if token not in seen and any(
                    isinstance(v, types.WorkDoneProgressReport)
                    and "top_words: candidate 1/" in (v.message or "") for v in values):
                seen.add(token)
                return token, time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"no job made its first candidate within {timeout}s")


def _ending(client: LanguageClient, token: str) -> str | None:
    ends = [v for v in client.progress_reports.get(token, [])
            if isinstance(v, types.WorkDoneProgressEnd)]
    return ends[-1].message if ends else None


async def _cancelled_within(future: asyncio.Future, seconds: float) -> None:
    start = time.monotonic()
    with pytest.raises(JsonRpcException, match="cancel"):
        await asyncio.wait_for(future, timeout=30)
    assert time.monotonic() - start < seconds


async def _job_stopped(client: LanguageClient, uri: str, line: int, seen: set[str]) -> None:
    """The cancelled job let go of the one job worker: a new job makes its first candidate at
    once (a job that ran on would hold it for minutes: 8 candidates and a repair round).
    The new job is then cancelled from its progress."""
    future = _implement(client, uri, line)
    token, waited = await _making_first_candidate(client, seen)
    assert waited < 10, f"the next job waited {waited:.1f}s for the worker"
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    await _cancelled_within(future, 5)


async def test_cancel_on_the_progress_stops_the_implement_job(
    job_client: LanguageClient, project: Path
) -> None:
    """Cancel on the editor's progress notification: window/workDoneProgress/cancel."""
    _, uri, lines = await _open_ready(job_client, project, "words.py")
    line = lines.index("def top_words(text: str, n: int) -> list[tuple[str, int]]:")
    seen: set[str] = set()
    future = _implement(job_client, uri, line)
    token, _ = await _making_first_candidate(job_client, seen)
    await asyncio.sleep(1.0)  # into decoding
    job_client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    await _cancelled_within(future, 2.0)
    assert _ending(job_client, token) == "cancelled"
    await _job_stopped(job_client, uri, line, seen)
    assert (project / "textstats" / "words.py").read_text().count("def top_words") == 1


async def test_cancel_request_stops_the_implement_job(
    job_client: LanguageClient, project: Path
) -> None:
    """$/cancelRequest for the workspace/executeCommand request (Neovim's cancel)."""
    _, uri, lines = await _open_ready(job_client, project, "words.py")
    line = lines.index("def top_words(text: str, n: int) -> list[tuple[str, int]]:")
    seen: set[str] = set()
    before = set(job_client.protocol._request_futures)
    future = _implement(job_client, uri, line)
    await asyncio.sleep(0)
    (msg_id,) = set(job_client.protocol._request_futures) - before
    token, _ = await _making_first_candidate(job_client, seen)
    await asyncio.sleep(1.0)  # into decoding
    job_client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    await _cancelled_within(future, 2.0)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _ending(job_client, token) is None:
        await asyncio.sleep(0.05)  # pygls answered at once; the command ends its progress
    assert _ending(job_client, token) == "cancelled"
    await _job_stopped(job_client, uri, line, seen)


# -- the default model: verified implementations ---------------------------------------------


@pytest_lsp.fixture(config=_config(model="qwen2.5-coder-0.5b"))
async def qwen_client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_replies_sent_while_the_model_loads_reach_the_client(
    qwen_client: LanguageClient, project: Path
) -> None:
    """llama.cpp silences fd 1 while it loads a model; the protocol stream must not be fd 1."""
    await _start(qwen_client, project)
    states = []
    while not states or states[-1] == "loading":
        stats = await asyncio.wait_for(
            qwen_client.protocol.send_request_async("plancode/stats", {}), timeout=10)
        states.append(stats.model_state)
        await asyncio.sleep(0.05)
    assert states[0] == "loading" and states[-1] == "ready", states
    await _wait_ready(qwen_client)


@pytest.mark.slow
async def test_implement_command_applies_code_that_passes_the_tests(
    qwen_client: LanguageClient, project: Path
) -> None:
    path, uri, lines = await _open_ready(qwen_client, project, "numbers.py")
    line = lines.index("def median(values: list[float]) -> float:")
    edits: list[types.ApplyWorkspaceEditParams] = []

    @qwen_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    actions = await qwen_client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=line, character=0),
                          end=types.Position(line=line, character=0)),
        context=types.CodeActionContext(diagnostics=[])))
    assert actions and actions[0].title == "Implement with plan (verified)"
    # lsprotocol structures the reply's union Command | CodeAction as a Command whose
    # `command` field holds our nested Command as text: read it back
    raw = actions[0].command
    cmd = types.Command(**ast.literal_eval(raw)) if isinstance(raw, str) else raw
    assert cmd.command == "plancode.implement" and cmd.arguments == [uri, line]
    result = await qwen_client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=cmd.command, arguments=cmd.arguments))
    assert result["status"] == "verified" and result["applied"] is True
    reports = [v for vals in qwen_client.progress_reports.values() for v in vals
               if isinstance(v, types.WorkDoneProgressReport)]
    assert any("test(s) found" in (r.message or "") for r in reports)
    assert any("candidate 1/" in (r.message or "") for r in reports)
    (edit,) = edits[0].edit.document_changes[0].edits
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    start = sum(len(x) for x in lines[: edit.range.start.line]) + edit.range.start.character
    end = sum(len(x) for x in lines[: edit.range.end.line]) + edit.range.end.character
    path.write_text(text[:start] + edit.new_text + text[end:])
    run = _median_tests_pass(project)
    assert run.returncode == 0, run.stdout
    full = await qwen_client.protocol.send_request_async(
        "plancode/implement", {"textDocument": {"uri": uri},
                               "position": {"line": line, "character": 0}})
    # pygls hands untyped results to the client as named tuples
    assert full.status == "verified" and full.function == "median"  # from the job cache


@pytest.mark.slow
async def test_cancel_implement_answers_within_a_second_and_leaves_no_processes(
    qwen_client: LanguageClient, project: Path
) -> None:
    _, uri, lines = await _open_ready(qwen_client, project, "words.py")
    line = lines.index("def top_words(text: str, n: int) -> list[tuple[str, int]]:")
    before = set(qwen_client.protocol._request_futures)
    sent = time.monotonic()
    future = asyncio.ensure_future(qwen_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="plancode.implement", arguments=[uri, line])))
    await asyncio.sleep(0)
    (msg_id,) = set(qwen_client.protocol._request_futures) - before
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
            isinstance(v, types.WorkDoneProgressReport) and "candidate 1/" in (v.message or "")
            for vals in qwen_client.progress_reports.values() for v in vals):
        await asyncio.sleep(0.05)
    assert time.monotonic() - sent < 30, "the job started"
    await asyncio.sleep(2.0)  # well into decoding
    start = time.monotonic()
    qwen_client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException, match="cancel"):
        await future
    assert time.monotonic() - start < 1.0
    await asyncio.sleep(1.0)
    leftovers = subprocess.run(["pgrep", "-f", "plancode_pytest_plugin"],
                               capture_output=True, text=True).stdout.split()
    assert leftovers == []


@pytest.mark.slow
async def test_inline_completion_serves_the_verified_body_once_ready(
    qwen_client: LanguageClient, project: Path
) -> None:
    path, uri, lines = await _open_ready(qwen_client, project, "numbers.py")
    line = lines.index("    pass")  # the placeholder body of median
    first = await _inline(qwen_client, uri, line, 4)  # starts the verified job, FIM meanwhile
    assert first is not None
    deadline = time.monotonic() + 180
    body = None
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        res = await _inline(qwen_client, uri, line, 4)
        texts = [i.insert_text for i in res.items] if res is not None else []
        if texts and "# plancode: verified" in texts[0]:
            body = res.items[0]
            break
    assert body is not None, "the verified body was never served"
    assert body.range.start == types.Position(line=line, character=0)
    assert body.range.end == types.Position(line=line, character=len(lines[line]))
    new_lines = lines[:line] + body.insert_text.splitlines() + lines[line + 1:]
    path.write_text("\n".join(new_lines) + "\n")
    run = _median_tests_pass(project)
    assert run.returncode == 0, run.stdout
