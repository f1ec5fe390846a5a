"""The test writer (model-written asserts for the choice when the user's tests are weak or
absent): its reply starts inside the first assert, so the model cannot spend its tokens
re-implementing the function first; what it wrote becomes one pytest test per assert."""

from __future__ import annotations

from plancode import prompts
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import Generation, SamplingParams
from plancode.pipeline.generated_tests import reply, write_tests

PROBLEM = 'def inc(x: int) -> int:\n    """Return x plus one."""\n'


class _Scripted:
    """An engine that answers with fixed text; ``prefills`` as the engine says."""

    fim_format = None

    def __init__(self, text: str, prefills: bool = True, finish: str = "stop") -> None:
        self.text, self.prefills, self.finish = text, prefills, finish
        self.seen: list[list[dict]] = []

    def chat(self, messages, params, cancel=None, on_text=None) -> Generation:
        self.seen.append(messages)
        return Generation(text=self.text, finish_reason=self.finish, prompt_tokens=40,
                          evaluated_tokens=40, reused_tokens=0, completion_tokens=12)


def test_the_reply_starts_inside_the_first_assert() -> None:
    engine = _Scripted("(1) == 2\nassert inc(-1) == 0\n```")
    made = write_tests(engine, PROBLEM, "mod", "inc", SamplingParams())
    assert engine.seen[0][-1] == {"role": "assistant", "content": "```python\nassert inc"}
    assert made is not None
    assert made.asserts == ["assert inc(1) == 2", "assert inc(-1) == 0"]
    assert "from mod import inc" in made.text
    assert [t.id for t in made.tests] == ["test_plancode_generated.py::test_generated_0",
                                          "test_plancode_generated.py::test_generated_1"]


def test_an_engine_that_cannot_continue_a_reply_gets_the_plain_request() -> None:
    engine = _Scripted("```python\nassert inc(1) == 2\n```", prefills=False)
    made = write_tests(engine, PROBLEM, "mod", "inc", SamplingParams())
    assert engine.seen[0][-1]["role"] == "user"
    assert made is not None and made.asserts == ["assert inc(1) == 2"]
    unprefilled = _Scripted("```python\nassert inc(1) == 2\n```")
    write_tests(unprefilled, PROBLEM, "mod", "inc", SamplingParams(), prefill=False)
    assert unprefilled.seen[0][-1]["role"] == "user"


def test_a_line_the_deadline_cut_is_dropped() -> None:
    # cut inside its first assert: nothing usable, not a half-written value
    assert write_tests(_Scripted("(1) == 2", finish="cancelled"), PROBLEM, "mod", "inc",
                       SamplingParams()) is None
    made = write_tests(_Scripted("(1) == 2\nassert inc(5) == ", finish="cancelled"), PROBLEM,
                       "mod", "inc", SamplingParams())
    assert made is not None and made.asserts == ["assert inc(1) == 2"]


def test_the_real_model_writes_on_from_the_started_assert(tiny_engine: LlamaEngine) -> None:
    messages = prompts.test_writing_messages(PROBLEM, "inc")
    start = prompts.tests_prefill("inc")
    rendered = tiny_engine.info.render_chat(prompts.with_reply_start(messages, start))
    assert rendered == tiny_engine.info.render_chat(messages) + start
    text, gen = reply(tiny_engine, PROBLEM, "inc", SamplingParams(max_tokens=16))
    assert text == start + gen.text  # whatever the tiny model writes follows the start


def test_the_writer_stops_at_the_asserts_it_can_use() -> None:
    """A model that goes on writing asserts (or loops on one) is stopped once ``limit`` are
    complete: the engine is cancelled, and only whole lines are kept."""
    lines = "".join(f"\nassert inc({i}) == {i + 1}" for i in range(1, 20))

    class _Streaming(_Scripted):
        def chat(self, messages, params, cancel=None, on_text=None) -> Generation:
            text = ""
            for ch in "(0) == 1" + lines:
                text += ch
                on_text(text)
                if cancel.cancelled:
                    return Generation(text=text, finish_reason="cancelled", prompt_tokens=40,
                                      evaluated_tokens=40, reused_tokens=0,
                                      completion_tokens=len(text))
            return Generation(text=text, finish_reason="stop", prompt_tokens=40,
                              evaluated_tokens=40, reused_tokens=0, completion_tokens=len(text))

    text, gen = reply(_Streaming(""), PROBLEM, "inc", SamplingParams(), limit=3)
    assert gen.finish_reason == "cancelled"
    assert prompts.parse_asserts(text, "inc") == [
        "assert inc(0) == 1", "assert inc(1) == 2", "assert inc(2) == 3"]
    assert len(gen.text) < 60  # stopped right after the third line, not at the end
