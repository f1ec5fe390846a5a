import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { answerMessage, isAnswer, isResult, PipelineResult, renderMarkdown, summary, testCount } from "../render";

// a real `plancode complete examples/textstats/textstats/numbers.py:13 --json` result
const real: PipelineResult = JSON.parse(fs.readFileSync(
  path.join(__dirname, "..", "..", "test-fixtures", "median-result.json"), "utf8"));

function failing(): PipelineResult {
  return {
    file: "/p/m.py", function: "Stack.pop", line: 7, status: "failing", verified: false,
    tests_source: "user", tests: [{ id: "tests/test_m.py::test_pop", kind: "pytest" }],
    chosen: {
      index: 1, strategy: "plan-sampled", seed: 11, tests_passed: 0, tests_failed: 1, all_passed: false,
      plan: "1) Check the stack is not empty\n2) Remove | return the top", code: "def pop(self):\n    return self.items.pop()\n",
      verdicts: [{ id: "tests/test_m.py::test_pop", outcome: "failed", message: "assert 1 == 2\nmore", seconds: 0.25 }],
    },
    candidates: [
      { index: 0, strategy: "direct-greedy", tests_passed: 0, tests_failed: 1, all_passed: false, error: "SyntaxError" },
      { index: 1, strategy: "plan-sampled", seed: 11, tests_passed: 0, tests_failed: 1, all_passed: false },
    ],
    isolation: "rlimit", timings: { total: 12.345 }, applied: false,
  };
}

test("the real fixture is a result", () => {
  assert.ok(isResult(real));
  assert.ok(!isResult(null));
  assert.ok(!isResult({ function: "f" }));
});

test("summary of the real verified result", () => {
  const { passed, total } = testCount(real);
  assert.equal(real.status, "verified");
  assert.equal(passed, total);
  assert.match(summary(real), new RegExp(`^median: verified, ${passed}/${total} tests pass \\(${real.chosen!.strategy}, \\d+ candidates?, [\\d.]+ s\\)$`));
});

test("markdown of the real result: status, code, every verdict, every candidate", () => {
  assert.ok(real.chosen!.verdicts.every((v) => v.outcome === "passed"));
  const md = renderMarkdown(real);
  assert.match(md, /^# plancode: `median`/);
  assert.match(md, /\*\*Verified: the suggested code passes all of your tests\*\*/);
  assert.match(md, /## Code\n\n```python\ndef median/);
  for (const v of real.chosen!.verdicts) {
    assert.ok(md.includes(`\`${v.id}\``), v.id);
  }
  const candidateRows = md.split("## Candidates")[1].split("\n").filter((l) => /^\| \d/.test(l));
  assert.equal(candidateRows.length, real.candidates.length);
  assert.match(md, new RegExp(`Sandbox: ${real.isolation}`));
});

test("markdown of a failing result: plan steps numbered, table cells escaped, message on one line", () => {
  const md = renderMarkdown(failing());
  assert.match(md, /Not verified/);
  assert.match(md, /not applied/);
  assert.match(md, /## Plan\n\n1\. Check the stack is not empty\n2\. Remove \| return the top/);
  assert.match(md, /\| `tests\/test_m\.py::test_pop` \| \*\*failed\*\* \| 0\.25 \| assert 1 == 2 more \|/);
  assert.match(md, /\| 1 \| direct-greedy \| 0 \| 1 \| {2}\| {2}\| SyntaxError \|/);
  assert.match(md, /\| 2 \(chosen\) \| plan-sampled \(seed 11\) \|/);
  assert.match(summary(failing()), /^Stack\.pop: failing, 0\/1 tests pass \(plan-sampled, 2 candidates, 12\.3 s\)$/);
});

test("a direct candidate says it had no plan; no candidate at all renders too", () => {
  const r = failing();
  r.chosen!.plan = "";
  assert.match(renderMarkdown(r), /written directly, without a plan/);
  const none: PipelineResult = { ...failing(), status: "no-candidate", chosen: null, candidates: [] };
  const md = renderMarkdown(none);
  assert.match(md, /No candidate was chosen/);
  assert.doesNotMatch(md, /## Code/);
  assert.match(md, /`tests\/test_m\.py::test_pop` \(pytest\)/);
  assert.equal(summary(none), "Stack.pop: no-candidate, no usable candidate (0 tried)");
});

test("code containing backticks gets a longer fence", () => {
  const r = failing();
  r.chosen!.code = 'def f():\n    return "```"\n';
  assert.match(renderMarkdown(r), /````python\ndef f\(\):\n {4}return "```"\n````/);
});

function offered(): PipelineResult {
  return {
    ...real, status: "passes-tests", verified: false, passes_user_tests: true, final: false,
    strength: "passes your 1 test; 4 of 5 candidates agree on 12 generated inputs", change: "",
    budget: 60, budget_reached: false, first_answer: null, applied: undefined,
  };
}

test("passes-tests is rendered honestly, with the strength", () => {
  const md = renderMarkdown({ ...offered(), final: true, applied: true });
  assert.match(md, /\*\*Passes your tests — too few checks to call it verified\*\*/);
  assert.doesNotMatch(md, /\*\*Verified/);
  assert.match(md, /- Evidence: passes your 1 test; 4 of 5 candidates agree/);
});

test("passes-tests checked in-process says so", () => {
  const md = renderMarkdown({
    ...offered(), final: true, applied: true, not_verified_because: "in-process",
    strength: "passes your 5 tests (checked in-process)",
  });
  assert.match(md, /\*\*Passes your tests — checked in-process \(in the candidate's own process\), so not called verified\*\*/);
  assert.match(md, /- Evidence: passes your 5 tests \(checked in-process\)/);
});

test("an offered answer says the search goes on", () => {
  assert.match(renderMarkdown(offered()), /first answer, still checking alternatives/);
});

test("change and budget_reached are shown", () => {
  const md = renderMarkdown({
    ...offered(), final: true, change: "replaced: 4 of 5 candidates behave like the new answer",
    budget_reached: true, first_answer: { index: 0, strategy: "direct-greedy", seconds: 2.5, kept: false },
  });
  assert.match(md, /Changed from the first answer: replaced: 4 of 5 candidates/);
  assert.match(md, /Time budget reached \(60 s\): this is the best answer found by then/);
  const kept = renderMarkdown({
    ...offered(), final: true, first_answer: { index: 0, strategy: "direct-greedy", seconds: 2.5, kept: true },
  });
  assert.match(kept, /First answer \(candidate 1, `direct-greedy`, after 2.50 s\) was kept/);
  assert.doesNotMatch(renderMarkdown(real), /Time budget reached|Changed from/);
});

test("the plancode/answer message", () => {
  const p = { uri: "file:///p/m.py", line: 3, function: "median", result: offered() };
  assert.ok(isAnswer(p));
  assert.ok(!isAnswer({ uri: "file:///p/m.py", function: "median" }));
  assert.equal(answerMessage(p),
    "plancode: first answer for median: passes your 1 test; 4 of 5 candidates agree on 12 generated inputs" +
    " — still checking alternatives");
  const bare = { ...p, result: { ...offered(), strength: undefined } };
  assert.match(answerMessage(bare), /^plancode: first answer for median: passes your \d+ tests? — still checking/);
});
