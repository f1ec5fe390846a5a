// The extension's commands: implement the function at the cursor, show the last result,
// restart the server, run the doctor (doctorCommand.ts), and the status bar's action menu.

import * as vscode from "vscode";
import { ExecuteCommandRequest, LSPErrorCodes, ResponseError } from "vscode-languageclient/node";

import { RUN_DOCTOR } from "./doctor";
import { Doctor } from "./doctorCommand";
import { ACCEPT_NOW, answerMessage, isAnswer, isResult, PipelineResult, SHOW_ANSWER, summary } from "./render";
import { ResultView } from "./resultView";
import { ACCEPT_ANSWER, IMPLEMENT, IMPLEMENT_COMMAND, LAST_RESULT, ServerController } from "./serverController";

export const SHOW_LAST_RESULT = "plancode.showLastResult";
export const RESTART = "plancode.restartServer";
export const SHOW_ACTIONS = "plancode.showActions";

function errorText(err: unknown): string {
  if (err instanceof ResponseError || err instanceof Error) {
    return err.message;
  }
  return String(err);
}

/** The server's answer to a cancelled job (Cancel on its progress, or a `$/cancelRequest`). */
function isCancelled(err: unknown): boolean {
  return err instanceof ResponseError && err.code === LSPErrorCodes.RequestCancelled;
}

async function requireClient(controller: ServerController) {
  const client = controller.running;
  if (!client) {
    const choice = await vscode.window.showErrorMessage(
      "plancode: the language server is not running.", "Restart Server", "Show Log");
    if (choice === "Restart Server") {
      await controller.restart();
    } else if (choice === "Show Log") {
      controller.output.show(true);
    }
  }
  return client;
}

export function registerCommands(controller: ServerController, view: ResultView): vscode.Disposable[] {
  let last: PipelineResult | undefined;
  const doctor = new Doctor(controller, view);

  const implement = async (uriArg?: unknown, lineArg?: unknown): Promise<PipelineResult | undefined> => {
    let uri: string;
    let line: number;
    let document: vscode.TextDocument | undefined;
    if (typeof uriArg === "string" && typeof lineArg === "number") {
      uri = uriArg;
      line = lineArg;
      document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
    } else {
      const editor = vscode.window.activeTextEditor;
      if (!editor || editor.document.languageId !== "python") {
        void vscode.window.showWarningMessage(
          "plancode: put the cursor in a Python function first (its signature, docstring or body).");
        return undefined;
      }
      document = editor.document;
      uri = document.uri.toString();
      line = editor.selection.active.line;
    }
    if (document?.isUntitled) {
      void vscode.window.showWarningMessage(
        "plancode: save the file first, so its tests can be found and run.");
      return undefined;
    }
    const client = await requireClient(controller);
    if (!client) {
      return undefined;
    }
    // Cancel on the server's progress notification (progress.ts) stops the job; the server
    // then answers this request with RequestCancelled.
    try {
      const result = await client.sendRequest(ExecuteCommandRequest.type,
        { command: IMPLEMENT, arguments: [uri, line] });
      if (!isResult(result)) {
        return undefined;
      }
      last = result;
      const text = summary(result);
      const buttons = ["Show Plan & Tests"];
      if (result.applied) {
        void vscode.window.showInformationMessage(`plancode: ${text} — applied.`, ...buttons)
          .then((c) => c && vscode.commands.executeCommand(SHOW_LAST_RESULT));
      } else if (!result.chosen) {
        void vscode.window.showWarningMessage(`plancode: ${text}.`, ...buttons)
          .then((c) => c && vscode.commands.executeCommand(SHOW_LAST_RESULT));
      }
      // a failing result or a document edited meanwhile: the server says so itself
      return result;
    } catch (err) {
      if (isCancelled(err)) {
        void vscode.window.showInformationMessage("plancode: implementing was cancelled.");
      } else {
        void vscode.window.showErrorMessage(`plancode: ${errorText(err)}`);
      }
      return undefined;
    }
  };

  const showLastResult = async (): Promise<PipelineResult | undefined> => {
    let result: unknown = undefined;
    const client = controller.running;
    if (client) {
      try {
        result = await client.sendRequest(ExecuteCommandRequest.type, { command: LAST_RESULT, arguments: [] });
      } catch (err) {
        controller.output.warn(`${LAST_RESULT}: ${errorText(err)}`);
      }
    }
    const shown = isResult(result) ? result : last;
    if (!shown) {
      void vscode.window.showInformationMessage(
        "plancode: no result yet. Run \"Plancode: Implement function with plan\" first.");
      return undefined;
    }
    await view.show(shown);
    return shown;
  };

  // `plancode/answer`: the first answer that passes the user's (weak) tests, offered while the
  // search goes on. Nothing changes in the file until it is accepted or the final answer comes.
  controller.onAnswer = (params: unknown): void => {
    if (!isAnswer(params)) {
      return;
    }
    const offered = params.result;
    void vscode.window.showInformationMessage(answerMessage(params), ACCEPT_NOW, SHOW_ANSWER)
      .then(async (choice) => {
        if (choice === SHOW_ANSWER) {
          await view.show(offered);
        } else if (choice === ACCEPT_NOW) {
          const client = controller.running;
          if (!client) {
            return;
          }
          try {
            const reply = await client.sendRequest(ExecuteCommandRequest.type,
              { command: ACCEPT_ANSWER, arguments: [params.uri] }) as { accepted?: boolean; why?: string } | null;
            if (!reply?.accepted) {
              void vscode.window.showInformationMessage(
                `plancode: could not accept the first answer: ${reply?.why ?? "the run has ended"}.`);
            }
          } catch (err) {
            void vscode.window.showErrorMessage(`plancode: ${errorText(err)}`);
          }
        }
      });
  };

  const showActions = async (): Promise<void> => {
    const runDoctor = { label: "$(pulse) Run doctor (check the install)", run: () => doctor.run() };
    const items: (vscode.QuickPickItem & { run: () => unknown })[] = [
      { label: "$(wand) Implement function with plan", run: () => implement() },
      { label: "$(checklist) Show last plan and test results", run: () => showLastResult() },
      { label: "$(debug-restart) Restart server", run: () => controller.restart() },
      runDoctor,
      { label: "$(gear) Open settings", run: () => vscode.commands.executeCommand("workbench.action.openSettings", "plancode") },
      { label: "$(output) Show log", run: () => controller.output.show(true) },
    ];
    if (!controller.running || controller.status.current.model === "error") {
      items.splice(items.indexOf(runDoctor), 1); // something is wrong: the doctor goes first
      items.unshift(runDoctor);
    }
    const pick = await vscode.window.showQuickPick(items, { title: "plancode" });
    await pick?.run();
  };

  return [
    vscode.commands.registerCommand(IMPLEMENT_COMMAND, implement),
    vscode.commands.registerCommand(SHOW_LAST_RESULT, showLastResult),
    vscode.commands.registerCommand(RESTART, () => controller.restart()),
    vscode.commands.registerCommand(SHOW_ACTIONS, showActions),
    vscode.commands.registerCommand(RUN_DOCTOR, () => doctor.run()),
  ];
}
