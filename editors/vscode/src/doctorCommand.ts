// "Plancode: Run doctor (check the install)": runs `plancode doctor --json` with the server's
// executable and settings, under a cancellable progress notification, and shows the findings
// (doctor.ts renders them) in a Markdown view, a notification and the status bar's tooltip.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import * as vscode from "vscode";

import {
  commandLine,
  DoctorOutcome,
  doctorEnv,
  doctorInvocation,
  doctorNotice,
  interpretDoctor,
  renderDoctorMarkdown,
  renderDoctorProblem,
} from "./doctor";
import { runToEnd } from "./doctorProcess";
import { ResultView } from "./resultView";
import { config, ServerController } from "./serverController";
import { serverSettings } from "./settings";

const VIEW_NAME = "plancode doctor";

export class Doctor {
  private running?: Promise<DoctorOutcome | undefined>;
  private lastMarkdown?: string;

  constructor(private readonly controller: ServerController, private readonly view: ResultView) {}

  /** Run the doctor (or join the run in progress); resolves to what it found. */
  run(): Promise<DoctorOutcome | undefined> {
    this.running ??= this.runOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runOnce(): Promise<DoctorOutcome | undefined> {
    const { controller } = this;
    const plan = controller.resolvePlan();
    if (!plan.ok) {
      const choice = await vscode.window.showErrorMessage(
        `plancode: cannot run the doctor: ${plan.problem}. Fix: ${plan.fix}.`, "Open Settings");
      if (choice) {
        void vscode.commands.executeCommand("workbench.action.openSettings", plan.setting ?? "plancode");
      }
      return { ok: false, problem: plan.problem, fix: plan.fix };
    }
    const model = config().get<string>("model") ?? "";
    const folder = controller.workspaceFolder();
    // no folder open: an empty one (not the home folder, which the sandbox check would copy)
    const scratch = folder ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), "plancode-doctor-"));
    const workspace = folder ?? scratch ?? os.tmpdir();
    const inv = doctorInvocation(plan, { model, workspace });
    const cmd = commandLine(inv);
    const env = { ...controller.serverEnv(), ...doctorEnv(serverSettings((k) => config().get(k))) };
    controller.output.info(`running ${cmd}`);
    const started = Date.now();
    const run = await Promise.resolve(vscode.window.withProgress({
      location: vscode.ProgressLocation.Notification,
      title: "plancode: doctor",
      cancellable: true,
    }, (progress, token) => {
      progress.report({ message: `checking the install with ${model || "the default model"} (it loads the model in a child process; 5-30 s)…` });
      return runToEnd(inv.command, inv.args, { env, cwd: workspace },
        (stop) => token.onCancellationRequested(stop));
    })).finally(() => scratch && fs.rmSync(scratch, { recursive: true, force: true }));
    const seconds = (Date.now() - started) / 1000;
    for (const line of run.stderr.split(/\r?\n/).filter((l) => l.trim()).slice(-20)) {
      controller.output.info(`[doctor] ${line}`);
    }
    controller.output.info(`doctor finished in ${seconds.toFixed(1)} s: exit ${run.exitCode ?? run.signal ?? run.errno}`);
    const outcome = interpretDoctor(inv, run);

    if (!outcome.ok) {
      controller.output.error(`the doctor could not run: ${outcome.problem}. Fix: ${outcome.fix}`);
      if (run.cancelled) {
        void vscode.window.showInformationMessage("plancode: the doctor was cancelled.");
        return outcome;
      }
      this.lastMarkdown = renderDoctorProblem(outcome, run, cmd);
      controller.status.update({ type: "doctor", level: "error", summary: `could not run: ${outcome.problem}` });
      const choice = await vscode.window.showErrorMessage(
        `plancode: the doctor could not run: ${outcome.problem}. Fix: ${outcome.fix}.`,
        "Show Details", "Open Settings", "Show Log");
      if (choice === "Show Details") {
        await this.view.showMarkdown(VIEW_NAME, this.lastMarkdown);
      } else if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings",
          inv.args[0] === "-m" ? "plancode.pythonPath" : "plancode.serverPath");
      } else if (choice === "Show Log") {
        controller.output.show(true);
      }
      return outcome;
    }

    const report = outcome.report;
    controller.output.info(`doctor: ${report.summary}`);
    for (const c of report.checks) {
      controller.output.info(`  ${c.status.padEnd(4)} ${c.title}: ${c.finding}${c.fix ? ` (fix: ${c.fix})` : ""}`);
    }
    this.lastMarkdown = renderDoctorMarkdown(report, { command: cmd, model: model || undefined,
      workspace: folder ?? "(no folder is open: an empty folder)", exitCode: run.exitCode, seconds });
    await this.view.showMarkdown(VIEW_NAME, this.lastMarkdown);
    const notice = doctorNotice(report);
    controller.status.update({ type: "doctor", level: notice.level, summary: report.summary });
    // a server that is down, or whose model failed to load, may start now that it is fixed
    const stuck = !controller.running || controller.status.current.model === "error";
    const buttons = ["Show Report", ...(stuck ? ["Restart Server"] : [])];
    const show = notice.level === "error" ? vscode.window.showErrorMessage
      : notice.level === "warning" ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    void show(notice.text, ...buttons).then((choice) => {
      if (choice === "Show Report" && this.lastMarkdown) {
        void this.view.showMarkdown(VIEW_NAME, this.lastMarkdown);
      } else if (choice === "Restart Server") {
        void controller.restart();
      }
    });
    return outcome;
  }
}
