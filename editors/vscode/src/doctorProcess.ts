// Running `plancode doctor` as a child process: its output, how it ended, a timeout and Cancel.
//
// No `vscode` import (the cancellation hook is a plain callback), so the real process handling
// is unit-tested with real child processes (src/test/doctor.test.ts).

import { ChildProcess, spawn } from "node:child_process";

import { DOCTOR_TIMEOUT_MS, DoctorRun } from "./doctor";

const OUTPUT_KEEP = 1_000_000; // characters of stdout/stderr kept (the report is a few KB)

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Milliseconds before the process (group) is stopped as timed out. */
  timeoutMs?: number;
}

/** Registers `stop` to run on Cancel; returns something to dispose when the run is over. */
export type OnCancel = (stop: () => void) => { dispose(): void };

/** Stop the doctor and, on POSIX, its own children (the model probe) with it. */
function kill(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (process.platform !== "win32" && child.pid !== undefined) {
      process.kill(-child.pid, signal); // its process group (spawned detached)
    } else {
      child.kill(signal);
    }
  } catch {
    child.kill(signal); // the group is gone already
  }
}

/** Run one command to its end (or the timeout, or Cancel) and say how it ended; never rejects. */
export function runToEnd(command: string, args: string[], opts: RunOptions, onCancel?: OnCancel): Promise<DoctorRun> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        env: opts.env, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"],
        detached: process.platform !== "win32", // a process group, so Cancel reaches the probe too
      });
    } catch (err) {
      resolve({ exitCode: null, errno: (err as NodeJS.ErrnoException).code ?? String(err), stdout: "", stderr: "" });
      return;
    }
    let out = "";
    let err = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out = (out + d).slice(-OUTPUT_KEEP);
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      err = (err + d).slice(-OUTPUT_KEEP);
    });
    let timedOut = false;
    let cancelled = false;
    let finished = false;
    const stop = (): void => {
      if (finished) {
        return;
      }
      kill(child, "SIGTERM");
      setTimeout(() => {
        if (!finished) {
          kill(child, "SIGKILL");
        }
      }, 3000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs ?? DOCTOR_TIMEOUT_MS);
    const cancelHook = onCancel?.(() => {
      cancelled = true;
      stop();
    });
    const done = (run: DoctorRun): void => {
      if (finished) {
        return; // a spawn failure may be followed by "close"
      }
      finished = true;
      clearTimeout(timer);
      cancelHook?.dispose();
      resolve(run);
    };
    child.once("error", (e: NodeJS.ErrnoException) =>
      done({ exitCode: null, errno: e.code ?? e.message, stdout: out, stderr: err }));
    child.once("close", (code, signal) =>
      done({ exitCode: code, signal, stdout: out, stderr: err, timedOut, cancelled }));
  });
}
