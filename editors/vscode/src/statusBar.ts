// The status bar item: renders the state machine of status.ts.

import * as vscode from "vscode";

import { INITIAL, reduce, StatusEvent, StatusState, view } from "./status";

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private state: StatusState = INITIAL;
  private readonly changed = new vscode.EventEmitter<StatusState>();
  readonly onDidChange = this.changed.event;

  constructor(command: string) {
    this.item = vscode.window.createStatusBarItem("plancode.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "plancode";
    this.item.command = command;
    this.render();
    this.item.show();
  }

  get current(): StatusState {
    return this.state;
  }

  update(event: StatusEvent): void {
    const next = reduce(this.state, event);
    if (next === this.state) {
      return;
    }
    this.state = next;
    this.render();
    this.changed.fire(next);
  }

  private render(): void {
    const v = view(this.state);
    this.item.text = v.text;
    this.item.tooltip = v.tooltip;
    this.item.accessibilityInformation = { label: v.tooltip.split("\n")[0] };
    this.item.backgroundColor = v.severity === "error"
      ? new vscode.ThemeColor("statusBarItem.errorBackground")
      : v.severity === "warning" ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
    this.changed.dispose();
  }
}
