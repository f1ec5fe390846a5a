"""One list of progress events, one renderer: every event has a text, every event the pipeline
emits is in the list with the payload its type names, and the CLI, the language server and
the editors all show the renderer's text (issue 28: events the LSP's own table did not know
left a stale message on screen while tests were written, candidates chosen or the larger
model loaded)."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest

from plancode import progress
from plancode.complete import status_line
from plancode.lsp.implement import progress_report
from plancode.progress import PAYLOADS, Event, render

REPO = Path(__file__).resolve().parent.parent
EMITTERS = [*sorted((REPO / "server" / "pipeline").glob("*.py")),
            REPO / "server" / "lsp" / "jobs.py"]
EMITTING_CALLS = {"progress", "emit"}  # progress(...), work.progress(...), job.emit(...)
EDITOR_SOURCES = [*(REPO / "editors" / "vscode" / "src").rglob("*.ts"),
                  *(REPO / "editors" / "neovim").rglob("*.lua")]


def _value(tp: object) -> object:
    """A sample value of a payload field's type."""
    if tp is int:
        return 2
    if tp is str:
        return "plan-greedy"
    if typing.get_origin(tp) is list:
        return [_value(typing.get_args(tp)[0])]
    raise AssertionError(f"no sample for {tp!r}: extend _value")


def sample(event: Event) -> dict:
    """A payload of ``event``'s type, every field filled."""
    hints = typing.get_type_hints(PAYLOADS[event])
    return {name: _value(tp) for name, tp in hints.items()}


def test_every_event_has_a_payload_type_and_a_text() -> None:
    assert set(PAYLOADS) == set(Event)
    for event in Event:
        text = render(event, sample(event))
        assert text.strip(), f"{event} renders as nothing"
        assert text != str(event), f"{event} has no text: it shows as its bare name"


def test_the_texts_say_what_happens() -> None:
    assert render(Event.DISCOVERED, {"tests": ["a", "b"], "function": "f"}) == "2 test(s) found"
    assert render(Event.DISCOVERED, {"tests": [], "function": "f"}) == "no tests found"
    assert "writing tests" in render(Event.WRITING_TESTS, {})
    gen = {"candidate": 1, "of": 4, "strategy": "plan-greedy"}
    assert render(Event.GENERATING, gen, "median") == "median: candidate 2/4 (plan-greedy)"
    assert progress.percentage(Event.GENERATING, gen) == 25
    assert progress.percentage(Event.TESTING, {"candidate": 1, "strategy": "x"}) is None
    assert "choosing among 5" in render(Event.SELECTING, {"candidates": 5})
    escalating = render(Event.ESCALATING, {"model": "qwen2.5-coder-1.5b",
                                           "why": "no candidate passed"})
    assert "qwen2.5-coder-1.5b" in escalating and "no candidate passed" in escalating
    assert "candidate 3" in render(Event.REPAIRING, {"candidate": 4, "from": 2})
    assert render(Event.DONE, {"status": "verified"}) == "done: verified"
    # a name that is not an event still replaces the previous message
    assert render("something-new", {}, "f") == "f: something-new"


def _emissions() -> list[tuple[Path, int, str, ast.expr | None]]:
    """Every progress call in the emitting modules: (file, line, event name, payload)."""
    found = []
    for path in EMITTERS:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in EMITTING_CALLS:
                continue
            first = node.args[0]
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                assert first.value in {e.value for e in Event}, \
                    f"{where} emits {first.value!r}, which is not a plancode.progress.Event"
                event = first.value
            elif (isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name)
                  and first.value.id == "Event"):
                assert first.attr in Event.__members__, f"{where}: Event.{first.attr} is unknown"
                event = Event[first.attr].value
            else:
                raise AssertionError(f"{where}: {ast.unparse(first)} is not an Event member")
            payload = node.args[1] if len(node.args) > 1 else None
            found.append((path, node.lineno, event, payload))
    return found


def test_every_event_emitted_is_in_the_list_with_its_payload_keys() -> None:
    emitted = _emissions()
    assert {e for _, _, e, _ in emitted} == {e.value for e in Event}, \
        "every event is emitted somewhere, and nothing else is"
    for path, line, event, payload in emitted:
        if not isinstance(payload, ast.Dict):
            continue  # built elsewhere: the renderer test covers its type
        keys = {k.value for k in payload.keys if isinstance(k, ast.Constant)}
        expected = set(typing.get_type_hints(PAYLOADS[Event(event)]))
        assert keys == expected, f"{path.relative_to(REPO)}:{line}: {event} sends {keys}"


@pytest.mark.parametrize("event", list(Event))
def test_the_cli_and_the_language_server_show_the_renderers_text(event: Event) -> None:
    data = sample(event)
    text = render(event, data, "median")
    assert text == f"median: {render(event, data)}"
    assert status_line("median", event, data) == text  # the CLI's stderr line
    report = progress_report("median", event, data)  # the LSP's $/progress report
    assert report.message == text
    assert report.percentage == progress.percentage(event, data)
    # what the pipeline sends on the wire is the plain name: same text
    assert status_line("median", event.value, data) == text


def test_the_editors_show_the_servers_messages_and_keep_no_event_table() -> None:
    names = [e.value for e in Event if e is not Event.LOADING]  # "loading" is also a model state
    for path in EDITOR_SOURCES:
        source = path.read_text(encoding="utf-8")
        for name in names:
            assert not re.search(rf"""["']{re.escape(name)}["']""", source), \
                f"{path.relative_to(REPO)} names the event {name!r}: show the server's message"
