// The language server's lifecycle in VS Code: launch, settings, messages, restart.
//
// Resolves the command (launch.ts), spawns `plancode serve` over stdio, hands the client the
// server settings (settings.ts) as initializationOptions and on change, shows the server's
// messages with buttons that lead to the fix (messages.ts), explains start failures (with a
// "Run Doctor" button when `plancode doctor` can say more: doctor.ts), and feeds the status bar (status.ts) from client state, `$/progress` (progress.ts) and `plancode/stats`.

import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as readline from "node:readline";

import * as vscode from "vscode";
import {
  CloseAction,
  CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  ErrorHandlerResult,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  ShowMessageNotification,
  State,
} from "vscode-languageclient/node";

import { doctorHelps, RUN_DOCTOR } from "./doctor";
import { explainExit, ExitInfo, LaunchEnv, LaunchPlan, LaunchProblem, resolveLaunch } from "./launch";
import { actionsFor, displayText, oneLine } from "./messages";
import { NotificationProgressFeature } from "./progress";
import { changeKind, didChangeConfigurationParams, serverSettings } from "./settings";
import { StatusBar } from "./statusBar";

export const IMPLEMENT = "plancode.implement"; // the server's command
export const LAST_RESULT = "plancode.lastResult"; // the server's command
export const STATS = "plancode/stats"; // the server's request
export const CURSOR = "plancode/cursor"; // the server's notification: where the cursor rests
export const ANSWER = "plancode/answer"; // the server's notification: an answer offered early
export const ACCEPT_ANSWER = "plancode.acceptAnswer"; // the server's command: take that answer
const CURSOR_REST_MS = 250; // the cursor counts as resting after this long without moving
export const IMPLEMENT_COMMAND = "plancode.implementFunction"; // ours, wraps IMPLEMENT

const STDERR_KEEP = 40;

/** A LanguageClient whose own "couldn't create connection" popup is left to us. */
class PlancodeLanguageClient extends LanguageClient {
  quietStartErrors = true;

  override error(message: string, data?: unknown, showNotification?: boolean | "force"): void {
    if (this.quietStartErrors && /couldn't create connection to server|Server will not be restarted/.test(message)) {
      showNotification = false;
    }
    super.error(message, data, showNotification);
  }
}

export function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("plancode");
}

function launchEnv(): LaunchEnv {
  return {
    pathEnv: process.env.PATH ?? "",
    workspaceFolders: (vscode.workspace.workspaceFolders ?? [])
      .filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath),
    home: os.homedir(),
    platform: process.platform,
    isExecutable: (p) => {
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return fs.statSync(p).isFile();
      } catch {
        return false;
      }
    },
    exists: (p) => fs.existsSync(p),
    trusted: vscode.workspace.isTrusted,
  };
}

export class ServerController implements vscode.Disposable {
  private client?: PlancodeLanguageClient;
  private plan?: LaunchPlan;
  private stderrTail: string[] = [];
  private exit?: Promise<ExitInfo>;
  private startedAt = 0;
  private restarts: number[] = [];
  private pollTimer?: NodeJS.Timeout;
  private cursorTimer?: NodeJS.Timeout;
  private readonly disposables: vscode.Disposable[] = [];
  /** Called with the params of each `plancode/answer` (commands.ts offers to accept it). */
  onAnswer?: (params: unknown) => void;

  constructor(
    readonly output: vscode.LogOutputChannel,
    readonly status: StatusBar,
  ) {
    this.disposables.push(vscode.workspace.onDidChangeConfiguration((e) => this.onConfiguration(e)));
    this.disposables.push(vscode.window.onDidChangeTextEditorSelection((e) => this.onCursor(e)));
  }

  /**
   * Where the cursor rests in a Python file (after CURSOR_REST_MS without moving) goes to the
   * server as `plancode/cursor`: it computes the suggestion there while idle, so the first
   * keystroke after opening a file or jumping elsewhere does not wait for a cold prompt.
   */
  private onCursor(e: vscode.TextEditorSelectionChangeEvent): void {
    if (this.cursorTimer) {
      clearTimeout(this.cursorTimer);
      this.cursorTimer = undefined;
    }
    const doc = e.textEditor.document;
    const sel = e.selections.length === 1 ? e.selections[0] : undefined;
    if (doc.languageId !== "python" || !sel || !sel.isEmpty || !this.running) {
      return;
    }
    const { line, character } = sel.active;
    const uri = doc.uri.toString();
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      void this.running?.sendNotification(CURSOR, { textDocument: { uri }, position: { line, character } });
    }, CURSOR_REST_MS);
  }

  /** The running client, or undefined. */
  get running(): LanguageClient | undefined {
    return this.client?.state === State.Running ? this.client : undefined;
  }

  /** The command that starts the server under the current settings (the doctor runs it too). */
  resolvePlan(): LaunchPlan | LaunchProblem {
    const c = config();
    return resolveLaunch({
      serverPath: c.get<string>("serverPath") ?? "",
      pythonPath: c.get<string>("pythonPath") ?? "",
      serverArgs: c.get<string[]>("serverArgs") ?? [],
    }, launchEnv());
  }

  /** The server process' environment: the editor's, plus `plancode.serverEnv`. */
  serverEnv(): NodeJS.ProcessEnv {
    return { ...process.env, ...(config().get<Record<string, string>>("serverEnv") ?? {}) };
  }

  /** The first workspace folder on disk (the server's working directory), if any. */
  workspaceFolder(): string | undefined {
    return vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === "file")?.uri.fsPath;
  }

  // -- lifecycle ----------------------------------------------------------------------------
  async start(): Promise<boolean> {
    const resolved = this.resolvePlan();
    if (!resolved.ok) {
      this.fail(resolved);
      return false;
    }
    const plan = resolved;
    this.plan = plan;
    this.status.update({ type: "starting", source: `${plan.command} ${plan.args.join(" ")} (${plan.source})` });
    this.output.info(`starting ${plan.command} ${plan.args.join(" ")} (from ${plan.source})`);

    const client = new PlancodeLanguageClient("plancode", "plancode", () => this.spawn(plan), this.clientOptions());
    client.registerFeature(new NotificationProgressFeature(client, {
      status: (e) => {
        this.status.update(e);
        if (e.type === "progressBegin" || e.type === "progressEnd") {
          this.pollStats();
        }
      },
    }));
    client.onNotification(ShowMessageNotification.type, (p) => this.onServerMessage(p.type, p.message));
    client.onNotification(ANSWER, (p: unknown) => this.onAnswer?.(p));
    client.onDidChangeState((e) => {
      if (e.newState === State.Running) {
        this.status.update({ type: "running" });
      } else if (e.newState === State.Stopped && this.status.current.client !== "failed") {
        this.status.update({ type: "stopped" });
      }
    });
    this.client = client;
    this.startedAt = Date.now();
    let startError: unknown;
    try {
      await client.start();
    } catch (err) {
      startError = err ?? new Error("start failed");
    }
    // when `initialize` fails the client stops itself and start() may resolve all the same
    if (startError !== undefined || client.state !== State.Running) {
      const exit = await Promise.race([this.exit, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
      const info = exit ?? { stderr: this.stderrTail.join("\n") };
      this.fail(explainExit(plan, info), startError, doctorHelps(info));
      return false;
    }
    this.pollStats();
    return true;
  }

  async stop(): Promise<void> {
    this.stopPolling();
    const client = this.client;
    this.client = undefined;
    if (client && client.state !== State.Stopped) {
      try {
        await client.stop(3000);
      } catch (err) {
        this.output.warn(`stopping the server: ${String(err)}`);
      }
    }
    this.status.update({ type: "stopped" });
  }

  async restart(): Promise<boolean> {
    await this.stop();
    return this.start();
  }

  private spawn(plan: LaunchPlan): Promise<ChildProcess> {
    this.stderrTail = [];
    const child = spawn(plan.command, plan.args, {
      env: this.serverEnv(),
      cwd: this.workspaceFolder(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.exit = new Promise<ExitInfo>((resolve) => {
      child.on("error", (err: NodeJS.ErrnoException) => {
        this.output.error(`could not start ${plan.command}: ${err.message}`);
        resolve({ errno: err.code, stderr: this.stderrTail.join("\n") });
      });
      child.on("exit", (code) => {
        this.output.info(`server process exited with code ${code}`);
        // let the last stderr lines arrive first
        setTimeout(() => resolve({ exitCode: code, stderr: this.stderrTail.join("\n") }), 100);
      });
    });
    return new Promise((resolve, reject) => {
      child.once("spawn", () => resolve(child));
      child.once("error", (err) => reject(err));
    });
  }

  private clientOptions(): LanguageClientOptions {
    const middleware: Middleware = {
      // the server's code action runs plancode.implement; run it through our command so it
      // gets the summary and the result view
      provideCodeActions: async (document, range, context, token, next) => {
        const actions = await next(document, range, context, token);
        for (const action of actions ?? []) {
          const cmd = action instanceof vscode.CodeAction ? action.command : action;
          if (cmd && cmd.command === IMPLEMENT) {
            cmd.command = IMPLEMENT_COMMAND;
          }
        }
        return actions;
      },
    };
    return {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
      ],
      initializationOptions: () => serverSettings((k) => config().get(k)),
      outputChannel: this.output,
      middleware,
      stdioOptions: {
        stdout: () => undefined,
        stderr: (input) => {
          readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on("line", (line) => {
            this.stderrTail.push(line);
            if (this.stderrTail.length > STDERR_KEEP) {
              this.stderrTail.shift();
            }
            this.output.info(`[server] ${line}`);
          });
        },
      },
      // no retry and no popup of the client's own: start() explains the failure
      initializationFailedHandler: (err) => {
        this.output.error(`initialize failed: ${String(err)}`);
        return false;
      },
      errorHandler: {
        error: (_error, _message, count): ErrorHandlerResult =>
          ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown, handled: true }),
        closed: (): CloseHandlerResult => this.onClosed(),
      },
    };
  }

  private onClosed(): CloseHandlerResult {
    const now = Date.now();
    const wasServing = now - this.startedAt > 10_000 && this.client?.state !== State.Starting;
    this.restarts = this.restarts.filter((t) => now - t < 180_000);
    if (wasServing && this.restarts.length < 3) {
      this.restarts.push(now);
      this.output.warn("the plancode server stopped; restarting it");
      this.status.update({ type: "starting" });
      this.startedAt = now;
      return { action: CloseAction.Restart, handled: true };
    }
    const plan = this.plan;
    if (plan && wasServing) {
      void this.exit?.then((info) => this.fail(explainExit(plan, info), undefined, doctorHelps(info)));
    }
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  // -- errors and messages ------------------------------------------------------------------
  /** Report a start failure; `offerDoctor`: the server ran and stopped, the doctor can say why. */
  private fail(problem: LaunchProblem, err?: unknown, offerDoctor = false): void {
    if (err !== undefined) {
      this.output.error(`start failed: ${String(err)}`);
    }
    this.output.error(`cannot start the plancode language server: ${problem.problem}. Fix: ${problem.fix}`);
    this.status.update({ type: "startFailed", message: `${problem.problem}. Fix: ${problem.fix}` });
    // (a notification shows no `detail`: the fix goes in the message)
    const buttons = offerDoctor ? ["Run Doctor", "Open Settings", "Show Log", "Retry"]
      : ["Open Settings", "Show Log", "Retry"];
    void vscode.window.showErrorMessage(
      `plancode: cannot start the language server: ${problem.problem}. Fix: ${problem.fix}.`,
      ...buttons,
    ).then((choice) => {
      if (choice === "Run Doctor") {
        void vscode.commands.executeCommand(RUN_DOCTOR);
      } else if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", problem.setting ?? "plancode");
      } else if (choice === "Show Log") {
        this.output.show(true);
      } else if (choice === "Retry") {
        void this.restart();
      }
    });
  }

  private onServerMessage(type: number, message: string): void {
    const level = type === 1 ? "error" : type === 2 ? "warning" : "info";
    this.status.update({ type: "message", level, message: oneLine(message) });
    if (level !== "info") {
      this.pollStats();
    }
    const actions = actionsFor(level, message);
    const show = level === "error" ? vscode.window.showErrorMessage
      : level === "warning" ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
    void show(displayText(message), ...actions.map((a) => a.title)).then((choice) => {
      const action = actions.find((a) => a.title === choice);
      if (action?.kind === "openSettings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", action.setting ?? "plancode");
      } else if (action?.kind === "showLog") {
        this.output.show(true);
      } else if (action?.kind === "showLastResult") {
        void vscode.commands.executeCommand("plancode.showLastResult");
      } else if (action?.kind === "runDoctor") {
        void vscode.commands.executeCommand(RUN_DOCTOR);
      }
    });
  }

  // -- settings -----------------------------------------------------------------------------
  private onConfiguration(e: vscode.ConfigurationChangeEvent): void {
    const kind = changeKind((s) => e.affectsConfiguration(s));
    if (kind === "restart") {
      this.output.info("launch settings changed: restarting the server");
      void this.restart();
    } else if (kind === "notify" && this.running) {
      const params = didChangeConfigurationParams((k) => config().get(k));
      this.output.info(`settings changed: ${JSON.stringify(params.settings.plancode)}`);
      void this.running.sendNotification(DidChangeConfigurationNotification.type, params);
      this.pollStats();
    }
  }

  // -- model state --------------------------------------------------------------------------
  /** Ask `plancode/stats` for the model's state; keep asking while it is loading. */
  pollStats(): void {
    this.stopPolling();
    const tick = async (): Promise<void> => {
      const client = this.running;
      if (!client) {
        return;
      }
      try {
        const stats = await client.sendRequest<{ model_state?: string }>(STATS, {});
        const modelState = stats?.model_state ?? "idle";
        this.status.update({ type: "stats", modelState, model: config().get<string>("model") });
        if (modelState === "loading" || modelState === "idle") {
          this.pollTimer = setTimeout(() => void tick(), 1000);
        }
      } catch (err) {
        this.output.debug(`plancode/stats: ${String(err)}`);
      }
    };
    this.pollTimer = setTimeout(() => void tick(), 200);
  }

  private stopPolling(): void {
    if (this.pollTimer) {
      clearTimeout(this.pollTimer);
      this.pollTimer = undefined;
    }
  }

  dispose(): void {
    if (this.cursorTimer) {
      clearTimeout(this.cursorTimer);
    }
    void this.stop();
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}
