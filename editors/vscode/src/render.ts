// Rendering a plan-then-code result (docs/complete-json.md) as Markdown.
//
// Pure (no `vscode` import): the "Show last plan and test results" view and the implement
// summary messages come from here.

export interface Verdict {
  id: string;
  outcome: string;
  message?: string;
  seconds?: number;
}

export interface Candidate {
  index: number;
  strategy: string;
  seed?: number | null;
  tests_passed: number;
  tests_failed: number;
  all_passed: boolean;
  error?: string;
  generate_seconds?: number;
  test_seconds?: number;
}

export interface Chosen extends Candidate {
  plan: string;
  code: string;
  verdicts: Verdict[];
}

export interface PipelineResult {
  file: string;
  function: string;
  line: number;
  status: string;
  verified: boolean;
  tests_source: string;
  tests: { id: string; kind: string }[];
  chosen: Chosen | null;
  candidates: Candidate[];
  isolation: string;
  isolation_detail?: string;
  stopped_early?: boolean;
  timings: Record<string, number>;
  /** Added by the `plancode.implement` command: the edit was applied. */
  applied?: boolean;
  /** How strong the evidence for the choice is, in words. */
  strength?: string;
  /** The chosen code passes every one of the user's tests (`verified` or `passes-tests`). */
  passes_user_tests?: boolean;
  /** Why passing the user's tests is not called verified: "few-tests", "in-process" or "". */
  not_verified_because?: string;
  /** False on an answer offered while the search goes on (`plancode/answer`). */
  final?: boolean;
  budget?: number;
  budget_reached?: boolean;
  first_answer?: { index: number; strategy: string; seconds: number; kept: boolean } | null;
  /** Why the answer differs from the first one shown; "" when it does not. */
  change?: string;
}

/** The params of the server's `plancode/answer` notification: an answer offered early. */
export interface AnswerParams {
  uri: string;
  line: number;
  function: string;
  result: PipelineResult;
}

export const ACCEPT_NOW = "Accept now";
export const SHOW_ANSWER = "Show";

// plain words, no emoji: they render everywhere (and read well in a screen reader)
const STATUS_TEXT: Record<string, string> = {
  verified: "Verified: the suggested code passes all of your tests",
  "passes-tests": "Passes your tests — too few checks to call it verified",
  failing: "Not verified: your tests exist, but no candidate passed them all",
  unverified: "Unverified: no tests of yours were found; ranked on tests the model wrote",
  "no-candidate": "No usable candidate",
};

/** The status in words; `passes-tests` says why it is not called verified. */
export function statusText(result: PipelineResult): string {
  if (result.status === "passes-tests" && result.not_verified_because === "in-process") {
    return "Passes your tests — checked in-process (in the candidate's own process), so not called verified";
  }
  return STATUS_TEXT[result.status] ?? result.status;
}

function outcome(text: string): string {
  return text === "passed" ? "passed" : `**${cell(text)}**`;
}

/** Is `x` shaped like a result object (enough to render)? */
export function isResult(x: unknown): x is PipelineResult {
  if (typeof x !== "object" || x === null) {
    return false;
  }
  const r = x as Record<string, unknown>;
  return typeof r.function === "string" && typeof r.status === "string" && Array.isArray(r.candidates);
}

/** Is `x` shaped like the params of `plancode/answer`? */
export function isAnswer(x: unknown): x is AnswerParams {
  if (typeof x !== "object" || x === null) {
    return false;
  }
  const p = x as Record<string, unknown>;
  return typeof p.uri === "string" && typeof p.function === "string" && isResult(p.result);
}

/** How strong an offered answer is, in a few words: the server's `strength`, else its status. */
function answerStrength(result: PipelineResult): string {
  if (result.strength) {
    return result.strength;
  }
  const { passed, total } = testCount(result);
  return result.status === "passes-tests" || result.status === "verified"
    ? `passes your ${total} test${total === 1 ? "" : "s"}` : `${result.status}, ${passed}/${total} tests pass`;
}

/** The message for `plancode/answer`: the first answer is ready, the search goes on. */
export function answerMessage(p: AnswerParams): string {
  return `plancode: first answer for ${p.function}: ${answerStrength(p.result)} — still checking alternatives`;
}

/** "3/3 tests pass" for the chosen candidate. */
export function testCount(result: PipelineResult): { passed: number; total: number } {
  const verdicts = result.chosen?.verdicts ?? [];
  return { passed: verdicts.filter((v) => v.outcome === "passed").length, total: verdicts.length };
}

/** One line: "median: verified, 3/3 tests pass (direct-greedy, 1 candidate, 4.2 s)". */
export function summary(result: PipelineResult): string {
  if (!result.chosen) {
    return `${result.function}: ${result.status}, no usable candidate (${result.candidates.length} tried)`;
  }
  const { passed, total } = testCount(result);
  const n = result.candidates.length;
  const secs = result.timings?.total;
  const time = typeof secs === "number" ? `, ${secs.toFixed(1)} s` : "";
  return `${result.function}: ${result.status}, ${passed}/${total} tests pass ` +
    `(${result.chosen.strategy}, ${n} candidate${n === 1 ? "" : "s"}${time})`;
}

function cell(text: unknown): string {
  return String(text ?? "").replace(/\|/g, "\\|").replace(/\r?\n/g, " ").trim();
}

function fence(code: string, lang = ""): string {
  let ticks = "```";
  while (code.includes(ticks)) {
    ticks += "`";
  }
  return `${ticks}${lang}\n${code.replace(/\s+$/, "")}\n${ticks}`;
}

function planSteps(plan: string): string {
  const lines = plan.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  return lines.map((l, i) => (/^\d+[.)]/.test(l) ? l.replace(/^(\d+)\)/, "$1.") : `${i + 1}. ${l}`))
    .join("\n");
}

function seconds(x: unknown): string {
  return typeof x === "number" ? x.toFixed(2) : "";
}

/** The whole result as a Markdown document: verdict, plan, tests, candidates, code. */
export function renderMarkdown(result: PipelineResult): string {
  const out: string[] = [];
  out.push(`# plancode: \`${result.function}\``);
  out.push("");
  out.push(`**${statusText(result)}**` +
    (result.final === false ? " — first answer, still checking alternatives" :
      result.applied === true ? " — applied to the file" : result.applied === false &&
        result.chosen ? " — not applied" : ""));
  out.push("");
  if (result.strength) {
    out.push(`- Evidence: ${result.strength}`);
  }
  if (result.change) {
    out.push(`- Changed from the first answer: ${result.change}`);
  } else if (result.first_answer && result.final !== false) {
    out.push(`- First answer (candidate ${result.first_answer.index + 1}, \`${result.first_answer.strategy}\`, ` +
      `after ${seconds(result.first_answer.seconds)} s) ${result.first_answer.kept ? "was kept" : "was replaced"}`);
  }
  if (result.budget_reached) {
    out.push(`- Time budget reached${typeof result.budget === "number" ? ` (${result.budget} s)` : ""}: ` +
      "this is the best answer found by then");
  }
  out.push(`- File: \`${result.file}\`, line ${result.line}`);
  if (result.chosen) {
    const { passed, total } = testCount(result);
    out.push(`- Tests: ${passed}/${total} pass (${result.tests_source === "user" ? "your tests" :
      result.tests_source === "generated" ? "tests written by the model" : "no tests"})`);
    out.push(`- Winning strategy: \`${result.chosen.strategy}\` (candidate ${result.chosen.index + 1} ` +
      `of ${result.candidates.length}${result.stopped_early ? ", stopped early" : ""})`);
  }
  out.push(`- Sandbox: ${result.isolation}${result.isolation_detail ? ` — ${result.isolation_detail}` : ""}`);
  const t = result.timings ?? {};
  const timing = Object.entries(t).map(([k, v]) => `${k} ${seconds(v)} s`).join(", ");
  if (timing) {
    out.push(`- Time: ${timing}`);
  }
  out.push("");

  out.push("## Plan");
  out.push("");
  if (result.chosen?.plan?.trim()) {
    out.push(planSteps(result.chosen.plan));
  } else if (result.chosen) {
    out.push("_The winning candidate was written directly, without a plan._");
  } else {
    out.push("_No candidate was chosen._");
  }
  out.push("");

  out.push("## Tests");
  out.push("");
  const verdicts = result.chosen?.verdicts ?? [];
  if (verdicts.length) {
    out.push("| test | outcome | seconds | message |");
    out.push("|---|---|---|---|");
    for (const v of verdicts) {
      out.push(`| \`${cell(v.id)}\` | ${outcome(v.outcome)} | ${seconds(v.seconds)} | ${cell(v.message)} |`);
    }
  } else if (result.tests.length) {
    for (const test of result.tests) {
      out.push(`- \`${test.id}\` (${test.kind})`);
    }
  } else {
    out.push("_No tests were found or written._");
  }
  out.push("");

  out.push("## Candidates");
  out.push("");
  out.push("| # | strategy | passed | failed | generate s | test s | note |");
  out.push("|---|---|---|---|---|---|---|");
  for (const c of result.candidates) {
    const mark = result.chosen && c.index === result.chosen.index ? " (chosen)" : "";
    out.push(`| ${c.index + 1}${mark} | ${cell(c.strategy)}${c.seed != null ? ` (seed ${c.seed})` : ""} | ` +
      `${c.tests_passed} | ${c.tests_failed} | ${seconds(c.generate_seconds)} | ` +
      `${seconds(c.test_seconds)} | ${cell(c.error)} |`);
  }
  out.push("");

  if (result.chosen) {
    out.push("## Code");
    out.push("");
    out.push(fence(result.chosen.code, "python"));
    out.push("");
  }

  return out.join("\n");
}
