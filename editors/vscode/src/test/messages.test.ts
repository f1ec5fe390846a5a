import assert from "node:assert/strict";
import { test } from "node:test";

import { actionsFor, displayText, oneLine } from "../messages";

test("model errors open the model setting and offer the doctor", () => {
  const a = actionsFor("error", "plancode: model file /x.gguf does not exist\n  fix: check the path");
  assert.deepEqual(a.map((x) => x.title), ["Open Settings", "Run Doctor", "Show Log"]);
  assert.equal(a[0].setting, "plancode.model");
  assert.equal(a[1].kind, "runDoctor");
});

test("a llama.cpp crash while loading the model offers the doctor", () => {
  const a = actionsFor("error", "plancode: llama.cpp crashed with SIGILL (illegal instruction) during its first " +
    "generation: ...\n  fix: rebuild llama-cpp-python without AMX");
  assert.ok(a.some((x) => x.kind === "runDoctor"));
  // a message whose fix says to run the doctor gets the button at any level
  const w = actionsFor("warning", "plancode: generation took over 180 s\n  fix: run `plancode doctor`");
  assert.ok(w.some((x) => x.kind === "runDoctor"));
});

test("an invalid setting does not offer the doctor", () => {
  const a = actionsFor("error", "plancode: invalid setting: setting 'test_timeout' = -1 must be between 0.1 and 600.0");
  assert.equal(a.some((x) => x.kind === "runDoctor"), false);
});

test("invalid settings open that setting", () => {
  const a = actionsFor("error", "plancode: invalid setting: setting 'test_timeout' = -1 must be between 0.1 and 600.0");
  assert.equal(a[0].setting, "plancode.testTimeout");
});

test("a failing implement result offers the plan and tests", () => {
  const a = actionsFor("warning", "plancode: median: failing (1/3 tests pass, plan-sampled); nothing was applied");
  assert.deepEqual(a.map((x) => x.kind), ["showLastResult", "showLog"]);
});

test("info messages get no buttons unless they name a setting", () => {
  assert.deepEqual(actionsFor("info", "hello"), []);
});

test("oneLine joins the message and its fix", () => {
  assert.equal(oneLine("plancode: model missing\n  fix: run plancode model fetch"),
    "model missing — fix: run plancode model fetch");
});

test("displayText turns the server's fix line into a sentence", () => {
  assert.equal(displayText("plancode: model file /x.gguf does not exist\n  fix: check the path"),
    "plancode: model file /x.gguf does not exist. Fix: check the path");
  assert.equal(displayText("plancode: a.\n  fix: b"), "plancode: a. Fix: b");
  assert.equal(displayText("one\ntwo"), "one two");
});
