"""What the user sees while a job runs: the progress events, defined once, and their text.

The pipeline (``plancode.pipeline.run``) and the language server's job runner
(``plancode.lsp.jobs``) emit these events with a payload; the CLI prints :func:`render`'s text
on stderr and the language server sends the same text in its ``$/progress`` reports, which
VS Code and Neovim show as they are (the editors keep no event table of their own). One list
and one renderer, so a new event cannot be shown in one place and silently dropped in another:
``tests/test_progress_events.py`` fails when an event has no text, when the pipeline emits a
name that is not an :class:`Event`, or when a payload's keys differ from its
:data:`PAYLOADS` type.

The wire names (the :class:`Event` values) are the strings the pipeline has always emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, TypedDict


class Event(StrEnum):
    """One step of an implement job, in the order they usually come."""

    LOADING = "loading"  # the language server waits for the background model
    DISCOVERED = "discovered"  # the function's tests were looked for
    WRITING_TESTS = "writing-tests"  # none found: the model writes some (unverified)
    GENERATING = "generating"  # a candidate is being decoded
    TESTING = "testing"  # a candidate's tests run in the sandbox
    ANSWER = "answer"  # a first answer passes the user's tests: shown while the search goes on
    REPAIRING = "repairing"  # a repair round from the best failing candidate
    ESCALATING = "escalating"  # the larger model joins (loading it can take a minute)
    SELECTING = "selecting"  # choosing among the candidates
    DONE = "done"  # the result is ready


class Loading(TypedDict):
    pass


class Discovered(TypedDict):
    tests: list[str]  # test ids
    function: str  # the function's qualified name


class WritingTests(TypedDict):
    pass


class Generating(TypedDict):
    candidate: int  # 0-based index
    of: int  # candidates planned
    strategy: str


class Testing(TypedDict):
    candidate: int  # 0-based index
    strategy: str


class Answer(TypedDict):
    candidate: int  # 0-based index of the candidate shown
    strategy: str


# "from" is a keyword: the functional form
Repairing = TypedDict("Repairing", {"candidate": int, "from": int})  # 0-based indices


class Escalating(TypedDict):
    model: str  # the larger model's name
    why: str  # "no candidate passed" | "weak evidence"


class Selecting(TypedDict):
    candidates: int  # the size of the pool


class Done(TypedDict):
    status: str  # verified | passes-tests | failing | unverified | no-candidate


PAYLOADS: dict[Event, type] = {
    Event.LOADING: Loading,
    Event.DISCOVERED: Discovered,
    Event.WRITING_TESTS: WritingTests,
    Event.GENERATING: Generating,
    Event.TESTING: Testing,
    Event.ANSWER: Answer,
    Event.REPAIRING: Repairing,
    Event.ESCALATING: Escalating,
    Event.SELECTING: Selecting,
    Event.DONE: Done,
}
"""Each event's payload type (its keys are what :func:`render` may read)."""

Listener = Callable[[str, dict], None]
"""What a progress callback looks like (``event`` is an :class:`Event`, a ``str``)."""


def _discovered(d: Mapping[str, Any]) -> str:
    n = len(d["tests"])
    return f"{n} test(s) found" if n else "no tests found"


_TEXT: dict[Event, Callable[[Mapping[str, Any]], str]] = {
    Event.LOADING: lambda d: "loading the model",
    Event.DISCOVERED: _discovered,
    Event.WRITING_TESTS: lambda d: "writing tests with the model (unverified)",
    Event.GENERATING: lambda d: f"candidate {d['candidate'] + 1}/{d['of']} ({d['strategy']})",
    Event.TESTING: lambda d: f"testing candidate {d['candidate'] + 1} in the sandbox",
    Event.ANSWER: lambda d: (f"candidate {d['candidate'] + 1} passes your tests: shown; "
                             "checking the alternatives"),
    Event.REPAIRING: lambda d: f"repairing candidate {d['from'] + 1} with its test failures",
    Event.ESCALATING: lambda d: (f"{d['why']}: trying the larger {d['model']} "
                                 "(loading it can take a minute)"),
    Event.SELECTING: lambda d: f"choosing among {d['candidates']} candidate(s)",
    Event.DONE: lambda d: f"done: {d['status']}",
}


def render(event: Event | str, data: Mapping[str, Any], function: str | None = None) -> str:
    """The human text of one event, prefixed with ``function: `` when given.

    A name that is not an :class:`Event`, or an event without a text, shows as itself rather
    than leaving the previous message on screen; the test suite fails on either.
    """
    known = event in Event.__members__.values()
    text_of = _TEXT.get(Event(event)) if known else None
    text = text_of(data) if text_of is not None else str(event)
    return f"{function}: {text}" if function else text


def percentage(event: Event | str, data: Mapping[str, Any]) -> int | None:
    """How far the job is, where the event says (candidates made of those planned)."""
    if event == Event.GENERATING:
        return int(100 * data["candidate"] / max(data["of"], 1))
    return None
