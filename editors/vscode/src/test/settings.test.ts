import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import {
  changeKind,
  didChangeConfigurationParams,
  LAUNCH_SETTINGS,
  SERVER_SETTINGS,
  serverSettings,
  settingInMessage,
  toCamel,
  toSnake,
} from "../settings";

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
const props: Record<string, { default: unknown }> = pkg.contributes.configuration.properties;

test("camelCase <-> snake_case like the server's own conversion", () => {
  assert.equal(toSnake("nGpuLayers"), "n_gpu_layers");
  assert.equal(toSnake("remoteUrl"), "remote_url");
  assert.equal(toSnake("model"), "model");
  assert.equal(toCamel("inline_max_tokens"), "inlineMaxTokens");
  for (const key of SERVER_SETTINGS) {
    assert.equal(toCamel(toSnake(key)), key);
  }
});

test("every server and launch setting is contributed in package.json, and nothing else", () => {
  const contributed = Object.keys(props).map((k) => k.replace(/^plancode\./, "")).sort();
  assert.deepEqual(contributed, [...SERVER_SETTINGS, ...LAUNCH_SETTINGS].sort());
});

test("serverSettings sends only server keys, with package.json defaults", () => {
  const read = (k: string) => props[`plancode.${k}`]?.default;
  const out = serverSettings(read);
  assert.deepEqual(Object.keys(out), [...SERVER_SETTINGS]);
  assert.equal(out.model, "qwen2.5-coder-0.5b");
  assert.equal(out.nGpuLayers, 0);
  assert.equal(out.candidates, 4);
  assert.equal(out.testTimeout, 10);
  assert.equal(out.planComments, true);
  for (const k of LAUNCH_SETTINGS) {
    assert.ok(!(k in out), `${k} must not reach the server (it rejects unknown keys)`);
  }
});

test("serverSettings leaves out unset values and trims strings", () => {
  const values: Record<string, unknown> = { model: "  smollm2-135m ", nGpuLayers: -1, seed: null,
    serverPath: "/x/plancode", unrelated: 3 };
  const out = serverSettings((k) => values[k]);
  assert.deepEqual(out, { model: "smollm2-135m", nGpuLayers: -1 });
});

test("didChangeConfiguration puts the settings under a plancode key", () => {
  const params = didChangeConfigurationParams((k) => (k === "candidates" ? 2 : undefined));
  assert.deepEqual(params, { settings: { plancode: { candidates: 2 } } });
});

test("changeKind: launch settings restart, server settings notify", () => {
  const affects = (...changed: string[]) => (s: string) => changed.some((c) => c === s || c.startsWith(`${s}.`));
  assert.equal(changeKind(affects("plancode.serverPath")), "restart");
  assert.equal(changeKind(affects("plancode.serverEnv")), "restart");
  assert.equal(changeKind(affects("plancode.model")), "notify");
  assert.equal(changeKind(affects("plancode.inlineVerify", "plancode.pythonPath")), "restart");
  assert.equal(changeKind(affects("editor.fontSize")), "none");
});

test("settingInMessage finds the setting a server error names", () => {
  assert.equal(settingInMessage("plancode: invalid setting: setting 'n_gpu_layers' = 'x' must be..."),
    "plancode.nGpuLayers");
  assert.equal(settingInMessage("setting 'candidates' = 99 must be between 1 and 32"), "plancode.candidates");
  assert.equal(settingInMessage("unknown setting 'foo'"), undefined);
  assert.equal(settingInMessage("model file /x.gguf does not exist"), undefined);
});
