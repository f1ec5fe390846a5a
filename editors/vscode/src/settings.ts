// Settings mapping: the extension's `plancode.*` settings -> the server's configuration.
//
// Pure (no `vscode` import) so it is unit-tested without VS Code. The server accepts camelCase
// keys, flat or under a "plancode" key, but rejects the whole mapping when one key is unknown,
// so only server keys may be sent: launch settings (serverPath, pythonPath, ...) stay here.

/** Settings the server understands (`plancode config`), in the extension's camelCase spelling. */
export const SERVER_SETTINGS = [
  "model",
  "backend",
  "remoteUrl",
  "nGpuLayers",
  "nThreads",
  "nCtx",
  "candidates",
  "repairRounds",
  "parallelCandidates",
  "escalateModel",
  "budget",
  "editorBudget",
  "docstringExamples",
  "prefillCode",
  "prefillTests",
  "maxTokens",
  "temperature",
  "seed",
  "testTimeout",
  "testCommand",
  "isolation",
  "sandboxExclude",
  "sandboxMemoryMb",
  "sandboxWriteMb",
  "planComments",
  "inlineMaxTokens",
  "inlineBudgetMs",
  "inlineDebounceMs",
  "inlinePrefetch",
  "inlineContext",
  "inlineVerify",
] as const;

/** Settings of the extension itself: changing one restarts the server. */
export const LAUNCH_SETTINGS = ["serverPath", "pythonPath", "serverArgs", "serverEnv"] as const;

export type ServerSetting = (typeof SERVER_SETTINGS)[number];
export type LaunchSetting = (typeof LAUNCH_SETTINGS)[number];

/** Reads one setting below the `plancode` section (e.g. `read("nGpuLayers")`). */
export type ConfigReader = (key: string) => unknown;

/** `nGpuLayers` -> `n_gpu_layers` (the server's own spelling, used in messages). */
export function toSnake(key: string): string {
  return key.replace(/(?<!^)(?=[A-Z])/g, "_").toLowerCase();
}

/** `n_gpu_layers` -> `nGpuLayers`. */
export function toCamel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The server's settings as the extension's configuration holds them, for
 * `initializationOptions` and `workspace/didChangeConfiguration`.
 *
 * Every server key is sent (defaults included) so that resetting a setting in the editor
 * resets it in the server too. Unset values (`undefined`/`null`) are left out, so the server
 * keeps its own value (or its `PLANCODE_<KEY>` environment variable).
 */
export function serverSettings(read: ConfigReader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_SETTINGS) {
    const value = read(key);
    if (value === undefined || value === null) {
      continue;
    }
    out[key] = typeof value === "string" ? value.trim() : value;
  }
  return out;
}

/** The payload for `workspace/didChangeConfiguration`: the settings under a "plancode" key. */
export function didChangeConfigurationParams(read: ConfigReader): {
  settings: { plancode: Record<string, unknown> };
} {
  return { settings: { plancode: serverSettings(read) } };
}

/** Which kind of reaction a configuration change needs. */
export function changeKind(affects: (section: string) => boolean): "restart" | "notify" | "none" {
  if (LAUNCH_SETTINGS.some((k) => affects(`plancode.${k}`))) {
    return "restart";
  }
  if (SERVER_SETTINGS.some((k) => affects(`plancode.${k}`))) {
    return "notify";
  }
  return "none";
}

/**
 * The setting named in a server message such as "plancode: invalid setting: setting
 * 'n_gpu_layers' = 'x' ..." or "unknown setting 'foo'", as an extension setting id
 * (`plancode.nGpuLayers`), or undefined.
 */
export function settingInMessage(message: string): string | undefined {
  const m = /setting '([A-Za-z_][A-Za-z0-9_]*)'/.exec(message);
  if (!m) {
    return undefined;
  }
  const camel = toCamel(m[1]);
  return (SERVER_SETTINGS as readonly string[]).includes(camel) ? `plancode.${camel}` : undefined;
}
