// The status state machine: what the status bar says about the server.
//
// Pure (no `vscode` import). Inputs are events from the client (starting, running, stopped,
// start failed), the server's `$/progress` (model loading, implement jobs), its
// `window/showMessage` errors, `plancode/stats` replies (the source of truth for the model's
// state) and the last `plancode doctor` summary. The output is a `StatusView`: text with a
// codicon, a tooltip, a severity.

export type Phase = "stopped" | "starting" | "loading" | "ready" | "working" | "error";

/** Kind of a server-initiated progress, from its token (`plancode-load-…`, `plancode-implement-…`). */
export type ProgressKind = "load" | "implement" | "other";

export type StatusEvent =
  | { type: "starting"; source?: string }
  | { type: "running" }
  | { type: "stopped" }
  | { type: "startFailed"; message: string }
  | { type: "progressBegin"; token: string; title?: string; message?: string }
  | { type: "progressReport"; token: string; message?: string; percentage?: number }
  | { type: "progressEnd"; token: string; message?: string }
  | { type: "message"; level: "error" | "warning" | "info"; message: string }
  | { type: "stats"; modelState: string; model?: string }
  | { type: "doctor"; level: "info" | "warning" | "error"; summary: string };

export interface StatusState {
  /** The client side: is a server process running? */
  client: "stopped" | "starting" | "running" | "failed";
  /** The model's state as last known: idle | loading | ready | error. */
  model: string;
  /** The model's name, when known. */
  modelName?: string;
  /** Active implement jobs: token -> latest message and percentage. */
  jobs: Record<string, { message: string; percentage?: number }>;
  /** The load progress' latest message. */
  loadMessage?: string;
  /** The last error (start failure, model error or other server error). */
  lastError?: string;
  /** Where the server command came from. */
  source?: string;
  /** The last `plancode doctor` run: its summary, and how bad it was. */
  doctor?: { level: "info" | "warning" | "error"; summary: string };
}

export interface StatusView {
  phase: Phase;
  text: string;
  tooltip: string;
  severity: "normal" | "warning" | "error";
}

export const INITIAL: StatusState = { client: "stopped", model: "idle", jobs: {} };

export function progressKind(token: string, title?: string): ProgressKind {
  if (token.startsWith("plancode-load-")) {
    return "load";
  }
  if (token.startsWith("plancode-implement-") || (title ?? "").includes("implement")) {
    return "implement";
  }
  return title === "plancode" ? "load" : "other";
}

/** The next state (states are never mutated). */
export function reduce(state: StatusState, event: StatusEvent): StatusState {
  switch (event.type) {
    case "starting":
      return { ...INITIAL, client: "starting", source: event.source ?? state.source, doctor: state.doctor };
    case "running":
      return { ...state, client: "running", lastError: undefined };
    case "stopped":
      return { ...state, client: "stopped", jobs: {}, loadMessage: undefined };
    case "startFailed":
      return { ...state, client: "failed", jobs: {}, lastError: event.message };
    case "progressBegin": {
      const kind = progressKind(event.token, event.title);
      if (kind === "load") {
        return { ...state, model: "loading", loadMessage: event.message, lastError: undefined };
      }
      if (kind === "implement") {
        return { ...state, jobs: { ...state.jobs, [event.token]: { message: event.message ?? "starting" } } };
      }
      return state;
    }
    case "progressReport": {
      if (event.token in state.jobs) {
        const job = { message: event.message ?? state.jobs[event.token].message, percentage: event.percentage };
        return { ...state, jobs: { ...state.jobs, [event.token]: job } };
      }
      if (progressKind(event.token) === "load") {
        return { ...state, loadMessage: event.message ?? state.loadMessage };
      }
      return state;
    }
    case "progressEnd": {
      if (event.token in state.jobs) {
        const jobs = { ...state.jobs };
        delete jobs[event.token];
        return { ...state, jobs };
      }
      if (progressKind(event.token) === "load") {
        // "ready" or the error text: the stats reply that follows says which
        return { ...state, loadMessage: event.message };
      }
      return state;
    }
    case "message":
      if (event.level !== "error") {
        return state;
      }
      return { ...state, lastError: event.message };
    case "doctor":
      return { ...state, doctor: { level: event.level, summary: event.summary } };
    case "stats": {
      const next = { ...state, model: event.modelState, modelName: event.model ?? state.modelName };
      if (event.modelState === "ready" && state.model !== "ready") {
        next.lastError = undefined;
      }
      return next;
    }
  }
}

/** The phase shown: client problems first, then jobs, then the model. */
export function phase(state: StatusState): Phase {
  if (state.client === "failed") {
    return "error";
  }
  if (state.client === "stopped") {
    return "stopped";
  }
  if (state.client === "starting") {
    return "starting";
  }
  if (state.model === "error") {
    return "error";
  }
  if (Object.keys(state.jobs).length > 0) {
    return "working";
  }
  if (state.model === "loading" || state.model === "idle") {
    return "loading";
  }
  return "ready";
}

export function view(state: StatusState): StatusView {
  const p = phase(state);
  const model = state.modelName ? ` (${state.modelName})` : "";
  const jobs = Object.values(state.jobs);
  const lines: string[] = [];
  let text: string;
  let severity: StatusView["severity"] = "normal";
  switch (p) {
    case "stopped":
      text = "$(circle-slash) plancode";
      lines.push("plancode: the language server is not running. Click for actions.");
      break;
    case "starting":
      text = "$(loading~spin) plancode";
      lines.push("plancode: starting the language server…");
      break;
    case "loading":
      text = "$(loading~spin) plancode: loading model";
      lines.push(`plancode: ${state.loadMessage ?? "loading the model"}${model}`);
      break;
    case "working":
      text = `$(sync~spin) plancode: ${shorten(jobs[jobs.length - 1]?.message ?? "working", 48)}`;
      lines.push("plancode: implementing (plan → code → your tests)");
      for (const j of jobs) {
        lines.push(`• ${j.message}${j.percentage === undefined ? "" : ` (${j.percentage}%)`}`);
      }
      break;
    case "ready":
      text = "$(check) plancode";
      lines.push(`plancode: ready${model}`);
      break;
    case "error":
      text = "$(error) plancode";
      severity = "error";
      lines.push(state.client === "failed"
        ? "plancode: the language server could not start"
        : `plancode: the model could not be loaded${model}`);
      break;
  }
  if (state.lastError && p !== "ready") {
    lines.push(state.lastError);
  } else if (state.lastError) {
    severity = "warning";
    lines.push(`Last error: ${state.lastError}`);
  }
  if (state.source) {
    lines.push(`Server: ${state.source}`);
  }
  if (state.doctor) {
    lines.push(`Doctor: ${state.doctor.summary}`);
  } else if (p === "error") {
    lines.push("Run \"Plancode: Run doctor\" to check the install (each problem with its fix).");
  }
  lines.push("Click for plancode actions.");
  return { phase: p, text, tooltip: lines.join("\n"), severity };
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
