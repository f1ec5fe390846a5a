import assert from "node:assert/strict";
import { test } from "node:test";

import { expandPath, explainExit, LaunchEnv, LaunchPlan, resolveLaunch, which } from "../launch";

function env(files: Record<string, "exe" | "file">, over: Partial<LaunchEnv> = {}): LaunchEnv {
  return {
    pathEnv: "/usr/local/bin:/usr/bin",
    workspaceFolders: ["/ws"],
    home: "/home/u",
    platform: "linux",
    isExecutable: (p) => files[p] === "exe",
    exists: (p) => p in files,
    trusted: true,
    ...over,
  };
}

const none = { serverPath: "", pythonPath: "", serverArgs: [] as string[] };

test("expandPath: ~, ${userHome}, ${workspaceFolder}, relative paths", () => {
  const e = env({});
  assert.equal(expandPath("~/venv/bin/plancode", e), "/home/u/venv/bin/plancode");
  assert.equal(expandPath("${userHome}/x", e), "/home/u/x");
  assert.equal(expandPath("${workspaceFolder}/.venv/bin/plancode", e), "/ws/.venv/bin/plancode");
  assert.equal(expandPath(".venv/bin/plancode", e), "/ws/.venv/bin/plancode");
  assert.equal(expandPath("plancode", e), "plancode");
});

test("which searches PATH in order", () => {
  const e = env({ "/usr/bin/plancode": "exe", "/usr/local/bin/plancode": "file" });
  assert.equal(which("plancode", e), "/usr/bin/plancode");
  assert.equal(which("python3", e), undefined);
});

test("serverPath wins and gets `serve` plus serverArgs", () => {
  const e = env({ "/opt/pc/bin/plancode": "exe", "/usr/bin/plancode": "exe" });
  const plan = resolveLaunch({ ...none, serverPath: "/opt/pc/bin/plancode", serverArgs: ["--log-level", "debug"] }, e);
  assert.deepEqual(plan, { ok: true, command: "/opt/pc/bin/plancode", args: ["serve", "--log-level", "debug"],
    source: "plancode.serverPath" });
});

test("serverPath as a bare name is looked up on PATH", () => {
  const plan = resolveLaunch({ ...none, serverPath: "plancode" }, env({ "/usr/bin/plancode": "exe" }));
  assert.equal(plan.ok && plan.command, "/usr/bin/plancode");
});

test("a missing serverPath is an error naming the setting and the fix", () => {
  const plan = resolveLaunch({ ...none, serverPath: "~/nope/plancode" }, env({ "/usr/bin/plancode": "exe" }));
  assert.equal(plan.ok, false);
  if (!plan.ok) {
    assert.match(plan.problem, /\/home\/u\/nope\/plancode does not exist/);
    assert.match(plan.fix, /plancode\.serverPath/);
    assert.equal(plan.setting, "plancode.serverPath");
  }
});

test("a serverPath that is not executable says so", () => {
  const plan = resolveLaunch({ ...none, serverPath: "/x/plancode" }, env({ "/x/plancode": "file" }));
  assert.ok(!plan.ok && /not executable/.test(plan.problem) && /chmod \+x/.test(plan.fix));
});

test("pythonPath runs -m plancode serve", () => {
  const plan = resolveLaunch({ ...none, pythonPath: "/venv/bin/python" }, env({ "/venv/bin/python": "exe" }));
  assert.deepEqual(plan, { ok: true, command: "/venv/bin/python", args: ["-m", "plancode", "serve"],
    source: "plancode.pythonPath" });
});

test("pythonPath as a bare name uses PATH; missing interpreter is an error", () => {
  const ok = resolveLaunch({ ...none, pythonPath: "python3" }, env({ "/usr/bin/python3": "exe" }));
  assert.equal(ok.ok && ok.command, "/usr/bin/python3");
  const bad = resolveLaunch({ ...none, pythonPath: "/no/python" }, env({}));
  assert.ok(!bad.ok && bad.setting === "plancode.pythonPath" && /pip install plancode/.test(bad.fix));
});

test("default: plancode on PATH before the workspace .venv", () => {
  const e = env({ "/usr/bin/plancode": "exe", "/ws/.venv/bin/plancode": "exe" });
  const plan = resolveLaunch(none, e);
  assert.equal(plan.ok && plan.command, "/usr/bin/plancode");
  assert.equal(plan.ok && plan.source, "PATH");
});

test("default: then the workspace's .venv, then venv, in any workspace folder", () => {
  const plan = resolveLaunch(none, env({ "/ws2/venv/bin/plancode": "exe" }, { workspaceFolders: ["/ws", "/ws2"] }));
  assert.equal(plan.ok && plan.command, "/ws2/venv/bin/plancode");
  assert.equal(plan.ok && plan.source, "workspace virtual environment");
  const dot = resolveLaunch(none, env({ "/ws/.venv/bin/plancode": "exe", "/ws/venv/bin/plancode": "exe" }));
  assert.equal(dot.ok && dot.command, "/ws/.venv/bin/plancode");
});

test("an untrusted workspace's .venv is never run", () => {
  const plan = resolveLaunch(none, env({ "/ws/.venv/bin/plancode": "exe" }, { trusted: false }));
  assert.ok(!plan.ok && /not trusted/.test(plan.problem));
  const onPath = resolveLaunch(none, env({ "/usr/bin/plancode": "exe", "/ws/.venv/bin/plancode": "exe" }, { trusted: false }));
  assert.equal(onPath.ok && onPath.command, "/usr/bin/plancode");
});

test("windows: Scripts\\plancode.exe and ; in PATH", () => {
  const e = env({ "C:\\py\\plancode.exe": "exe" }, { platform: "win32", pathEnv: "C:\\py;C:\\other" });
  // path.join is posix here, so build the expectation the same way the code does
  const plan = resolveLaunch(none, { ...e, isExecutable: (p) => p.endsWith("plancode.exe") && p.startsWith("C:\\py") });
  assert.ok(plan.ok);
});

test("nothing found: the error lists where it looked and how to install", () => {
  const plan = resolveLaunch(none, env({}));
  assert.equal(plan.ok, false);
  if (!plan.ok) {
    assert.match(plan.problem, /not found/);
    assert.match(plan.problem, /\/ws\/\.venv\/bin\/plancode/);
    assert.match(plan.fix, /pip install plancode/);
    assert.equal(plan.setting, "plancode.serverPath");
  }
});

const pyPlan: LaunchPlan = { ok: true, command: "/usr/bin/python3", args: ["-m", "plancode", "serve"],
  source: "plancode.pythonPath" };
const exePlan: LaunchPlan = { ok: true, command: "/v/bin/plancode", args: ["serve"], source: "PATH" };

test("explainExit: Python without plancode", () => {
  const p = explainExit(pyPlan, { exitCode: 1, stderr:
    "/usr/bin/python3: Error while finding module specification for 'plancode' (ModuleNotFoundError: No module named 'plancode')" });
  assert.match(p.problem, /does not have plancode installed/);
  assert.match(p.fix, /\/usr\/bin\/python3 -m pip install plancode/);
  assert.equal(p.setting, "plancode.pythonPath");
});

test("explainExit: a broken installation (a dependency missing)", () => {
  const p = explainExit(exePlan, { exitCode: 1, stderr: "Traceback...\nModuleNotFoundError: No module named 'pygls'" });
  assert.match(p.problem, /incomplete: No module named 'pygls'/);
  assert.match(p.fix, /reinstall/);
  assert.equal(p.setting, "plancode.serverPath");
});

test("explainExit: spawn errors and unknown failures", () => {
  assert.match(explainExit(exePlan, { errno: "ENOENT", stderr: "" }).problem, /does not exist/);
  assert.match(explainExit(exePlan, { errno: "EACCES", stderr: "" }).fix, /chmod \+x/);
  const old = explainExit(exePlan, { exitCode: 2, stderr: "plancode: error: argument cmd: invalid choice: 'serve'" });
  assert.match(old.fix, /upgrade plancode/);
  const other = explainExit(exePlan, { exitCode: 3, stderr: "line 1\nsomething broke\n" });
  assert.match(other.problem, /exit code 3/);
  assert.match(other.problem, /something broke/);
});
