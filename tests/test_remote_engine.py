"""OpenAIEngine against a real OpenAI-compatible server: llama-cpp-python's, on loopback.

The server runs the tiny SmolLM2-135M model in a subprocess for the whole module. It reports
no usage when streaming, so prompt token counts are 0 here and completion tokens are counted
from the stream (one logprob entry per token).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from plancode.config import Settings
from plancode.engine.factory import load_engine
from plancode.engine.remote import OpenAIEngine, _Collector, fim_format_name
from plancode.engine.types import CancelToken, SamplingParams
from plancode.errors import PlancodeError
from plancode.pipeline import Pipeline
from plancode.prompts import FIM_FORMATS

HI = [{"role": "user", "content": "Say hi to me in one short sentence."}]
COUNT = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_model_path),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
           "--interrupt_requests", "False"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({proc.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer in 60 s:\n{log.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def engine(server_url: str) -> OpenAIEngine:
    return OpenAIEngine(server_url, model="smollm2-135m", fim_format="qwen")


def test_chat_reports_text_finish_reason_and_token_counts(engine: OpenAIEngine) -> None:
    streamed: list[str] = []
    gen = engine.chat(HI, SamplingParams(max_tokens=8), on_text=streamed.append)
    assert gen.text.strip() and gen.finish_reason == "length"
    assert gen.completion_tokens == 8 and len(gen.logprobs) == 8
    assert all(lp <= 0.0 for lp in gen.logprobs) and gen.mean_logprob < 0.0
    assert streamed and streamed[-1] == gen.text  # on_text sees the text so far, as it grows
    # llama-cpp-python reports no usage while streaming: nothing is claimed about the prompt
    assert (gen.prompt_tokens, gen.evaluated_tokens, gen.reused_tokens) == (0, 0, 0)
    assert gen.prompt_seconds > 0.0 and gen.decode_seconds > 0.0


def test_greedy_chat_is_deterministic(engine: OpenAIEngine) -> None:
    params = SamplingParams(max_tokens=16, temperature=0.0)
    first, second = engine.chat(HI, params), engine.chat(HI, params)
    assert first.text == second.text and first.text
    assert first.logprobs == pytest.approx(second.logprobs, abs=1e-3)


def test_stop_strings_end_the_text_before_them(engine: OpenAIEngine) -> None:
    full = engine.chat(HI, SamplingParams(max_tokens=24))
    stop = full.text[8:12]
    assert stop.strip(), f"reply too short to pick a stop string from: {full.text!r}"
    gen = engine.chat(HI, SamplingParams(max_tokens=24, stop=(stop,)))
    assert gen.finish_reason == "stop"
    assert gen.text == full.text[: full.text.find(stop)]


def test_raw_completion_stops_at_max_tokens(engine: OpenAIEngine) -> None:
    gen = engine.complete("def add(a, b):\n", SamplingParams(max_tokens=5))
    assert gen.finish_reason == "length" and gen.completion_tokens == 5
    assert len(gen.logprobs) == 5 and gen.text


def test_cancel_stops_a_long_generation_within_a_second(engine: OpenAIEngine) -> None:
    cancel = CancelToken()
    cancelled_at: list[float] = []

    def fire() -> None:
        cancelled_at.append(time.monotonic())
        cancel.cancel()

    timer: list[threading.Timer] = []

    def on_text(text: str) -> None:
        if not timer:  # the server is decoding: cancel mid-stream
            timer.append(threading.Timer(0.3, fire))
            timer[0].start()

    gen = engine.chat(COUNT, SamplingParams(max_tokens=1500), cancel, on_text)
    returned = time.monotonic()
    assert cancelled_at, f"the generation ended before it was cancelled: {gen.finish_reason}"
    assert returned - cancelled_at[0] < 1.0
    assert gen.finish_reason == "cancelled" and gen.text
    # an already-cancelled token never reaches the server
    assert engine.chat(HI, SamplingParams(), cancel).finish_reason == "cancelled"
    # and the server is free for the next request
    assert engine.chat(HI, SamplingParams(max_tokens=4)).finish_reason == "length"


def test_fim_renders_the_configured_format_without_infill(engine: OpenAIEngine) -> None:
    assert engine.fim_format is FIM_FORMATS["qwen"]
    params = SamplingParams(max_tokens=16)
    gen = engine.fim("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n", params)
    assert isinstance(gen.text, str) and gen.finish_reason in {"stop", "length"}
    assert engine.uses_infill is False  # llama-cpp-python has no /infill: rendered prompt used


def test_fim_without_a_format_continues_the_prefix(server_url: str) -> None:
    plain = OpenAIEngine(server_url, fim_format=None)
    params = SamplingParams(max_tokens=8)
    assert plain.fim_format is None
    assert plain.fim("def add(a, b):\n", "", params).text == \
        plain.complete("def add(a, b):\n", params).text


def test_http_errors_name_the_url_and_status(engine: OpenAIEngine) -> None:
    with pytest.raises(PlancodeError) as err:
        engine.chat(HI, SamplingParams(max_tokens=4, top_p=1.5))  # top_p > 1: refused
    assert f"{engine.base_url}/chat/completions answered HTTP 500" in err.value.message
    assert "top_p" in err.value.message  # the server's own explanation
    assert "remote_url" in err.value.fix


def test_a_server_refusing_the_extras_is_asked_with_standard_fields(server_url: str) -> None:
    strict = OpenAIEngine(server_url)
    gen = strict.chat(HI, SamplingParams(max_tokens=4, top_k=-1))  # top_k < 0: refused
    assert gen.finish_reason == "length" and gen.text
    assert gen.logprobs == []  # logprobs were one of the dropped extras: mean_logprob is 0
    assert gen.completion_tokens == 4  # counted from the streamed chunks


def test_unreachable_server_fails_fast_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there any more
    start = time.monotonic()
    with pytest.raises(PlancodeError) as err:
        OpenAIEngine(url).chat(HI, SamplingParams(max_tokens=4))
    assert time.monotonic() - start < 6.0
    assert url in err.value.message and "remote_url" in err.value.fix
    with pytest.raises(PlancodeError, match="cannot reach"):
        load_engine(Settings.from_mapping({"backend": "openai", "remote_url": url}))


def test_load_engine_builds_the_remote_engine(server_url: str) -> None:
    settings = Settings.from_mapping({"backend": "openai", "remote_url": server_url,
                                      "model": "starcoder2-3b"})
    engine = load_engine(settings)
    assert isinstance(engine, OpenAIEngine)
    assert engine.base_url == server_url and engine.model == "starcoder2-3b"
    assert engine.fim_format is FIM_FORMATS["starcoder"]
    assert fim_format_name("qwen2.5-coder-0.5b") == fim_format_name("my-model") == "qwen"


def _chunk(text: str, logprob: float) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None,
                         "logprobs": {"content": [{"token": text, "logprob": logprob}]}}]}


_END = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


@pytest.mark.parametrize(("server", "events", "counts"), [
    # llama-server: usage (with cached_tokens) and timings in a usage-only chunk at the end
    ("llama-server", [_chunk("a", -0.5), _chunk("b", -0.25), _END,
                      {"choices": [], "timings": {"cache_n": 100, "prompt_n": 20},
                       "usage": {"prompt_tokens": 120, "completion_tokens": 2,
                                 "prompt_tokens_details": {"cached_tokens": 100}}}],
     (120, 20, 100, 2, "stop")),
    # older llama-server builds: only timings.prompt_n says how much was evaluated
    ("llama-server (old)", [_chunk("a", -0.5), {**_END, "usage": {"prompt_tokens": 120,
                                                                   "completion_tokens": 1},
                                                "timings": {"prompt_n": 20}}],
     (120, 20, 100, 1, "stop")),
    # vLLM / Ollama: usage after the finish chunk, no cache details
    ("vllm", [_chunk("a", -0.5), _chunk("b", -0.5), _END,
              {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 2}}],
     (30, 30, 0, 2, "stop")),
    # llama-server's native /infill stream
    ("infill", [{"content": "x", "stop": False,
                 "completion_probabilities": [{"token": "x", "logprob": -0.1}]},
                {"content": "", "stop": True, "stop_type": "limit", "tokens_evaluated": 50,
                 "tokens_predicted": 1, "timings": {"prompt_n": 5, "cache_n": 45}}],
     (50, 5, 45, 1, "length")),
])
def test_token_accounting_of_each_server(server: str, events: list[dict],
                                         counts: tuple) -> None:
    """Event shapes as each server's source writes them (only llama-cpp-python runs here)."""
    collector = _Collector([], None)
    for event in events:
        collector.feed(event)
    gen = collector.generation(time.perf_counter(), cancelled=False)
    assert (gen.prompt_tokens, gen.evaluated_tokens, gen.reused_tokens, gen.completion_tokens,
            gen.finish_reason) == counts, server
    assert len(gen.logprobs) == gen.completion_tokens


def test_stop_strings_split_across_chunks_are_found() -> None:
    seen: list[str] = []
    collector = _Collector(["cd"], seen.append)
    collector.feed(_chunk("abc", -0.1))
    collector.feed(_chunk("de", -0.1))
    assert (collector.text, collector.finish, collector.cut, seen) == ("ab", "stop", True, ["abc"])


def test_pipeline_runs_end_to_end_on_the_remote_engine(server_url: str, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'calc'\n")
    module = tmp_path / "calc.py"
    module.write_text(
        "def double(x):\n"
        '    """Return twice x.\n\n'
        "    >>> double(3)\n"
        "    6\n"
        '    """\n'
    )
    settings = Settings.from_mapping({"backend": "openai", "remote_url": server_url,
                                      "candidates": 2, "max_tokens": 48, "repair_rounds": 0})
    result = Pipeline(load_engine(settings), settings).run(module, 0)
    assert result.function == "double" and result.tests_source == "user"
    assert [t.id for t in result.tests] == ["calc.py::calc.double"]
    assert [c.strategy for c in result.candidates][:1] == ["direct-greedy"]
    for cand in result.candidates:
        assert cand.error or (cand.run is not None and len(cand.run.verdicts) == 1)
        assert cand.completion_tokens > 0
    # one doctest example is weak evidence: passing it is "passes-tests", never "verified"
    assert result.status in {"passes-tests", "failing", "no-candidate"}


def test_hard_functions_escalate_to_a_model_on_a_remote_server(
        server_url: str, tiny_engine, tmp_path: Path) -> None:
    """``escalate_model = NAME@URL``: the local model's candidates fail, so the larger model on
    the team's server is asked; its candidates are labelled with its name and tested here."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'vault'\n")
    module = tmp_path / "vault.py"
    module.write_text(
        "def secret_code():\n"
        '    """Return the vault\'s code.\n\n'
        "    >>> secret_code()\n"
        "    'plancode-7f3a'\n"
        '    """\n'
    )
    settings = Settings.from_mapping({"model": "smollm2-135m", "candidates": 1,
                                      "repair_rounds": 0, "max_tokens": 32,
                                      "escalate_model": f"served-smol@{server_url}"})
    events: list[str] = []
    result = Pipeline(tiny_engine, settings).run(module, 0,
                                                 progress=lambda e, p: events.append(str(e)))
    remote = [c for c in result.candidates if c.strategy.startswith("served-smol:")]
    assert remote, [c.strategy for c in result.candidates]
    assert all(c.completion_tokens > 0 for c in remote)
    assert "escalating" in events


def test_a_malformed_remote_escalation_is_refused_with_the_form_to_use() -> None:
    with pytest.raises(PlancodeError) as err:
        Settings.from_mapping({"escalate_model": "big@gpu-box:8080"})
    assert "MODEL@URL" in str(err.value)
    settings = Settings.from_mapping({"escalate_model": "big@http://gpu-box:8080/v1"})
    from plancode.pipeline import escalate
    assert escalate.model_of(settings) == "big"
    assert escalate.endpoint_of(settings) == "http://gpu-box:8080/v1"
    assert escalate.settings_for(settings).backend == "openai"
