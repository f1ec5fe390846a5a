// `plancode doctor` from VS Code: the command line, reading its JSON, rendering it as Markdown.
//
// Pure (no `vscode` import), like launch.ts and render.ts. The extension does not re-implement
// the checks: it runs the same executable it launches the server with (launch.ts's plan), with
// `doctor --json` instead of `serve`, and shows what that prints (docs/vscode.md). Anything
// that is not a doctor report (exit 2 with `error: ...`, an older plancode, a program that is
// not plancode, a crash, a timeout) becomes a problem with its fix, never an exception.

import { ExitInfo, isPlancodeModule, LaunchPlan } from "./launch";
import { SERVER_SETTINGS, toSnake } from "./settings";

/** The extension's command id. */
export const RUN_DOCTOR = "plancode.runDoctor";

/** How long the doctor may run (it loads the model in a child process; 5-30 s usually). */
export const DOCTOR_TIMEOUT_MS = 300_000;

export type CheckStatus = "ok" | "warn" | "fail";

/** One check of `plancode doctor --json` (server/doctor/checks.py `Finding`). */
export interface DoctorCheck {
  id: string;
  title: string;
  status: CheckStatus;
  finding: string;
  fix: string;
  details: Record<string, unknown>;
}

/** The whole `plancode doctor --json` object. */
export interface DoctorReport {
  /** No check failed (warnings allowed). */
  ok: boolean;
  summary: string;
  checks: DoctorCheck[];
}

export interface DoctorInvocation {
  command: string;
  args: string[];
}

export interface DoctorOptions {
  /** `plancode.model` ("" or undefined: the doctor's default). */
  model?: string;
  /** The project folder whose sandbox and test interpreter to check. */
  workspace?: string;
}

/** How the doctor process ended and what it printed. */
export interface DoctorRun {
  exitCode: number | null;
  /** The signal that ended it (`SIGKILL`, ...), if any. */
  signal?: string | null;
  /** errno code of a spawn failure (ENOENT, EACCES, ...). */
  errno?: string;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
  cancelled?: boolean;
}

export type DoctorOutcome =
  | { ok: true; report: DoctorReport }
  | { ok: false; problem: string; fix: string };

export const MARKS: Record<CheckStatus, string> = { ok: "✓", warn: "!", fail: "✗" };

/**
 * The doctor's command line, derived from the server's launch plan: the same executable (or
 * the same `PYTHON -m plancode`), `doctor --json` instead of `serve` and its serverArgs
 * (those are options of `serve`). `--opt=value` so a value starting with `-` stays a value.
 */
export function doctorInvocation(plan: LaunchPlan, opts: DoctorOptions = {}): DoctorInvocation {
  const serve = plan.args.indexOf("serve");
  const prefix = serve >= 0 ? plan.args.slice(0, serve)
    : plan.source === "plancode.pythonPath" ? ["-m", "plancode"] : [];
  const args = [...prefix, "doctor", "--json"];
  if (opts.model?.trim()) {
    args.push(`--model=${opts.model.trim()}`);
  }
  if (opts.workspace) {
    args.push(`--workspace=${opts.workspace}`);
  }
  return { command: plan.command, args };
}

/** The command line as one string to show (and to paste into a shell). */
export function commandLine(inv: DoctorInvocation): string {
  return [inv.command, ...inv.args].map(shellQuote).join(" ");
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * The extension's server settings (settings.ts `serverSettings`) as `PLANCODE_<KEY>`
 * environment variables, so the doctor checks what the server will use (n_gpu_layers,
 * isolation, ...): the server gets them as initializationOptions, the doctor has no LSP.
 */
export function doctorEnv(settings: Record<string, unknown>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of SERVER_SETTINGS) {
    const value = settings[key];
    if (value === undefined || value === null || typeof value === "object") {
      continue;
    }
    env[`PLANCODE_${toSnake(key).toUpperCase()}`] = String(value);
  }
  return env;
}

/** Whether running the doctor can say more about a server that stopped while starting. */
export function doctorHelps(info: ExitInfo): boolean {
  if (info.errno !== undefined) {
    return false; // the executable is missing or not executable: the doctor cannot run either
  }
  const missing = /No module named '?([A-Za-z0-9_.]+)'?/.exec(info.stderr);
  return !(missing && isPlancodeModule(missing[1]));
}

const STATUSES = new Set(["ok", "warn", "fail"]);

/** `x` as a doctor report, or undefined when it is not shaped like one. */
export function asReport(x: unknown): DoctorReport | undefined {
  if (typeof x !== "object" || x === null || Array.isArray(x)) {
    return undefined;
  }
  const r = x as Record<string, unknown>;
  if (!Array.isArray(r.checks) || r.checks.length === 0) {
    return undefined;
  }
  const checks: DoctorCheck[] = [];
  for (const c of r.checks as unknown[]) {
    if (typeof c !== "object" || c === null) {
      return undefined;
    }
    const o = c as Record<string, unknown>;
    if (typeof o.id !== "string" || typeof o.finding !== "string" || typeof o.status !== "string" ||
        !STATUSES.has(o.status)) {
      return undefined;
    }
    checks.push({
      id: o.id,
      title: typeof o.title === "string" && o.title ? o.title : o.id,
      status: o.status as CheckStatus,
      finding: o.finding,
      fix: typeof o.fix === "string" ? o.fix : "",
      details: typeof o.details === "object" && o.details !== null && !Array.isArray(o.details)
        ? o.details as Record<string, unknown> : {},
    });
  }
  return {
    ok: typeof r.ok === "boolean" ? r.ok : !checks.some((c) => c.status === "fail"),
    summary: typeof r.summary === "string" && r.summary ? r.summary : summarize(checks),
    checks,
  };
}

/** "1 failed, 1 warning, 6 passed" (or "all 8 checks passed"), as the doctor says it. */
export function summarize(checks: DoctorCheck[]): string {
  const failed = checks.filter((c) => c.status === "fail").length;
  const warned = checks.filter((c) => c.status === "warn").length;
  if (!failed && !warned) {
    return `all ${checks.length} checks passed`;
  }
  return `${failed} failed, ${warned} warning${warned === 1 ? "" : "s"}, ${checks.length - failed - warned} passed`;
}

/** The JSON object in the doctor's stdout (the whole of it, or from the first `{` line on). */
function parseJson(stdout: string): unknown {
  const text = stdout.trim();
  if (!text) {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch {
    // something printed before the object (a library's banner): try from the first "{" line
    const start = text.search(/^\{/m);
    if (start > 0) {
      try {
        return JSON.parse(text.slice(start));
      } catch {
        return undefined;
      }
    }
    return undefined;
  }
}

function lines(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
}

function shorten(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** What the doctor's output means: its report, or what went wrong and how to fix it. */
export function interpretDoctor(inv: DoctorInvocation, run: DoctorRun): DoctorOutcome {
  const cmd = commandLine(inv);
  const setting = inv.args[0] === "-m" ? "plancode.pythonPath" : "plancode.serverPath";
  if (run.cancelled) {
    return { ok: false, problem: "the doctor was cancelled before it finished", fix: "run it again and let it finish (it loads the model once; 5-30 s)" };
  }
  if (run.errno === "ENOENT") {
    return { ok: false, problem: `${inv.command} does not exist`, fix: `set ${setting} to the \`plancode\` executable of the environment where plancode is installed` };
  }
  if (run.errno === "EACCES") {
    return { ok: false, problem: `${inv.command} is not executable`, fix: `chmod +x ${inv.command}, or set ${setting} to the right file` };
  }
  if (run.errno) {
    return { ok: false, problem: `could not run ${inv.command}: ${run.errno}`, fix: `check ${setting}` };
  }
  if (run.timedOut) {
    return {
      ok: false,
      problem: `\`${cmd}\` did not finish within ${Math.round(DOCTOR_TIMEOUT_MS / 1000)} s`,
      fix: "run `plancode doctor` in a terminal to see which check hangs (the ✓/✗ lines appear one by one)",
    };
  }
  const report = asReport(parseJson(run.stdout));
  if (report) {
    return { ok: true, report };
  }
  const err = run.stderr;
  const errLines = lines(err);
  if (run.signal) {
    return {
      ok: false,
      problem: `the doctor itself was killed by ${run.signal} (\`${cmd}\`)`,
      fix: "run `plancode doctor` in a terminal; if it crashes there too, reinstall plancode in a fresh virtual environment",
    };
  }
  const missing = /No module named '?([A-Za-z0-9_.]+)'?/.exec(err);
  if (missing && isPlancodeModule(missing[1])) {
    return {
      ok: false,
      problem: `${inv.command} does not have plancode installed (${missing[0]})`,
      fix: `install it into that interpreter (\`${inv.command} -m pip install plancode\`), or set plancode.serverPath to the \`plancode\` executable of an environment that has it`,
    };
  }
  if (/invalid choice: 'doctor'/.test(err)) {
    return {
      ok: false,
      problem: `this plancode (${inv.command}) has no \`doctor\` command: it is older than the extension`,
      fix: "upgrade plancode (`pip install -U plancode` in its environment)",
    };
  }
  // `plancode` reports bad input as `error: ...` and `  fix: ...` on stderr, exit status 2
  const errorAt = errLines.map((l) => l.startsWith("error:")).lastIndexOf(true);
  if (errorAt >= 0) {
    const problem = errLines[errorAt].replace(/^error:\s*/, "");
    const fixLine = errLines.slice(errorAt + 1).find((l) => l.startsWith("fix:"));
    return {
      ok: false,
      problem: `the doctor stopped: ${problem}`,
      fix: fixLine ? fixLine.replace(/^fix:\s*/, "") : "run `plancode doctor` in a terminal for the whole message",
    };
  }
  const said = errLines[errLines.length - 1] ?? lines(run.stdout)[0];
  const code = run.exitCode === null ? "" : `, exit code ${run.exitCode}`;
  return {
    ok: false,
    problem: `\`${cmd}\` printed no doctor report (${run.stdout.trim() ? "its output is not the doctor's JSON" : "no output"}${code})` +
      (said ? `: ${shorten(said)}` : ""),
    fix: `check that ${setting} points at plancode (in a terminal, \`plancode doctor\` prints one ✓/!/✗ line per check)`,
  };
}

/** Markdown text outside backtick code spans escaped (commands in `...` stay code). */
export function inline(text: string): string {
  return text.replace(/\r?\n/g, " ").split(/(`[^`]*`)/).map((part, i) =>
    i % 2 === 1 ? part : part.replace(/([\\*_[\]<>|#])/g, "\\$1")).join("");
}

function detailText(value: unknown): string | undefined {
  if (value === null || value === undefined || value === "") {
    return undefined;
  }
  if (Array.isArray(value)) {
    return value.length ? value.map(String).join(" ") : undefined;
  }
  if (typeof value === "object") {
    return undefined;
  }
  const text = String(value);
  return text.length > 160 ? undefined : text; // long ones (system_info) stay in the JSON
}

export interface ReportMeta {
  /** The command line that produced the report. */
  command: string;
  model?: string;
  workspace?: string;
  exitCode?: number | null;
  seconds?: number;
}

const STATUS_WORD: Record<CheckStatus, string> = { ok: "passed", warn: "warning", fail: "FAILED" };

/** The report as a Markdown document: the summary, then ✓/!/✗ with the finding and the fix. */
export function renderDoctorMarkdown(report: DoctorReport, meta: ReportMeta): string {
  const out: string[] = [];
  out.push("# plancode doctor");
  out.push("");
  const worst = report.checks.some((c) => c.status === "fail") ? "fail"
    : report.checks.some((c) => c.status === "warn") ? "warn" : "ok";
  out.push(`**${MARKS[worst]} ${inline(report.summary)}**`);
  out.push("");
  for (const c of report.checks) {
    out.push(`- ${MARKS[c.status]} **${inline(c.title)}** (${STATUS_WORD[c.status]}): ${inline(c.finding)}`);
    if (c.fix && c.status !== "ok") {
      out.push(`  - **Fix:** ${inline(c.fix)}`);
    }
    if (c.status !== "ok") {
      const details = Object.entries(c.details)
        .map(([k, v]) => [k, detailText(v)] as const).filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${inline(k)} \`${String(v).replace(/`/g, "'")}\``);
      if (details.length) {
        out.push(`  - Details: ${details.join(", ")}`);
      }
    }
  }
  out.push("");
  out.push("---");
  out.push("");
  const facts = [
    meta.model ? `model \`${meta.model}\`` : "",
    meta.workspace ? `workspace \`${meta.workspace}\`` : "",
    meta.seconds !== undefined ? `${meta.seconds.toFixed(1)} s` : "",
    meta.exitCode !== undefined && meta.exitCode !== null ? `exit status ${meta.exitCode}` : "",
  ].filter((f) => f);
  out.push(`Checked ${facts.join(", ")} with:`);
  out.push("");
  out.push(fence(meta.command, "sh"));
  out.push("");
  out.push("Run it (without `--json`) in a terminal for the same findings as ✓/!/✗ lines.");
  out.push("");
  return out.join("\n");
}

/** A doctor that gave no report, as a Markdown page: the problem, the fix, what it printed. */
export function renderDoctorProblem(problem: { problem: string; fix: string }, run: DoctorRun, command: string): string {
  const out: string[] = [];
  out.push("# plancode doctor");
  out.push("");
  out.push(`**✗ The doctor could not run:** ${inline(problem.problem)}`);
  out.push("");
  out.push(`**Fix:** ${inline(problem.fix)}`);
  out.push("");
  out.push("Command:");
  out.push("");
  out.push(fence(command, "sh"));
  out.push("");
  const code = run.signal ? `killed by ${run.signal}` : run.exitCode === null ? "did not exit" : `exit status ${run.exitCode}`;
  out.push(`It ended with ${code}.`);
  for (const [name, text] of [["stderr", run.stderr], ["stdout", run.stdout]] as const) {
    const tail = lines(text).slice(-30).join("\n");
    if (tail) {
      out.push("");
      out.push(`Its ${name} (last lines):`);
      out.push("");
      out.push(fence(tail));
    }
  }
  out.push("");
  return out.join("\n");
}

function fence(code: string, lang = ""): string {
  let ticks = "```";
  while (code.includes(ticks)) {
    ticks += "`";
  }
  return `${ticks}${lang}\n${code.replace(/\s+$/, "")}\n${ticks}`;
}

export interface DoctorNotice {
  level: "info" | "warning" | "error";
  text: string;
}

/** The notification: the summary and the first problem (the report view has the rest). */
export function doctorNotice(report: DoctorReport): DoctorNotice {
  const first = report.checks.find((c) => c.status === "fail") ?? report.checks.find((c) => c.status === "warn");
  const level = report.checks.some((c) => c.status === "fail") ? "error" : first ? "warning" : "info";
  let text = `plancode doctor: ${report.summary}`;
  if (first) {
    const finding = shorten(first.finding, 160);
    text += ` — ${MARKS[first.status]} ${first.title}: ${finding}`;
    if (first.fix) {
      text += `${finding.endsWith("…") ? "" : "."} Fix: ${shorten(first.fix, 200)}`;
    }
  }
  return { level, text };
}
