"""Prompt contract: builders, and plan/code extraction on replies the real model wrote."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from plancode import prompts
from plancode.engine.llama_engine import LlamaEngine
from plancode.engine.types import SamplingParams

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "replies.json").read_text())
RECORDS = FIXTURES["records"]
REPO = Path(__file__).resolve().parent.parent


def _ids(records: list[dict]) -> list[str]:
    return [f"{r['problem_name']}-{r['task']}" for r in records]


PLANS = [r for r in RECORDS if r["task"] == "plan"]
CODES = [r for r in RECORDS if r["task"] in {"code", "direct"}]


@pytest.mark.parametrize("record", PLANS, ids=_ids(PLANS))
def test_plan_is_extracted_from_real_replies(record: dict) -> None:
    plan = prompts.parse_plan(record["reply"])
    steps = plan.splitlines()
    assert 3 <= len(steps) <= 12
    assert all(re.match(rf"{i}\. \S", s) for i, s in enumerate(steps, 1))
    assert "```" not in plan and "def " not in plan and "**" not in plan


@pytest.mark.parametrize("record", PLANS, ids=_ids(PLANS))
def test_plan_round_trips(record: dict) -> None:
    plan = prompts.parse_plan(record["reply"])
    assert prompts.parse_plan(plan) == plan
    assert prompts.parse_plan(prompts.format_plan_reply(plan)) == plan


@pytest.mark.parametrize("record", CODES, ids=_ids(CODES))
def test_code_is_extracted_from_real_replies(record: dict) -> None:
    code = prompts.parse_code(record["reply"])
    tree = ast.parse(code)
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert record["function"] in names
    assert "```" not in code


@pytest.mark.parametrize("record", CODES, ids=_ids(CODES))
def test_code_round_trips(record: dict) -> None:
    code = prompts.parse_code(record["reply"])
    assert prompts.parse_code(prompts.format_code_reply(code)) == \
        prompts.without_docstring(code).strip("\n")


def test_code_replies_leave_the_docstring_out() -> None:
    """The splice keeps the user's docstring, so a code reply (and a training target) never
    spends tokens copying it; a string that is not the docstring stays."""
    code = ('import re\n\n\n@cache\ndef slug(text: str) -> str:  # keep\n'
            '    """Lower-case words joined by dashes.\n\n    >>> slug("A b")\n    \'a-b\'\n'
            '    """\n    sep = """-"""\n    return sep.join(re.findall(r"\\w+", text.lower()))\n')
    reply = prompts.format_code_reply(code)
    assert "Lower-case" not in reply and ">>>" not in reply
    assert '@cache\ndef slug(text: str) -> str:  # keep\n    sep = """-"""\n' in reply
    assert prompts.without_docstring('def f():\n    """All there is."""\n') == \
        'def f():\n    """All there is."""\n'  # a body of only a docstring stays valid
    assert prompts.without_docstring("def f(:\n") == "def f(:\n"
    assert "not its docstring" in prompts.CODE_REQUEST


def test_the_contract_digest_follows_the_prompts(monkeypatch) -> None:
    code = prompts.contract_digest("code")
    assert code == prompts.contract_digest("code") != prompts.contract_digest("plan")
    monkeypatch.setattr(prompts, "CODE_REQUEST", "Write the function.")
    assert prompts.contract_digest("code") != code


def test_code_prompt_carries_the_parsed_plan() -> None:
    code_records = {r["problem_name"]: r for r in RECORDS if r["task"] == "code"}
    for plan_record in PLANS:
        plan = prompts.parse_plan(plan_record["reply"])
        user = code_records[plan_record["problem_name"]]["messages"][-1]["content"]
        assert plan in user


def test_parsers_on_awkward_replies() -> None:
    reply = ("Sure!\n\nStep 1: read the input\nStep 2: loop\n  over every item\n"
             "```python\nx = 1\n```\n- not a step after code?\n")
    assert prompts.plan_steps(reply)[:2] == ["read the input", "loop over every item"]
    assert prompts.plan_steps("just do it\nthen return") == ["just do it", "then return"]
    assert prompts.parse_code("no code here at all") == ""
    assert prompts.parse_code("def f():\n    return 1\n") == "def f():\n    return 1"
    two = "```\nprint('usage')\n```\n```python\ndef g(x):\n    return x\n```"
    assert prompts.parse_code(two) == "def g(x):\n    return x"
    assert prompts.parse_code("```js\nfunction f() {}\n```") == ""
    unterminated = "```python\ndef h():\n    return 2\n"
    assert prompts.parse_code(unterminated) == "def h():\n    return 2"


def test_builders_put_the_problem_in_the_user_turn() -> None:
    problem = "def f(x):\n    \"\"\"Double x.\"\"\"\n"
    for msgs in (
        prompts.plan_messages(problem),
        prompts.code_from_plan_messages(problem, "1. double it"),
        prompts.direct_code_messages(problem),
        prompts.backward_plan_messages(problem, "def f(x):\n    return 2 * x\n"),
        prompts.repair_messages(problem, "1. x", "def f(x): return x", "AssertionError"),
    ):
        assert [m["role"] for m in msgs] == ["system", "user"]
        assert problem.rstrip() in msgs[-1]["content"]
    backward = prompts.backward_plan_messages(problem, "def f(x):\n    return 2 * x\n")
    assert "return 2 * x" in backward[-1]["content"]


def test_fim_format_detection() -> None:
    qwen_vocab = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"}
    fmt = prompts.fim_format_for(lambda t: t in qwen_vocab)
    assert fmt is not None and fmt.name == "qwen"
    assert fmt.render("a", "b") == "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    star = prompts.fim_format_for(lambda t: t in {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"})
    assert star is not None and star.name == "starcoder"
    assert prompts.fim_format_for(lambda t: False) is None


def test_no_other_module_defines_a_prompt() -> None:
    """One source of truth: chat messages and FIM tokens appear only in server/prompts.py."""
    offenders = []
    for path in list((REPO / "server").rglob("*.py")) + list((REPO / "trainer").rglob("*.py")):
        if path.name == "prompts.py":
            continue
        text = path.read_text()
        if re.search(r"""["']role["']\s*:\s*["'](system|user)""", text) or "<|fim_" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


@pytest.mark.slow
def test_fixtures_are_what_the_model_really_writes(default_engine: LlamaEngine) -> None:
    """Greedy decoding reproduces a recorded reply: the fixtures are real model output."""
    record = next(r for r in RECORDS if r["task"] == "direct")
    gen = default_engine.chat(record["messages"],
                              SamplingParams(max_tokens=FIXTURES["max_tokens"]))
    assert gen.text == record["reply"]
