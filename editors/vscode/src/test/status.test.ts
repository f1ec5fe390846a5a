import assert from "node:assert/strict";
import { test } from "node:test";

import { INITIAL, phase, progressKind, reduce, StatusEvent, StatusState, view } from "../status";

function run(...events: StatusEvent[]): StatusState {
  return events.reduce(reduce, INITIAL);
}

const LOAD = "plancode-load-1-2";
const JOB = "plancode-implement-abc";

test("progress tokens are classified by the server's prefixes", () => {
  assert.equal(progressKind(LOAD), "load");
  assert.equal(progressKind(JOB), "implement");
  assert.equal(progressKind("xyz", "plancode: implement"), "implement");
  assert.equal(progressKind("xyz", "plancode"), "load");
  assert.equal(progressKind("xyz", "indexing"), "other");
});

test("start -> running -> loading -> ready, driven by progress and stats", () => {
  let s = run({ type: "starting", source: "/v/bin/plancode serve (PATH)" });
  assert.equal(phase(s), "starting");
  s = reduce(s, { type: "running" });
  assert.equal(phase(s), "loading", "the model is not known to be ready yet");
  s = reduce(s, { type: "progressBegin", token: LOAD, title: "plancode", message: "loading qwen2.5-coder-0.5b" });
  assert.equal(phase(s), "loading");
  assert.match(view(s).tooltip, /loading qwen2\.5-coder-0\.5b/);
  s = reduce(s, { type: "progressEnd", token: LOAD, message: "qwen2.5-coder-0.5b ready" });
  assert.equal(phase(s), "loading", "ready only once stats confirm it");
  s = reduce(s, { type: "stats", modelState: "ready", model: "qwen2.5-coder-0.5b" });
  assert.equal(phase(s), "ready");
  const v = view(s);
  assert.equal(v.text, "$(check) plancode");
  assert.match(v.tooltip, /ready \(qwen2\.5-coder-0\.5b\)/);
  assert.match(v.tooltip, /Server: \/v\/bin\/plancode serve \(PATH\)/);
  assert.equal(v.severity, "normal");
});

test("implement jobs show as working with their latest message, then back to ready", () => {
  let s = run({ type: "starting" }, { type: "running" }, { type: "stats", modelState: "ready" });
  s = reduce(s, { type: "progressBegin", token: JOB, title: "plancode: implement", message: "starting" });
  assert.equal(phase(s), "working");
  s = reduce(s, { type: "progressReport", token: JOB, message: "median: candidate 2/4 (plan-greedy)", percentage: 25 });
  assert.equal(view(s).text, "$(sync~spin) plancode: median: candidate 2/4 (plan-greedy)");
  assert.match(view(s).tooltip, /candidate 2\/4 \(plan-greedy\) \(25%\)/);
  s = reduce(s, { type: "progressEnd", token: JOB, message: "median: verified" });
  assert.equal(phase(s), "ready");
});

test("a model error (stats) is an error; a later successful load clears it", () => {
  let s = run({ type: "starting" }, { type: "running" },
    { type: "progressBegin", token: LOAD, title: "plancode", message: "loading /x.gguf" },
    { type: "progressEnd", token: LOAD, message: "model file /x.gguf does not exist" },
    { type: "message", level: "error", message: "model file /x.gguf does not exist — fix: check the path" },
    { type: "stats", modelState: "error", model: "/x.gguf" });
  assert.equal(phase(s), "error");
  const v = view(s);
  assert.equal(v.severity, "error");
  assert.equal(v.text, "$(error) plancode");
  assert.match(v.tooltip, /model could not be loaded \(\/x\.gguf\)/);
  assert.match(v.tooltip, /does not exist — fix: check the path/);
  s = reduce(s, { type: "progressBegin", token: LOAD + "b", title: "plancode", message: "loading smollm2-135m" });
  assert.equal(phase(s), "loading", "a new load (e.g. after a settings change) replaces the error");
  assert.equal(s.lastError, undefined);
  s = reduce(s, { type: "stats", modelState: "loading" });
  assert.equal(phase(s), "loading");
  s = reduce(s, { type: "stats", modelState: "ready", model: "smollm2-135m" });
  assert.equal(phase(s), "ready");
  assert.equal(view(s).severity, "normal");
});

test("an error message while ready (e.g. an invalid setting) is a warning, not an error", () => {
  let s = run({ type: "starting" }, { type: "running" }, { type: "stats", modelState: "ready" });
  s = reduce(s, { type: "message", level: "error", message: "invalid setting: setting 'candidates' = 99 ..." });
  assert.equal(phase(s), "ready");
  assert.equal(view(s).severity, "warning");
  assert.match(view(s).tooltip, /Last error: invalid setting/);
  s = reduce(s, { type: "message", level: "warning", message: "something" });
  assert.equal(view(s).severity, "warning");
});

test("start failure is an error with the reason; stop clears jobs", () => {
  let s = run({ type: "starting" }, { type: "startFailed", message: "plancode was not found. Fix: install it" });
  assert.equal(phase(s), "error");
  assert.match(view(s).tooltip, /could not start/);
  assert.match(view(s).tooltip, /not found\. Fix: install it/);
  s = run({ type: "starting" }, { type: "running" }, { type: "stats", modelState: "ready" },
    { type: "progressBegin", token: JOB, title: "plancode: implement" }, { type: "stopped" });
  assert.equal(phase(s), "stopped");
  assert.deepEqual(s.jobs, {});
  s = reduce(s, { type: "starting" });
  assert.equal(phase(s), "starting");
  assert.equal(s.model, "idle");
});

test("reports for unknown tokens change nothing; states are not mutated", () => {
  const s = run({ type: "starting" }, { type: "running" });
  const frozen = JSON.stringify(s);
  assert.equal(reduce(s, { type: "progressReport", token: "other", message: "x" }), s);
  assert.equal(reduce(s, { type: "progressEnd", token: "other" }), s);
  assert.equal(reduce(s, { type: "message", level: "info", message: "hello" }), s);
  reduce(s, { type: "progressBegin", token: JOB, title: "plancode: implement" });
  assert.equal(JSON.stringify(s), frozen);
});

test("an error points at the doctor; the doctor's summary stays in the tooltip across restarts", () => {
  let s = run({ type: "starting" }, { type: "startFailed", message: "the server stopped while starting" });
  assert.match(view(s).tooltip, /Run "Plancode: Run doctor" to check the install/);
  s = reduce(s, { type: "doctor", level: "error", summary: "1 failed, 0 warnings, 7 passed" });
  assert.match(view(s).tooltip, /^Doctor: 1 failed, 0 warnings, 7 passed$/m);
  assert.doesNotMatch(view(s).tooltip, /Run "Plancode: Run doctor"/);
  s = run({ type: "starting" }, { type: "running" }, { type: "stats", modelState: "ready" });
  assert.doesNotMatch(view(s).tooltip, /doctor/i, "no doctor hint while all is well");
  s = reduce(reduce(s, { type: "doctor", level: "info", summary: "all 8 checks passed" }), { type: "starting" });
  assert.match(view(s).tooltip, /Doctor: all 8 checks passed/);
});
