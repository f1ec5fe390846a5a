"""HumanEval through plancode's own modes: one runner for ``plancode eval`` and the benchmark.

Modes, each on the same problems with the same engine, each from a cold KV cache:

* ``direct``  the model's greedy code for the prompt (no plan, no tests);
* ``plan``    greedy plan, then greedy code following it (no tests);

  both spliced under the prompt's signature and docstring and given the deterministic import
  repair every plancode candidate gets (``static_fixes``): with ``prefill_code`` the model
  writes only the body, below the prompt's imports, so it cannot add one of its own;
* ``select``  plancode's pipeline: candidates ranked on the *docstring examples only* (``>>>``
  doctests and prose examples such as ``f(1) == 2``, the "user's tests");
* ``weak``    the pipeline when the user has *one* test: only the FIRST docstring example,
  written as a pytest test in ``tests/test_visible.py``; the docstring's examples are not
  used as tests (``docstring_examples = false``) but stay in the prompt.

The hidden HumanEval tests only score. Every program runs in plancode's sandbox. Each row also
carries the body the mode wrote, so CodeBLEU's syntax and data-flow match against the
canonical solution can be computed. Rows are cached one per (problem, mode) in a JSONL file
named for the model and the settings that change its answers (:func:`rows_file`), so an
interrupted run resumes, and two runs that evaluate the same model the same way (a distillation
and its ablation, the distillation's base and the HumanEval benchmark) share the work.
HumanEval is evaluation data only (``plancode.trainer.decontam`` keeps it out of training).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from plancode.analysis import pyparse
from plancode.analysis.facts import parameters
from plancode.analysis.functions import FunctionInfo, find_function
from plancode.analysis.splice import SpliceError, splice
from plancode.config import Settings
from plancode.engine.types import SamplingParams
from plancode.pipeline import Pipeline, static_repair
from plancode.pipeline import candidates as cands
from plancode.testing.prose_examples import all_examples
from plancode.testing.sandbox import Sandbox
from plancode.testing.types import TestCase
from plancode.trainer import pools
from plancode.trainer.decontam import load_humaneval
from plancode.trainer.jsonl_cache import Claims, JsonlCache, shared_work

MODES = ("direct", "plan", "select", "weak")
REPO = Path(__file__).resolve().parent.parent
# the settings that change what a mode writes (threads, GPU layers and timeouts do not)
ANSWER_SETTINGS = ("candidates", "repair_rounds", "parallel_candidates", "escalate_model",
                   "max_tokens", "temperature", "seed", "n_ctx", "prefill_code")


def def_line(text: str, entry: str) -> int | None:
    """The 0-based line of ``def entry(`` at the top level of ``text``."""
    return next((i for i, line in enumerate(text.splitlines())
                 if line.startswith(f"def {entry}(")), None)


def target(problem: dict, text: str) -> FunctionInfo | None:
    """The entry-point function in ``text`` (a whole module)."""
    line = def_line(text, problem["entry_point"])
    return find_function(text, line) if line is not None else None


def body_of(problem: dict, text: str | None) -> str:
    """The entry point's body in ``text``, dedented ('' when absent)."""
    info = target(problem, text) if text else None
    if info is None or text is None:
        return ""
    return textwrap.dedent(text[info.body_start:info.body_end])


def reference_body(problem: dict) -> str:
    return body_of(problem, problem["prompt"] + problem["canonical_solution"])


def score(workspace: Path, problem: dict, text: str | None, isolation: str) -> bool:
    """Run the hidden tests against the file ``text``; True when they pass."""
    if text is None:
        return False
    hidden = (f"from problem import *\n\n{problem['test']}\n\n"
              f"def test_hidden():\n    check({problem['entry_point']})\n")
    with Sandbox(workspace, isolation=isolation, timeout=20.0) as box:
        run = box.run_tests({"problem.py": text, "test_hidden.py": hidden},
                            [TestCase("test_hidden.py::test_hidden", "pytest", "test_hidden.py",
                                      "hidden")])
    return run.all_passed


class _LastFinish:
    """``engine`` passed through, remembering why its last chat stopped (``finish_reason``:
    the candidate keeps only its code, and a truncated answer must be told from a wrong one)."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.finish: str | None = None

    def chat(self, *args, **kwargs):
        gen = self._engine.chat(*args, **kwargs)
        self.finish = getattr(gen, "finish_reason", None)
        return gen

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def _parses(text: str) -> bool:
    try:
        pyparse.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def single(engine, problem: dict, strategy: str, max_tokens: int, prefill: bool = False) -> dict:
    """One greedy answer in ``strategy``'s mode. Besides the verdict's inputs the row records
    how the answer ended (issue 32's gates: a "drop" that is really truncation is a harness
    bug): ``finish`` (the last reply's ``stop``/``length``/``cancelled``), ``truncated``
    (``length``), ``empty`` (no code block) and ``unparseable`` (code that does not splice or
    parse). Rows written before these fields lack them: readers use ``row.get``."""
    source = problem["prompt"]
    info = target(problem, source)
    assert info is not None
    watched = _LastFinish(engine)
    start = time.perf_counter()
    cand = cands.generate(watched, info.problem, 0, strategy, None,
                          SamplingParams(max_tokens=max_tokens), 0.0, None, info.context,
                          prefill)
    seconds = time.perf_counter() - start
    try:
        text = splice(source, info, cand.code).text if cand.code else None
    except SpliceError:
        text = None
    fixes: list[str] = []
    if text is not None:  # the deterministic import repair every candidate of plancode gets
        fixed = static_repair.check(text)
        text, fixes = (text, []) if fixed.error else (fixed.text, fixed.added)
    return {"text": text, "seconds": seconds, "candidates": 1, "strategy": strategy,
            "tokens": cand.completion_tokens, "static_fixes": fixes,
            "finish": watched.finish, "truncated": watched.finish == "length",
            "empty": not cand.code.strip(),
            "unparseable": bool(cand.code.strip()) and (text is None or not _parses(text))}


def select(pipeline: Pipeline, problem: dict, workspace: Path) -> dict:
    source = problem["prompt"]
    start = time.perf_counter()
    result = pipeline.run(workspace / "problem.py", def_line(source, problem["entry_point"]),
                          source=source, root=workspace)
    chosen, first = result.chosen, result.first_answer
    return {
        "text": chosen.spliced_text if chosen else None,
        # the first answer shown (the first candidate to pass the user's tests) and when:
        # time to first verified answer, and whether what the user saw first was right
        "first_text": first.spliced_text if first else None,
        "first_seconds": (round(result.first_answer_seconds, 3)
                          if result.first_answer_seconds is not None else None),
        "status": result.status,
        "budget_reached": result.budget_reached,
        "budget": pipeline.settings.budget,  # not in the rows file's name: say it per row
        "seconds": time.perf_counter() - start,
        "candidates": len(result.candidates),
        "strategy": chosen.strategy if chosen else None,
        "tests_source": result.tests_source,
        "user_tests": len(result.tests),
        "passed_examples": bool(chosen and chosen.all_passed),
        "isolation": result.isolation,
        # where the pipeline's time went (generation, testing, selection, escalation...)
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
        # the whole pool, for judging choosers offline (``pool``: see :func:`_score_pool`)
        "pool": [{**pools.entry(c, chosen), "text": c.spliced_text} for c in result.candidates],
        "agreement": result.agreement.to_json() if result.agreement else None,
    }


def first_example_test(problem: dict) -> str | None:
    """``tests/test_visible.py`` holding the prompt's first docstring example, or None."""
    info = target(problem, problem["prompt"])
    if info is None or not info.docstring:
        return None
    try:
        doc = eval(info.docstring)  # noqa: S307 - a string literal from HumanEval's own prompt
    except Exception:  # noqa: BLE001
        return None
    examples = all_examples(doc, info.name, parameters(info))
    if not examples:
        return None
    ex = examples[0]
    return (f"import pytest\n\nfrom problem import {info.name}\n\n\n"
            f"def test_first_example():\n"
            f"    expected = {ex.expected}\n"
            f"    actual = {ex.call}\n"
            f"    assert actual == (pytest.approx(expected) if isinstance(expected, float) "
            f"else expected)\n")


def weak(pipeline: Pipeline, problem: dict, workspace: Path) -> dict:
    """``select`` with the first docstring example as the user's only test (a pytest file)."""
    visible = first_example_test(problem)
    tests = workspace / "tests" / "test_visible.py"
    if visible is not None:
        tests.parent.mkdir(exist_ok=True)
        tests.write_text(visible)
    no_examples = Pipeline(pipeline.engine,
                           Settings.from_mapping({"docstring_examples": False}, pipeline.settings))
    try:
        out = select(no_examples, problem, workspace)
    finally:
        tests.unlink(missing_ok=True)
    out["visible_test"] = visible is not None
    return out


def problems(start: int = 0, end: int = 164, tasks: list[int] | None = None) -> list[dict]:
    chosen = load_humaneval()[start:end]
    if tasks:
        chosen = [p for p in chosen if int(p["task_id"].split("/")[1]) in tasks]
    return chosen


def commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes): rows of a long, resumed
    run say which code made them."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def engine_rows_file(directory: Path, engine, settings: Settings) -> Path:
    """:func:`rows_file` of a loaded engine (a llama.cpp engine knows its files)."""
    return rows_file(directory, getattr(engine, "model_path", None) or type(engine).__name__,
                     getattr(engine, "lora_path", None), settings)


def _file_identity(path: Path | None) -> str:
    """A model file by name and size, an adapter by content (a retrained adapter keeps its
    name): the same files give the same identity wherever they live."""
    if path is None:
        return ""
    path = Path(path)
    if path.stat().st_size < 200 * 2**20:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{path.name}:{path.stat().st_size}"


def rows_file(directory: Path, model: Path | str, adapter: Path | None,
              settings: Settings) -> Path:
    """Where the rows of a model file (with ``adapter`` applied) under ``settings`` live."""
    name = Path(model).stem
    identity = _file_identity(Path(model)) if Path(model).exists() else str(model)
    key = json.dumps([identity, _file_identity(adapter),
                      {k: getattr(settings, k) for k in ANSWER_SETTINGS}], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return directory / f"humaneval-{name}{'+adapter' if adapter else ''}-{digest}.jsonl"


def _score_pool(pool: list[dict], workspace: Path, problem: dict, isolation: str,
                known: dict[str, bool]) -> list[dict] | None:
    """Each pool member's hidden-test verdict (``hidden``), its file text dropped: the pool
    of every pipeline answer, kept so choosers can be compared offline on the same
    candidates. ``known``: verdicts already computed, by file text."""
    for cand in pool:
        text = cand.pop("text")
        if text is not None and text not in known:
            known[text] = score(workspace, problem, text, isolation)
        cand["hidden"] = known.get(text, False) if text is not None else False
    return pool


def _answer(pipeline: Pipeline, problem: dict, mode: str, workspace: Path,
            max_tokens: int, pools: bool = False) -> dict:
    pipeline.engine.reset_cache()  # every mode starts cold: no mode profits from another
    if mode == "select":
        out = select(pipeline, problem, workspace)
    elif mode == "weak":
        out = weak(pipeline, problem, workspace)
    else:
        strategy = cands.DIRECT if mode == "direct" else cands.PLAN_GREEDY
        out = single(pipeline.engine, problem, strategy, max_tokens,
                     pipeline.settings.prefill_code)
    text, first = out.pop("text"), out.pop("first_text", None)
    out["body"] = body_of(problem, text)
    out["passed"] = score(workspace, problem, text, pipeline.settings.isolation)
    if "first_seconds" in out:  # pipeline modes: was the first answer shown right too?
        out["first_passed"] = (None if first is None else out["passed"] if first == text
                               else score(workspace, problem, first,
                                          pipeline.settings.isolation))
    pool = out.pop("pool", None)
    if pools and pool is not None:  # after the clock stopped: the row's times are the user's
        known = {t: v for t, v in ((text, out["passed"]), (first, out.get("first_passed")))
                 if t is not None and v is not None}
        out["pool"] = _score_pool(pool, workspace, problem, pipeline.settings.isolation,
                                  known)
    return out


def run(pipeline: Pipeline, chosen: list[dict], modes: tuple[str, ...] | list[str],
        max_tokens: int, log: bool = True, cache: JsonlCache | None = None,
        poll: float = 5.0, pools: bool = False) -> list[dict]:
    """One row per problem: per mode whether the hidden tests passed, time, and the body.

    With ``cache``, each (problem, mode) already in it is reused and each new one is appended
    as soon as it is scored. Processes sharing the cache split the problems: each claims a
    problem before answering it (:class:`Claims`) and passes over the ones another process
    holds, coming back to them (every ``poll`` seconds) once it has nothing else to do.
    ``pools``: pipeline rows also keep their whole candidate pool, each candidate scored on
    the hidden tests once the row's clock has stopped."""
    made_by = commit()
    claims = Claims(cache.path) if cache is not None else None

    def todo(p: dict) -> list[str]:
        if cache is None:
            return list(modes)
        cache.refresh()
        return [m for m in modes if f"{p['task_id']}#{m}" not in cache]

    done: dict[str, dict] = {}
    for p in shared_work(chosen, lambda p: p["task_id"], lambda p: bool(todo(p)), claims, poll):
        answered = todo(p)
        done[p["task_id"]] = _problem_row(pipeline, p, modes, answered, max_tokens, cache,
                                          made_by, pools)
        if log:
            _log_row(done[p["task_id"]], modes, answered)
    for p in chosen:  # the rest were cached already (or by the other processes meanwhile)
        if p["task_id"] not in done:
            done[p["task_id"]] = _problem_row(pipeline, p, modes, [], max_tokens, cache,
                                              made_by)
            if log:
                _log_row(done[p["task_id"]], modes, [])
    return [done[p["task_id"]] for p in chosen]


def _log_row(row: dict, modes, answered: list[str]) -> None:
    """One line a problem: each mode's verdict and seconds, ``*`` where it came from cache."""
    print(f"{row['task_id']}: " + " ".join(
        f"{m}={'PASS' if row[m]['passed'] else 'fail'}({row[m]['seconds']:.1f}s)"
        + ("" if m in answered else "*") for m in modes), file=sys.stderr, flush=True)


def _problem_row(pipeline: Pipeline, p: dict, modes, todo: list[str], max_tokens: int,
                 cache: JsonlCache | None, made_by: str, pools: bool = False) -> dict:
    """Problem ``p``'s row: the modes in ``todo`` answered now (and cached), the rest read
    from the cache."""
    row: dict = {"task_id": p["task_id"]}
    for mode in modes:
        if mode not in todo:
            row[mode] = cache.get(f"{p['task_id']}#{mode}")  # type: ignore[union-attr]
    if todo:
        with tempfile.TemporaryDirectory(prefix="plancode-he-") as tmp:
            ws = Path(tmp)
            (ws / "problem.py").write_text(p["prompt"])
            (ws / "pyproject.toml").write_text("[project]\nname = 'problem'\n")
            for mode in todo:
                row[mode] = {"key": f"{p['task_id']}#{mode}", "task_id": p["task_id"],
                             "mode": mode,
                             **_answer(pipeline, p, mode, ws, max_tokens, pools),
                             "commit": made_by}
                if cache is not None:
                    cache.add(row[mode])
    return {"task_id": p["task_id"], **{m: row[m] for m in modes}}
