// plancode for VS Code: wires the modules together.

import * as vscode from "vscode";

import { registerCommands, SHOW_ACTIONS } from "./commands";
import { ResultView } from "./resultView";
import { ServerController } from "./serverController";
import { StatusBar } from "./statusBar";

let controller: ServerController | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("plancode", { log: true });
  const status = new StatusBar(SHOW_ACTIONS);
  const view = new ResultView();
  controller = new ServerController(output, status);
  context.subscriptions.push(output, status, view, controller, ...registerCommands(controller, view));
  await controller.start();
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}
