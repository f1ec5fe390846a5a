import assert from "node:assert/strict";
import * as fs from "node:fs";
import { test } from "node:test";

import {
  asReport,
  commandLine,
  DoctorInvocation,
  doctorEnv,
  doctorHelps,
  doctorInvocation,
  doctorNotice,
  inline,
  interpretDoctor,
  renderDoctorMarkdown,
  renderDoctorProblem,
} from "../doctor";
import { runToEnd } from "../doctorProcess";
import { LaunchPlan } from "../launch";
import { serverSettings } from "../settings";

const REBUILD = "rebuild llama-cpp-python without AMX, with this CPU's other instructions: " +
  "`/v/bin/python -m plancode.doctor.llama_build install --force` (in a plancode checkout: " +
  "`make clean && make demo`)";

// what `plancode doctor --json` prints on an Intel AMX machine with the default native build
// (server/doctor/report.py as_json: indent=2)
const SIGILL_REPORT = JSON.stringify({
  ok: false,
  summary: "2 failed, 1 warning, 5 passed",
  checks: [
    { id: "python", title: "Python", status: "ok", finding: "Python 3.11.2 at /v/bin/python", fix: "", details: {} },
    { id: "llama_cpp", title: "llama-cpp-python", status: "ok", finding: "llama-cpp-python 0.3.36 imports", fix: "",
      details: { version: "0.3.36" } },
    { id: "model", title: "model store", status: "ok",
      finding: "qwen2.5-coder-0.5b cached and verified (sha256 0123456789ab…) in /home/u/.cache/plancode", fix: "",
      details: { path: "/home/u/.cache/plancode/qwen.gguf", sha256: "0123456789abcdef", store: "/home/u/.cache/plancode" } },
    { id: "generation", title: "generation", status: "fail",
      finding: "llama.cpp crashed with SIGILL (illegal instruction) during its first generation: this " +
        "llama-cpp-python build uses CPU instructions the process may not execute (ggml's AMX kernels on " +
        "Intel Xeon, llama.cpp PR #26954)",
      fix: REBUILD, details: { stage: "loaded", signal: "SIGILL", seconds: 2.31, token: null } },
    { id: "build", title: "llama.cpp build", status: "fail",
      finding: "this build has ggml's AMX kernels and this CPU has AMX: generation crashes with SIGILL (llama.cpp PR #26954)",
      fix: REBUILD, details: { features: ["AVX", "AVX2", "AMX_INT8"], system_info: "CPU : SSE3 = 1 | AVX = 1 | ".repeat(10),
        cpu_amx: ["amx_bf16", "amx_int8", "amx_tile"] } },
    { id: "gpu", title: "GPU offload", status: "ok", finding: "not available (CPU-only build; n_gpu_layers=0, so none is needed)",
      fix: "", details: { available: false } },
    { id: "sandbox", title: "test sandbox", status: "warn", finding: "rlimit (no bubblewrap): no network or file-system isolation",
      fix: "`apt-get install bubblewrap` (and allow unprivileged user namespaces if your distribution restricts them)",
      details: { isolation: "rlimit", detail: "no network or file-system isolation" } },
    { id: "interpreter", title: "test interpreter", status: "ok",
      finding: "/ws/.venv/bin/python (Python 3.11.2, pytest 8.3.4) runs the tests of /ws", fix: "", details: {} },
  ],
}, null, 2);

const ALL_OK = JSON.stringify({
  ok: true,
  summary: "all 2 checks passed",
  checks: [
    { id: "python", title: "Python", status: "ok", finding: "Python 3.12.1 at /v/bin/python", fix: "", details: {} },
    { id: "generation", title: "generation", status: "ok",
      finding: "loaded qwen.gguf and generated one token in 3.2 s (in a child process)", fix: "", details: {} },
  ],
});

const exePlan: LaunchPlan = { ok: true, command: "/v/bin/plancode", args: ["serve", "--log-level", "debug"], source: "PATH" };
const pyPlan: LaunchPlan = { ok: true, command: "/v/bin/python", args: ["-m", "plancode", "serve"], source: "plancode.pythonPath" };
const inv: DoctorInvocation = { command: "/v/bin/plancode", args: ["doctor", "--json"] };

test("the doctor runs the server's executable with `doctor --json`, the model and the workspace", () => {
  assert.deepEqual(doctorInvocation(exePlan, { model: "qwen2.5-coder-0.5b", workspace: "/ws/my project" }), {
    command: "/v/bin/plancode",
    args: ["doctor", "--json", "--model=qwen2.5-coder-0.5b", "--workspace=/ws/my project"],
  }, "serverArgs (options of `serve`) are not passed to `doctor`");
  assert.deepEqual(doctorInvocation(pyPlan, { model: "smollm2-135m" }), {
    command: "/v/bin/python", args: ["-m", "plancode", "doctor", "--json", "--model=smollm2-135m"],
  });
  assert.deepEqual(doctorInvocation(exePlan, { model: " " }).args, ["doctor", "--json"]);
  assert.equal(commandLine(doctorInvocation(exePlan, { workspace: "/ws/it's" })),
    "/v/bin/plancode doctor --json '--workspace=/ws/it'\\''s'");
});

test("the extension's server settings reach the doctor as PLANCODE_<KEY> variables", () => {
  const config: Record<string, unknown> = { model: "smollm2-135m", nGpuLayers: -1, isolation: "bwrap", planComments: false };
  const env = doctorEnv(serverSettings((k) => config[k]));
  assert.equal(env.PLANCODE_MODEL, "smollm2-135m");
  assert.equal(env.PLANCODE_N_GPU_LAYERS, "-1");
  assert.equal(env.PLANCODE_ISOLATION, "bwrap");
  assert.equal(env.PLANCODE_PLAN_COMMENTS, "false");
  assert.equal("PLANCODE_SERVER_PATH" in env, false, "launch settings are not server settings");
  assert.equal("PLANCODE_N_THREADS" in env, false, "unset settings are left to the server's own default");
});

test("a failed-check report: parsed, the fix shown, the notification names the first failure", () => {
  const outcome = interpretDoctor(inv, { exitCode: 1, stdout: SIGILL_REPORT, stderr: "" });
  assert.equal(outcome.ok, true);
  const report = outcome.ok ? outcome.report : assert.fail("no report");
  assert.equal(report.ok, false);
  assert.equal(report.checks.length, 8);
  assert.deepEqual(report.checks.map((c) => c.status), ["ok", "ok", "ok", "fail", "fail", "ok", "warn", "ok"]);

  const md = renderDoctorMarkdown(report, { command: commandLine(inv), model: "qwen2.5-coder-0.5b", workspace: "/ws",
    exitCode: 1, seconds: 7.25 });
  assert.match(md, /^# plancode doctor$/m);
  assert.match(md, /^\*\*✗ 2 failed, 1 warning, 5 passed\*\*$/m);
  assert.match(md, /^- ✓ \*\*Python\*\* \(passed\): Python 3\.11\.2 at \/v\/bin\/python$/m);
  assert.match(md, /^- ✗ \*\*generation\*\* \(FAILED\): llama\.cpp crashed with SIGILL \(illegal instruction\) during its first generation/m);
  assert.match(md, /^ {2}- \*\*Fix:\*\* rebuild llama-cpp-python without AMX, with this CPU's other instructions: `\/v\/bin\/python -m plancode\.doctor\.llama_build install --force`/m,
    "the fix follows the failed check, its command kept as code");
  assert.match(md, /^ {2}- Details: stage `loaded`, signal `SIGILL`, seconds `2\.31`$/m, "null details are left out");
  assert.match(md, /^- ! \*\*test sandbox\*\* \(warning\): rlimit \(no bubblewrap\)/m);
  assert.match(md, /^ {2}- \*\*Fix:\*\* `apt-get install bubblewrap`/m);
  assert.doesNotMatch(md, /CPU : SSE3/, "a long system_info stays out of the view");
  assert.match(md, /features `AVX AVX2 AMX_INT8`/);
  assert.match(md, /Checked model `qwen2\.5-coder-0\.5b`, workspace `\/ws`, 7\.3 s, exit status 1 with:/);
  assert.match(md, /```sh\n\/v\/bin\/plancode doctor --json\n```/);
  // checks that passed get no fix line
  const pythonAt = md.indexOf("**Python**");
  assert.equal(md.slice(pythonAt, md.indexOf("\n- ", pythonAt)).includes("Fix"), false);

  const notice = doctorNotice(report);
  assert.equal(notice.level, "error");
  assert.match(notice.text, /^plancode doctor: 2 failed, 1 warning, 5 passed — ✗ generation: llama\.cpp crashed with SIGILL/);
  assert.match(notice.text, /not execute … Fix: rebuild/, "a shortened finding ends in … (no extra period)");
});

test("all checks passed: an info notice, no fix lines", () => {
  const outcome = interpretDoctor(inv, { exitCode: 0, stdout: ALL_OK, stderr: "llama_model_loader: ...\n" });
  const report = outcome.ok ? outcome.report : assert.fail(outcome.problem);
  assert.deepEqual(doctorNotice(report), { level: "info", text: "plancode doctor: all 2 checks passed" });
  const md = renderDoctorMarkdown(report, { command: "plancode doctor --json" });
  assert.match(md, /^\*\*✓ all 2 checks passed\*\*$/m);
  assert.doesNotMatch(md, /Fix/);
});

test("warnings only: a warning notice with the first warning's fix", () => {
  const report = asReport({ checks: [
    { id: "sandbox", title: "test sandbox", status: "warn", finding: "rlimit (no bubblewrap)", fix: "`apt-get install bubblewrap`" },
    { id: "python", status: "ok", finding: "Python 3.11" },
  ] });
  assert.ok(report);
  assert.equal(report.ok, true, "ok is derived when missing: only a failure makes it false");
  assert.equal(report.summary, "0 failed, 1 warning, 1 passed");
  assert.equal(report.checks[1].title, "python", "a missing title falls back to the id");
  const notice = doctorNotice(report);
  assert.equal(notice.level, "warning");
  assert.equal(notice.text, "plancode doctor: 0 failed, 1 warning, 1 passed — ! test sandbox: rlimit (no bubblewrap). Fix: `apt-get install bubblewrap`");
});

test("a banner before the JSON is skipped", () => {
  const outcome = interpretDoctor(inv, { exitCode: 0, stdout: `some library banner\n${ALL_OK}\n`, stderr: "" });
  assert.equal(outcome.ok, true);
});

test("garbage output is an explained error, never an exception", () => {
  const cases: [string, string][] = [
    ["not json at all\n", "its output is not the doctor's JSON"],
    ["", "no output"],
    ["{\"ok\": true, \"checks\": [", "its output is not the doctor's JSON"],
    ["[1, 2, 3]", "its output is not the doctor's JSON"],
    ["{\"ok\": true, \"summary\": \"x\", \"checks\": []}", "its output is not the doctor's JSON"],
    ["{\"checks\": [{\"id\": \"x\", \"status\": \"maybe\", \"finding\": \"?\"}]}", "its output is not the doctor's JSON"],
    ["null", "its output is not the doctor's JSON"],
  ];
  for (const [stdout, says] of cases) {
    const outcome = interpretDoctor(inv, { exitCode: 0, stdout, stderr: "" });
    assert.equal(outcome.ok, false, stdout);
    if (!outcome.ok) {
      assert.match(outcome.problem, /^`\/v\/bin\/plancode doctor --json` printed no doctor report/, stdout);
      assert.ok(outcome.problem.includes(says), `${stdout}: ${outcome.problem}`);
      assert.match(outcome.fix, /plancode\.serverPath points at plancode/);
    }
  }
  // an executable that is not plancode: its own complaint is quoted
  const other = interpretDoctor({ command: "/usr/bin/ls", args: ["doctor", "--json"] },
    { exitCode: 2, stdout: "", stderr: "ls: unrecognized option '--json'\nTry 'ls --help' for more information.\n" });
  assert.equal(other.ok, false);
  assert.match(!other.ok ? other.problem : "", /printed no doctor report \(no output, exit code 2\): Try 'ls --help'/);
});

test("exit 2 with `error:` and `fix:` on stderr: the doctor's own problem and fix", () => {
  const outcome = interpretDoctor(inv, { exitCode: 2, stdout: "",
    stderr: "error: workspace /nope is not a folder\n  fix: pass --workspace the folder of your project\n" });
  assert.deepEqual(outcome, { ok: false, problem: "the doctor stopped: workspace /nope is not a folder",
    fix: "pass --workspace the folder of your project" });
  const bad = interpretDoctor(inv, { exitCode: 2, stdout: "",
    stderr: "error: invalid setting: setting 'n_ctx' = 5 must be between 256 and 131072\n" });
  assert.equal(bad.ok, false);
  assert.match(!bad.ok ? bad.problem : "", /n_ctx/);
  assert.match(!bad.ok ? bad.fix : "", /plancode doctor/);
});

test("older plancode, Python without plancode, spawn failures, crash, timeout, cancel", () => {
  const old = interpretDoctor(inv, { exitCode: 2, stdout: "", stderr:
    "usage: plancode [-h] COMMAND ...\nplancode: error: argument COMMAND: invalid choice: 'doctor' (choose from 'model', 'serve')\n" });
  assert.match(!old.ok ? old.problem : "", /has no `doctor` command/);
  assert.match(!old.ok ? old.fix : "", /pip install -U plancode/);

  const py = interpretDoctor({ command: "/usr/bin/python3", args: ["-m", "plancode", "doctor", "--json"] },
    { exitCode: 1, stdout: "", stderr: "/usr/bin/python3: Error while finding module specification for 'plancode' (ModuleNotFoundError: No module named 'plancode')" });
  assert.match(!py.ok ? py.problem : "", /\/usr\/bin\/python3 does not have plancode installed/);

  const missing = interpretDoctor(inv, { exitCode: null, errno: "ENOENT", stdout: "", stderr: "" });
  assert.match(!missing.ok ? missing.fix : "", /set plancode\.serverPath/);
  const pyMissing = interpretDoctor({ command: "/x/python", args: ["-m", "plancode", "doctor", "--json"] },
    { exitCode: null, errno: "ENOENT", stdout: "", stderr: "" });
  assert.match(!pyMissing.ok ? pyMissing.fix : "", /set plancode\.pythonPath/);
  const noExec = interpretDoctor(inv, { exitCode: null, errno: "EACCES", stdout: "", stderr: "" });
  assert.match(!noExec.ok ? noExec.fix : "", /chmod \+x \/v\/bin\/plancode/);

  const crash = interpretDoctor(inv, { exitCode: null, signal: "SIGSEGV", stdout: "", stderr: "" });
  assert.match(!crash.ok ? crash.problem : "", /the doctor itself was killed by SIGSEGV/);
  const slow = interpretDoctor(inv, { exitCode: null, signal: "SIGTERM", timedOut: true, stdout: "", stderr: "" });
  assert.match(!slow.ok ? slow.problem : "", /did not finish within 300 s/);
  const cancelled = interpretDoctor(inv, { exitCode: null, signal: "SIGTERM", cancelled: true, stdout: "", stderr: "" });
  assert.match(!cancelled.ok ? cancelled.problem : "", /cancelled/);
});

test("the problem page shows the fix and what the command printed", () => {
  const run = { exitCode: 2, stdout: "", stderr: "error: workspace /nope is not a folder\n  fix: pass --workspace\n" };
  const outcome = interpretDoctor(inv, run);
  const md = renderDoctorProblem(!outcome.ok ? outcome : assert.fail("a report"), run, commandLine(inv));
  assert.match(md, /\*\*✗ The doctor could not run:\*\* the doctor stopped: workspace \/nope is not a folder/);
  assert.match(md, /\*\*Fix:\*\* pass --workspace/);
  assert.match(md, /It ended with exit status 2\./);
  assert.match(md, /Its stderr \(last lines\):\n\n```\nerror: workspace \/nope is not a folder\nfix: pass --workspace\n```/);
  assert.doesNotMatch(md, /Its stdout/);
});

test("only servers that ran and stopped get a Run doctor button", () => {
  assert.equal(doctorHelps({ exitCode: 1, stderr: "plancode: llama.cpp crashed with SIGILL" }), true);
  assert.equal(doctorHelps({ exitCode: null, stderr: "" }), true);
  assert.equal(doctorHelps({ errno: "ENOENT", stderr: "" }), false);
  assert.equal(doctorHelps({ exitCode: 1, stderr: "ModuleNotFoundError: No module named 'plancode'" }), false);
  assert.equal(doctorHelps({ exitCode: 1, stderr: "ModuleNotFoundError: No module named 'llama_cpp'" }), true);
});

test("inline escapes Markdown outside code spans only", () => {
  assert.equal(inline("n_gpu_layers=0 <b> *x* `a_b <c>`"), "n\\_gpu\\_layers=0 \\<b\\> \\*x\\* `a_b <c>`");
  assert.equal(inline("PR #26954\nnext"), "PR \\#26954 next");
});

// -- the real process handling (node itself plays the doctor) ----------------------------------

const NODE = process.execPath;

/** Whether `pid` runs (a zombie, left to a PID 1 that does not reap, does not count). */
function alive(pid: number): boolean {
  if (fs.existsSync("/proc/self/stat")) {
    try {
      return fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0] !== "Z";
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
const opts = { env: process.env, cwd: process.cwd() };

test("runToEnd: a doctor's report and exit status 1 come back whole", async () => {
  const script = `process.stdout.write(${JSON.stringify(SIGILL_REPORT)}); process.stderr.write("probe log\\n"); process.exit(1);`;
  const run = await runToEnd(NODE, ["-e", script], opts);
  assert.equal(run.exitCode, 1);
  assert.equal(run.stderr, "probe log\n");
  const outcome = interpretDoctor({ command: NODE, args: ["-e", "..."] }, run);
  assert.equal(outcome.ok && outcome.report.checks.length, 8);
});

test("runToEnd: a missing executable, a crash, a timeout and Cancel are reported, not thrown", async () => {
  const missing = await runToEnd("/nonexistent/bin/plancode", ["doctor", "--json"], opts);
  assert.equal(missing.errno, "ENOENT");
  assert.match(interpretDoctor({ command: "/nonexistent/bin/plancode", args: ["doctor", "--json"] }, missing).ok
    ? "" : "does not exist", /does not exist/);

  const crash = await runToEnd(NODE, ["-e", "process.kill(process.pid, 'SIGABRT')"], opts);
  assert.equal(crash.signal, "SIGABRT");
  assert.equal(crash.exitCode, null);

  const started = Date.now();
  const slow = await runToEnd(NODE, ["-e", "setTimeout(() => {}, 60000)"], { ...opts, timeoutMs: 300 });
  assert.equal(slow.timedOut, true);
  assert.equal(slow.signal, "SIGTERM");
  assert.ok(Date.now() - started < 30000, "the timeout stops the process");

  let stopIt: (() => void) | undefined;
  let disposed = false;
  const pending = runToEnd(NODE, ["-e", "setTimeout(() => {}, 60000)"], opts, (stop) => {
    stopIt = stop;
    return { dispose: () => { disposed = true; } };
  });
  setTimeout(() => stopIt?.(), 200);
  const cancelled = await pending;
  assert.equal(cancelled.cancelled, true);
  assert.equal(disposed, true, "the cancel hook is released when the run ends");
  const outcome = interpretDoctor(inv, cancelled);
  assert.match(!outcome.ok ? outcome.problem : "", /cancelled/);
});

test("runToEnd: Cancel also stops what the doctor started (its process group)", { skip: process.platform === "win32" }, async () => {
  // the "doctor" starts a grandchild (like the model probe), prints its pid, and waits
  const script = "const c = require('node:child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], " +
    "{ stdio: 'ignore' }); process.stdout.write(String(c.pid)); setTimeout(() => {}, 60000);";
  let stopIt: (() => void) | undefined;
  const pending = runToEnd(NODE, ["-e", script], opts, (stop) => {
    stopIt = stop;
    return { dispose: () => undefined };
  });
  await new Promise((r) => setTimeout(r, 700));
  stopIt?.();
  const run = await pending;
  const grandchild = Number(run.stdout);
  assert.ok(grandchild > 0, `the grandchild's pid: ${run.stdout}`);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(alive(grandchild), false, "the grandchild was stopped too");
});
