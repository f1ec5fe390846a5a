// Server-initiated `$/progress` as VS Code notifications.
//
// vscode-languageclient answers `window/workDoneProgress/create` with a *window* progress (a
// spinner in the status bar). plancode's progress (model loading, "candidate 2/4 (plan-greedy)")
// is worth seeing, so this feature takes over that request and shows each progress as a
// notification with the server's messages (the server renders every event's text; there is
// no event table here) and percentage. Its Cancel button sends
// `window/workDoneProgress/cancel` for the token, as the client's own progress does, and the
// server cancels the job: the implement request then fails with RequestCancelled. Every event
// also goes to the status bar's state machine.

import * as vscode from "vscode";
import {
  BaseLanguageClient,
  ClientCapabilities,
  Disposable,
  FeatureState,
  StaticFeature,
  WorkDoneProgress,
  WorkDoneProgressBegin,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
  WorkDoneProgressEnd,
  WorkDoneProgressReport,
} from "vscode-languageclient/node";

import { StatusEvent } from "./status";

export interface ProgressHooks {
  status(event: StatusEvent): void;
}

/** Progress shorter than this gets no notification. */
const NOTIFY_AFTER_MS = 400;

class Part {
  private progress?: vscode.Progress<{ message?: string; increment?: number }>;
  private resolve?: () => void;
  private reported = 0;
  private finished = false;
  private timer?: NodeJS.Timeout;
  private lastMessage?: string;
  private lastPercentage?: number;
  private readonly listener: Disposable;

  constructor(
    private readonly client: BaseLanguageClient,
    readonly token: string,
    private readonly hooks: ProgressHooks,
    private readonly onDone: (part: Part) => void,
  ) {
    this.listener = client.onProgress(WorkDoneProgress.type, token, (value) => {
      switch (value.kind) {
        case "begin":
          this.begin(value);
          break;
        case "report":
          this.report(value);
          break;
        case "end":
          this.end(value);
          break;
      }
    });
  }

  private begin(value: WorkDoneProgressBegin): void {
    this.hooks.status({ type: "progressBegin", token: this.token, title: value.title, message: value.message });
    this.lastMessage = value.message;
    this.lastPercentage = value.percentage;
    // Progress that ends within NOTIFY_AFTER_MS (a failed or instant model load) gets no
    // notification (the status bar shows it): a notification opened and closed within a few
    // milliseconds can stay on screen in VS Code.
    this.timer = setTimeout(() => this.open(value), NOTIFY_AFTER_MS);
  }

  private open(value: WorkDoneProgressBegin): void {
    this.timer = undefined;
    if (this.finished) {
      return;
    }
    void vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: value.title,
        cancellable: value.cancellable === true,
      },
      (progress, cancel) => {
        if (this.finished) {
          return Promise.resolve();
        }
        this.progress = progress;
        cancel.onCancellationRequested(() => {
          void this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token: this.token });
        });
        this.show(this.lastMessage, this.lastPercentage);
        return new Promise<void>((resolve) => {
          this.resolve = resolve;
        });
      },
    );
  }

  private report(value: WorkDoneProgressReport): void {
    this.hooks.status({
      type: "progressReport", token: this.token, message: value.message, percentage: value.percentage,
    });
    this.lastMessage = value.message ?? this.lastMessage;
    this.lastPercentage = value.percentage ?? this.lastPercentage;
    this.show(value.message, value.percentage);
  }

  private show(message: string | undefined, percentage: number | undefined): void {
    let increment: number | undefined;
    if (typeof percentage === "number") {
      const pct = Math.max(0, Math.min(percentage, 100));
      increment = Math.max(0, pct - this.reported);
      this.reported += increment;
    }
    if (this.progress) {
      this.progress.report({ message, increment });
    } else if (increment !== undefined) {
      this.reported -= increment; // not shown yet: report it when the notification opens
    }
  }

  end(value?: WorkDoneProgressEnd): void {
    if (this.finished) {
      return;
    }
    this.finished = true;
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.hooks.status({ type: "progressEnd", token: this.token, message: value?.message });
    this.listener.dispose();
    this.resolve?.();
    this.onDone(this);
  }
}

/** Replaces the client's window-progress handling with notifications. */
export class NotificationProgressFeature implements StaticFeature {
  private readonly parts = new Map<string, Part>();

  constructor(private readonly client: BaseLanguageClient, private readonly hooks: ProgressHooks) {}

  getState(): FeatureState {
    return { kind: "static" };
  }

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.window = capabilities.window ?? {};
    capabilities.window.workDoneProgress = true;
  }

  /** Runs after the built-in ProgressFeature, so this handler is the one in force. */
  initialize(): void {
    this.client.onRequest(WorkDoneProgressCreateRequest.type, (params) => {
      const token = String(params.token);
      this.parts.get(token)?.end();
      this.parts.set(token, new Part(this.client, token, this.hooks, (part) => this.parts.delete(part.token)));
    });
  }

  clear(): void {
    for (const part of [...this.parts.values()]) {
      part.end();
    }
    this.parts.clear();
  }
}
