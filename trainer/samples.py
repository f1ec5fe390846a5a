"""The student's own answers, judged by the tests and scored by the teacher: on-policy data.

Supervised training on the teacher's text made the student forget (DESIGN.md); learning from
its *own* samples moves it less. Two methods start from the same data, made here:

* on-policy distillation: the student samples answers, the teacher scores every sampled
  token, and the student is trained to lower the per-token reverse KL to the teacher on
  those samples (the teacher's log-probability of the sampled token, and its top-k there);
* learning from verified answers: rejection-sampled fine-tuning on the answers that pass the
  problem's tests, DPO on passing-vs-failing pairs of one prompt (by tests passed).

For every problem the student writes K direct answers with the server's own prompt (the
reply prefilled with the function through its docstring, as the server asks): sample 0 is
greedy, the rest seeded samples decoded with it in one llama.cpp batch. Each answer is
spliced into its problem and judged in the sandbox by the tests the problem's own solution
passes (``plancode.trainer.references``). The teacher then reads prompt + answer once and
scores each answer token. One row per answer (:func:`sample_row` documents it).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from plancode.engine.types import Generation, SamplingParams
from plancode.errors import PlancodeError
from plancode.prompts import Message, direct_code_messages, parse_code, prefilled
from plancode.testing.types import NEUTRAL, RunResult
from plancode.trainer.checker import Checker
from plancode.trainer.config import SamplesConfig
from plancode.trainer.data import Problem
from plancode.trainer.jsonl_cache import JsonlCache
from plancode.trainer.references import judged, problem_digest, reference_key, reference_row
from plancode.trainer.scorer import TokenScores

MODE = "direct"
DIGITS = 3  # log-probabilities are stored rounded to this many decimals


def direct_prompt(problem: Problem, prefill: bool) -> tuple[list[Message], str]:
    """The server's direct prompt for ``problem`` and the start of its reply (the function
    through its docstring when ``prefill``; '' otherwise)."""
    messages = direct_code_messages(problem.problem, str(problem.meta.get("context", "")))
    return prefilled(messages, problem.problem, prefill)


def answer_code(problem: Problem, text: str, prefill: bool) -> str:
    """The code an answer's ``text`` gives (the prefilled start + text, parsed): what its
    tests judged, and what rejection-sampled fine-tuning keeps when they passed."""
    return parse_code(direct_prompt(problem, prefill)[1] + text)


def sample_key(problem: Problem, k: int) -> str:
    """A row's key: changes when the problem's text or solution does."""
    return f"{problem.id}#{MODE}#{k}#{problem_digest(problem)}"


def sample_seed(seed: int, problem: Problem, k: int) -> int:
    """Sample ``k``'s seed: independent across problems, reproducible."""
    return int(hashlib.sha256(f"{seed}\0{problem.id}\0{k}".encode()).hexdigest()[:8], 16)


def sample_params(cfg: SamplesConfig, problem: Problem, k: int) -> SamplingParams:
    if k == 0:
        return SamplingParams(max_tokens=cfg.max_tokens, temperature=0.0)
    return SamplingParams(max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                          top_k=cfg.top_k, top_p=cfg.top_p, min_p=cfg.min_p,
                          seed=sample_seed(cfg.seed, problem, k))


def problem_order(problems: Sequence[Problem], seed: int) -> list[Problem]:
    """A fixed order that mixes the sources (a hash of each id), so the first N problems
    are a sample of all of them rather than the first package's."""
    return sorted(problems, key=lambda p: hashlib.sha256(f"{seed}\0{p.id}".encode()).digest())


def tokens_digest(tokens: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()[:16]


def _round(values: Sequence[float]) -> list[float]:
    return [round(v, DIGITS) + 0.0 for v in values]  # + 0.0: no "-0.0"


@dataclass
class Verdict:
    """An answer judged by its problem's tests."""

    passed: bool
    outcome: str  # passed | failed | timeout | tampered | no_code | unplaceable
    tests: int = 0  # tests that counted (skips and xfails do not)
    tests_passed: int = 0
    error: str = ""
    isolation: str = ""  # the sandbox it ran in


def verdict_of(run: RunResult) -> Verdict:
    counted = [v for v in run.verdicts if v.outcome not in NEUTRAL]
    passed = sum(v.outcome == "passed" for v in counted)
    outcome = ("timeout" if run.timed_out else "tampered" if run.tampered
               else "passed" if run.all_passed else "failed")
    return Verdict(run.all_passed, outcome, len(counted), passed, isolation=run.isolation)


def judge(checker: Checker, problem: Problem, code: str) -> Verdict:
    if not code.strip():
        return Verdict(False, "no_code")
    try:
        return verdict_of(checker.check(problem, code))
    except PlancodeError as exc:  # it does not parse, or defines something else
        return Verdict(False, "unplaceable", error=exc.message[:300])


def sample_row(problem: Problem, k: int, params: SamplingParams, prompt: Sequence[int],
               start: str, gen: Generation, verdict: Verdict, scores: TokenScores | None,
               seconds: dict[str, float]) -> dict:
    """One answer as a cache row::

        key, id, mode ("direct"), k (0 = greedy), seed, temperature,
        prompt_tokens (how many), prompt_sha (sha256[:16] of the ids, comma-joined: the
            training step renders the prompt again with plancode.trainer.samples.direct_prompt
            and the student's template and must get the same ids),
        tokens: the answer's token ids after the prompt, the end-of-turn token included when
            the answer ended by itself (finish "stop"; "length" = cut at max_tokens),
        text: the answer's text (what follows the reply's prefilled start; the code the
            tests judged is :func:`answer_code` of it: parsed from start + text),
        student_lp: the student's log-probability of each token as it sampled it (untempered),
        teacher_lp: the teacher's log-probability of each token (one forward pass),
        teacher_top / teacher_top_lp: per token, the teacher's best tokens there and their
            log-probabilities, best first, cut once they hold score_top_mass of the probability
            (at most score_top_k),
        passed (every judging test passed), outcome, tests (judging tests that counted),
            tests_passed, error (only when the code could not be placed),
        seconds: [sampling, checking, scoring] for this answer (a batch's shared time split).

    Log-probabilities are natural logs rounded to 3 decimals."""
    tokens = list(gen.tokens) + ([gen.end_token] if gen.end_token is not None else [])
    student = list(gen.logprobs) + ([gen.end_logprob or 0.0] if gen.end_token is not None
                                    else [])
    row = {"key": sample_key(problem, k), "id": problem.id, "mode": MODE, "k": k,
           "seed": params.seed if k else 0, "temperature": params.temperature,
           "prompt_tokens": len(prompt), "prompt_sha": tokens_digest(prompt),
           "finish": gen.finish_reason, "tokens": tokens, "text": gen.text,
           "student_lp": _round(student)}
    if scores is not None:
        row.update(teacher_lp=_round(scores.logprobs), teacher_top=scores.top_ids,
                   teacher_top_lp=[_round(lp) for lp in scores.top_logprobs])
    row.update(passed=verdict.passed, outcome=verdict.outcome, tests=verdict.tests,
               tests_passed=verdict.tests_passed)
    if verdict.error:
        row["error"] = verdict.error
    row["seconds"] = [round(seconds[p], 2) for p in ("sample", "check", "score")]
    return row


@dataclass
class SamplesReport:
    problems: int = 0  # problems considered (the first max_problems in order)
    answered: int = 0  # problems with rows
    samples: int = 0  # rows for the considered problems
    from_cache: int = 0
    generated: int = 0
    passed: int = 0
    greedy_passed: int = 0
    problems_with_a_pass: int = 0
    problems_with_pass_and_fail: int = 0  # a DPO pair exists
    truncated: int = 0  # finish "length"
    broken: list[str] = field(default_factory=list)  # no test passes their own solution
    untested: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    tokens: int = 0  # answer tokens over all rows
    seconds: dict[str, float] = field(default_factory=dict)  # new rows' totals per phase
    isolation: str = ""

    def per_sample(self) -> dict[str, float]:
        n = self.generated
        return {k: round(v / n, 2) for k, v in self.seconds.items()} if n else {}

    def to_json(self) -> dict:
        return {**asdict(self), "seconds_per_sample": self.per_sample(),
                "pass_rate": round(self.passed / self.samples, 4) if self.samples else 0.0}

    def count(self, rows: list[dict]) -> None:
        """Add a problem's rows (cached or new) to the totals."""
        self.answered += bool(rows)
        self.samples += len(rows)
        passes = [r["passed"] for r in rows]
        self.passed += sum(passes)
        self.greedy_passed += sum(r["passed"] for r in rows if r["k"] == 0)
        self.problems_with_a_pass += any(passes)
        self.problems_with_pass_and_fail += any(passes) and not all(passes)
        self.truncated += sum(r["finish"] == "length" for r in rows)
        self.tokens += sum(len(r["tokens"]) for r in rows)
        for r in rows:
            self.outcomes[r["outcome"]] = self.outcomes.get(r["outcome"], 0) + 1


class Scorer(Protocol):
    """What scores answers (a :class:`plancode.trainer.scorer.TokenScorer`)."""

    def score(self, prompt: Sequence[int], answers: Sequence[Sequence[int]], top_k: int,
              top_mass: float) -> list[TokenScores]: ...


class Sampler(Protocol):
    """What writes answers (a :class:`Student`)."""

    def prompt(self, messages: list[Message]) -> list[int]: ...

    def sample(self, prompt: list[int], params: list[SamplingParams]) -> list[Generation]: ...


class Student:
    """The student GGUF: renders and tokenizes prompts, decodes K answers in one batch."""

    def __init__(self, engine, n_seq: int, n_ctx: int) -> None:  # noqa: ANN001 - LlamaEngine
        from plancode.engine.batch import BatchDecoder

        self.engine = engine
        self.decoder = BatchDecoder(engine, n_seq=n_seq, n_ctx=n_ctx)

    def prompt(self, messages: list[Message]) -> list[int]:
        return self.engine.tokenize(self.engine.info.render_chat(messages), special=True)

    def sample(self, prompt: list[int], params: list[SamplingParams]) -> list[Generation]:
        return self.decoder.generate(prompt, params)


def write_samples(student: Sampler, scorer: Scorer | None, checker: Checker,
                  problems: Sequence[Problem], cfg: SamplesConfig, cache: JsonlCache,
                  references: JsonlCache, seed_refs: JsonlCache | None = None,
                  log: Callable[[str], None] | None = None,
                  limit: int | None = None) -> SamplesReport:
    """Fill ``cache`` with ``cfg.samples_per_problem`` judged (and scored) answers for each
    of ``problems`` (already in order), skipping rows it holds; ``limit`` stops after that
    many problems with new rows. ``references`` caches each problem's own-solution verdict;
    ``seed_refs`` (another run's) is read first, so those are not run again."""
    report = SamplesReport(problems=len(problems))
    n_ks = cfg.samples_per_problem
    done_new = 0
    for i, problem in enumerate(problems):
        rows = [cache.get(sample_key(problem, k)) for k in range(n_ks)]
        missing = [k for k, r in enumerate(rows) if r is None]
        if not missing:
            report.from_cache += n_ks
            report.count([r for r in rows if r is not None])
            continue
        if limit is not None and done_new >= limit:
            break
        if not checker.has_tests(problem):
            report.untested.append(problem.id)
            continue
        scored = judged(problem, _reference(checker, problem, references, seed_refs),
                        "reference")
        if scored is None:
            report.broken.append(problem.id)
            continue
        messages, start = direct_prompt(problem, cfg.prefill_code)
        prompt = student.prompt(messages)
        if len(prompt) + cfg.max_tokens >= cfg.n_ctx:
            report.too_long.append(problem.id)
            continue
        new = _answer(student, scorer, checker, problem, scored, cfg, prompt, start, missing,
                      report)
        for row in new:
            cache.add(row)
        done_new += 1
        report.from_cache += n_ks - len(missing)
        report.count([r for r in rows if r is not None] + new)
        if log is not None:
            per = {p: round(sum(r["seconds"][j] for r in new) / len(new), 2)
                   for j, p in enumerate(("sample", "check", "score"))}
            log(f"[samples] {i + 1}/{len(problems)} {problem.id}: "
                f"{sum(r['passed'] for r in new)}/{len(new)} passed "
                f"(greedy {'-' if 0 not in missing else new[0]['outcome']}), "
                f"{sum(len(r['tokens']) for r in new) // len(new)} tokens, s/sample "
                f"{per['sample']} sample + {per['check']} check + {per['score']} score")
    return report


def _reference(checker: Checker, problem: Problem, references: JsonlCache,
               seed_refs: JsonlCache | None) -> dict:
    key = reference_key(problem)
    if key not in references and seed_refs is not None:
        row = seed_refs.get(key)
        if row is not None and ("judges" in row or row.get("passed")):
            references.add(row)
    return reference_row(checker, problem, references)


def _answer(student: Sampler, scorer: Scorer | None, checker: Checker, problem: Problem,
            scored: Problem, cfg: SamplesConfig, prompt: list[int], start: str,
            missing: list[int], report: SamplesReport) -> list[dict]:
    """Sample, judge and score the answers ``missing`` (k values) of one problem."""
    params = [sample_params(cfg, problem, k) for k in missing]
    t = time.perf_counter()
    gens = student.sample(prompt, params)
    sample_s = (time.perf_counter() - t) / len(gens)
    verdicts, check_s = [], []
    for gen in gens:
        t = time.perf_counter()
        verdicts.append(judge(checker, scored, parse_code(start + gen.text)))
        check_s.append(time.perf_counter() - t)
    scores: list[TokenScores | None] = [None] * len(gens)
    score_s = 0.0
    if scorer is not None:
        t = time.perf_counter()
        answers = [list(g.tokens) + ([g.end_token] if g.end_token is not None else [])
                   for g in gens]
        unique = list(dict.fromkeys(tuple(a) for a in answers))  # identical answers once
        by_answer = dict(zip(unique, scorer.score(prompt, [list(u) for u in unique],
                                                  cfg.score_top_k, cfg.score_top_mass),
                             strict=True))
        scores = [by_answer[tuple(a)] for a in answers]
        score_s = (time.perf_counter() - t) / len(gens)
    report.generated += len(gens)
    for phase, value in (("sample", sample_s * len(gens)), ("check", sum(check_s)),
                         ("score", score_s * len(gens))):
        report.seconds[phase] = round(report.seconds.get(phase, 0.0) + value, 2)
    report.isolation = next((v.isolation for v in verdicts if v.isolation), report.isolation)
    return [sample_row(problem, k, p, prompt, start, g, v, s,
                       {"sample": sample_s, "check": c, "score": score_s})
            for k, p, g, v, s, c in zip(missing, params, gens, verdicts, scores, check_s,
                                        strict=True)]
