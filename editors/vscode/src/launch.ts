// Server launch: which command starts `plancode serve`, and what went wrong when it did not.
//
// Pure (no `vscode` import): the file system and the environment are passed in, so every
// branch is unit-tested. Order: `plancode.serverPath`, then `plancode.pythonPath`
// (`PYTHON -m plancode serve`), then `plancode` on PATH, then each workspace folder's
// `.venv`/`venv`.

import * as path from "node:path";

export interface LaunchSettings {
  /** Path to the `plancode` executable ("" = look it up). */
  serverPath: string;
  /** A Python interpreter with plancode installed ("" = unused). */
  pythonPath: string;
  /** Extra arguments after `serve` (e.g. `--log-level debug`). */
  serverArgs: string[];
}

export interface LaunchEnv {
  /** The PATH environment variable. */
  pathEnv: string;
  /** Workspace folder paths, first one first. */
  workspaceFolders: string[];
  home: string;
  platform: NodeJS.Platform;
  /** Whether `p` is an existing executable file. */
  isExecutable(p: string): boolean;
  /** Whether `p` exists at all (to tell "missing" from "not executable"). */
  exists(p: string): boolean;
  /** Whether the workspace is trusted: an untrusted one's .venv is never run. */
  trusted: boolean;
}

export interface LaunchPlan {
  ok: true;
  command: string;
  args: string[];
  /** Where the command came from, in words (shown in the log and status tooltip). */
  source: string;
}

export interface LaunchProblem {
  ok: false;
  /** What is wrong. */
  problem: string;
  /** How to fix it. */
  fix: string;
  /** The setting to open (`plancode.serverPath`, ...). */
  setting?: string;
}

/** `~`, `${userHome}` and `${workspaceFolder}` expanded; relative paths against the workspace. */
export function expandPath(p: string, env: Pick<LaunchEnv, "home" | "workspaceFolders">): string {
  const root = env.workspaceFolders[0] ?? "";
  let out = p.trim()
    .replace(/\$\{userHome\}/g, env.home)
    .replace(/\$\{workspaceFolder\}/g, root);
  if (out === "~" || out.startsWith("~/")) {
    out = env.home + out.slice(1);
  }
  if (out && !path.isAbsolute(out) && (out.includes("/") || out.includes("\\")) && root) {
    out = path.join(root, out);
  }
  return out;
}

function exeNames(name: string, platform: NodeJS.Platform): string[] {
  return platform === "win32" ? [`${name}.exe`, `${name}.cmd`, name] : [name];
}

/** The first `name` on PATH, or undefined. */
export function which(name: string, env: LaunchEnv): string | undefined {
  const sep = env.platform === "win32" ? ";" : ":";
  for (const dir of env.pathEnv.split(sep)) {
    if (!dir) {
      continue;
    }
    for (const exe of exeNames(name, env.platform)) {
      const candidate = path.join(dir, exe);
      if (env.isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

/** Candidate virtual-environment executables in the workspace folders. */
export function workspaceCandidates(env: LaunchEnv): string[] {
  if (!env.trusted) {
    return [];
  }
  const bin = env.platform === "win32" ? "Scripts" : "bin";
  const out: string[] = [];
  for (const folder of env.workspaceFolders) {
    for (const venv of [".venv", "venv"]) {
      for (const exe of exeNames("plancode", env.platform)) {
        out.push(path.join(folder, venv, bin, exe));
      }
    }
  }
  return out;
}

function serveArgs(s: LaunchSettings): string[] {
  return ["serve", ...s.serverArgs.filter((a) => a !== "")];
}

/** The command that starts the server, or what is missing and how to fix it. */
export function resolveLaunch(s: LaunchSettings, env: LaunchEnv): LaunchPlan | LaunchProblem {
  if (s.serverPath.trim()) {
    const given = expandPath(s.serverPath, env);
    const resolved = path.isAbsolute(given) ? given : which(given, env);
    if (resolved && env.isExecutable(resolved)) {
      return { ok: true, command: resolved, args: serveArgs(s), source: "plancode.serverPath" };
    }
    if (resolved && env.exists(resolved)) {
      return {
        ok: false,
        problem: `plancode.serverPath points to ${resolved}, which is not executable`,
        fix: `make it executable (chmod +x ${resolved}) or point plancode.serverPath at the ` +
          "`plancode` executable of the environment where plancode is installed",
        setting: "plancode.serverPath",
      };
    }
    return {
      ok: false,
      problem: `plancode.serverPath is set to "${s.serverPath}", but ${given} does not exist`,
      fix: "point plancode.serverPath at the `plancode` executable (e.g. /path/to/venv/bin/plancode; " +
        "`which plancode` in a shell where plancode works prints it), or clear it to search PATH " +
        "and the workspace's .venv",
      setting: "plancode.serverPath",
    };
  }
  if (s.pythonPath.trim()) {
    const given = expandPath(s.pythonPath, env);
    const resolved = path.isAbsolute(given) ? given : which(given, env);
    if (resolved && env.isExecutable(resolved)) {
      return {
        ok: true,
        command: resolved,
        args: ["-m", "plancode", ...serveArgs(s)],
        source: "plancode.pythonPath",
      };
    }
    return {
      ok: false,
      problem: `plancode.pythonPath is set to "${s.pythonPath}", but no Python interpreter was ` +
        `found at ${resolved ?? given}`,
      fix: "point plancode.pythonPath at a Python 3.11+ interpreter that has plancode installed " +
        "(`pip install plancode`), or clear it and set plancode.serverPath instead",
      setting: "plancode.pythonPath",
    };
  }
  const onPath = which("plancode", env);
  if (onPath) {
    return { ok: true, command: onPath, args: serveArgs(s), source: "PATH" };
  }
  const inVenv = workspaceCandidates(env).find((c) => env.isExecutable(c));
  if (inVenv) {
    return { ok: true, command: inVenv, args: serveArgs(s), source: "workspace virtual environment" };
  }
  const looked = ["PATH", ...workspaceCandidates(env)].join(", ");
  const untrusted = env.trusted ? "" : "; the workspace is not trusted, so its .venv was not searched";
  return {
    ok: false,
    problem: `the plancode language server was not found (looked in ${looked}${untrusted})`,
    fix: "install it (`pip install plancode` in a virtual environment), then set " +
      "plancode.serverPath to that environment's `bin/plancode`, or plancode.pythonPath to its " +
      "Python",
    setting: "plancode.serverPath",
  };
}

export interface ExitInfo {
  /** errno code of a spawn failure (ENOENT, EACCES, ...). */
  errno?: string;
  /** Exit code, when the process exited. */
  exitCode?: number | null;
  /** The end of what the server wrote to stderr. */
  stderr: string;
}

/** Whether a missing module is plancode itself (so: plancode is not installed there). */
export function isPlancodeModule(name: string): boolean {
  return name === "plancode" || name.startsWith("plancode.");
}

/** Why the server stopped before it could serve, and how to fix it. */
export function explainExit(plan: LaunchPlan, info: ExitInfo): LaunchProblem {
  const where = `${plan.command} ${plan.args.join(" ")}`;
  const setting = plan.source === "plancode.pythonPath" ? "plancode.pythonPath" : "plancode.serverPath";
  if (info.errno === "ENOENT") {
    return {
      ok: false,
      problem: `${plan.command} does not exist (from ${plan.source})`,
      fix: `set ${setting} to an existing file`,
      setting,
    };
  }
  if (info.errno === "EACCES") {
    return {
      ok: false,
      problem: `${plan.command} is not executable`,
      fix: `chmod +x ${plan.command}, or set ${setting} to the right file`,
      setting,
    };
  }
  const err = info.stderr;
  const missing = /No module named '?([A-Za-z0-9_.]+)'?/.exec(err);
  if (missing && isPlancodeModule(missing[1])) {
    return {
      ok: false,
      problem: `${plan.command} does not have plancode installed (${missing[0]})`,
      fix: `install it into that interpreter (\`${plan.command} -m pip install plancode\`), or set ` +
        "plancode.serverPath to the `plancode` executable of an environment that has it",
      setting,
    };
  }
  if (missing) {
    return {
      ok: false,
      problem: `the plancode installation at ${plan.command} is incomplete: ${missing[0]}`,
      fix: `reinstall it (\`pip install --force-reinstall plancode\` in that environment), or point ` +
        `${setting} at a working installation`,
      setting,
    };
  }
  if (/invalid choice: 'serve'|unrecognized arguments/.test(err)) {
    return {
      ok: false,
      problem: `${plan.command} does not understand \`${plan.args.join(" ")}\`: ${lastLine(err)}`,
      fix: "upgrade plancode (`pip install -U plancode`), or check plancode.serverArgs",
      setting: /unrecognized arguments/.test(err) ? "plancode.serverArgs" : setting,
    };
  }
  const code = info.exitCode === undefined || info.exitCode === null ? "" : ` (exit code ${info.exitCode})`;
  const tail = lastLine(err);
  return {
    ok: false,
    problem: `the plancode language server stopped while starting${code}: \`${where}\`` +
      (tail ? `: ${tail}` : ""),
    fix: "see the plancode output channel for the server's log; check plancode.serverPath / " +
      "plancode.pythonPath",
    setting,
  };
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  return lines.length ? lines[lines.length - 1] : "";
}
