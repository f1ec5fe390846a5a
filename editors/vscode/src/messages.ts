// Which buttons a server message gets. Pure (no `vscode` import).
//
// The server reports problems with `window/showMessage` ("plancode: model file X does not
// exist\n  fix: ..."). The extension shows them with buttons that lead to the fix: the
// setting named in the message (or `plancode.model` for model problems), "Run Doctor" when the
// model failed to load or the message says to run `plancode doctor`, and the log.

import { settingInMessage } from "./settings";

export interface MessageAction {
  title: string;
  kind: "openSettings" | "showLog" | "showLastResult" | "runDoctor";
  /** For openSettings: the setting id to open (`plancode.model`). */
  setting?: string;
}

const MODEL_PROBLEM = /\bmodel\b|\.gguf\b|\bgguf\b|llama|plancode model fetch|hf:/i;

/** Buttons for a server message of the given level. */
export function actionsFor(level: "error" | "warning" | "info", message: string): MessageAction[] {
  const actions: MessageAction[] = [];
  const setting = settingInMessage(message) ?? (MODEL_PROBLEM.test(message) ? "plancode.model" : undefined);
  if (level === "error" || setting) {
    actions.push({ title: "Open Settings", kind: "openSettings", setting: setting ?? "plancode" });
  }
  if ((level === "error" && MODEL_PROBLEM.test(message)) || /plancode doctor/.test(message)) {
    actions.push({ title: "Run Doctor", kind: "runDoctor" });
  }
  if (/nothing was applied|tests pass/.test(message)) {
    actions.push({ title: "Show Plan & Tests", kind: "showLastResult" });
  }
  if (level !== "info") {
    actions.push({ title: "Show Log", kind: "showLog" });
  }
  return actions;
}

/** A message on one line for the status tooltip: "plancode: " prefix and "fix:" kept. */
export function oneLine(message: string): string {
  return message.replace(/^plancode:\s*/, "").replace(/\s*\n\s*/g, " — ").trim();
}

/** A server message as a notification shows it (one paragraph): "...does not exist. Fix: ...". */
export function displayText(message: string): string {
  return message.replace(/\.?\s*\n\s*fix:\s*/gi, ". Fix: ").replace(/\s*\n\s*/g, " ").trim();
}
