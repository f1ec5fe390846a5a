// End-to-end test of the extension in a real VS Code (code-server), driven from headless
// Chromium with playwright-core.
//
//   node e2e/run.mjs [--screenshots DIR] [--keep]
//
// 1. installs the built .vsix into a fresh code-server (`--install-extension`);
// 2. opens a temporary copy of examples/textstats (the repository is never modified) with the
//    extension's settings in code-server's user settings.json (tiny model for ghost text);
// 3. opens textstats/numbers.py, types a new function, waits for ghost text and accepts it
//    with Tab (then removes the typed function again, so the file is as before);
// 4. switches plancode.model to the default model in settings.json (the extension sends
//    workspace/didChangeConfiguration; the status bar goes loading -> ready);
// 5. runs "Plancode: Implement function with plan" on `median`, waits for the edit, saves,
//    and runs the project's median tests with pytest on the copy;
// 6. runs "Plancode: Show last plan and test results" and checks the preview; starts the code
//    action on the empty `running_mean` and cancels it from its progress notification; runs
//    "Plancode: Restart server"; runs "Plancode: Run doctor (check the install)" and checks its
//    notification and its report view (no check failed);
// 7. checks the errors a user sees when the server cannot start (missing serverPath, a Python
//    without plancode), the model is missing or llama.cpp crashes with SIGILL while loading it
//    (injected through plancode.serverEnv): the fix is in the message, there is an
//    "Open Settings" button, the status bar turns red, no progress notification is left behind;
//    on the crash, the "Run Doctor" button runs the doctor, whose report names the crash.
// Screenshots and e2e-report.json (timings) go to the work folder, or --screenshots DIR.
//
// Environment (defaults in brackets):
//   PLANCODE_BIN        the plancode executable          [<repo>/.venv/bin/plancode]
//   PLANCODE_PYTHON     Python that runs pytest           [<repo>/.venv/bin/python]
//   CODE_SERVER_DIR     where install-code-server.sh put it [~/.cache/plancode/vscode-e2e/code-server]
//   CHROMIUM            a Chromium executable             [chromium on PATH]
//   PLANCODE_VSIX       the packaged extension            [editors/vscode/plancode.vsix]
//   GHOST_MODEL / IMPLEMENT_MODEL                          [smollm2-135m / qwen2.5-coder-0.5b]
//   E2E_IMPLEMENT_TIMEOUT_S                                [900]

import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXT = path.resolve(HERE, "..");
const REPO = path.resolve(EXT, "..", "..");
const args = process.argv.slice(2);
const argValue = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const PLANCODE = process.env.PLANCODE_BIN ?? path.join(REPO, ".venv", "bin", "plancode");
const PYTHON = process.env.PLANCODE_PYTHON ?? path.join(REPO, ".venv", "bin", "python");
const CS_DIR = process.env.CODE_SERVER_DIR ?? path.join(os.homedir(), ".cache", "plancode", "vscode-e2e", "code-server");
const CODE_SERVER = path.join(CS_DIR, "node_modules", ".bin", "code-server");
const VSIX = process.env.PLANCODE_VSIX ?? path.join(EXT, "plancode.vsix");
const GHOST_MODEL = process.env.GHOST_MODEL ?? "smollm2-135m";
const IMPLEMENT_MODEL = process.env.IMPLEMENT_MODEL ?? "qwen2.5-coder-0.5b";
const IMPLEMENT_TIMEOUT = 1000 * Number(process.env.E2E_IMPLEMENT_TIMEOUT_S ?? 900);

// a Python without plancode, for the "Python lacks plancode" error
const SYSTEM_PYTHON = ["/usr/bin/python3", "/usr/local/bin/python3"].find((p) => {
  try {
    execFileSync(p, ["-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('server') is not None)"],
      { stdio: "ignore", cwd: os.tmpdir() });
    return true;
  } catch {
    return false;
  }
});

const t0 = Date.now();
const timings = {};
const report = { ok: false, timings, steps: [] };
let work;

function log(msg) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  console.log(`[e2e ${s}s] ${msg}`);
  report.steps.push(`${s}s ${msg}`);
}

async function timed(name, fn) {
  const start = Date.now();
  log(`${name} ...`);
  try {
    return await fn();
  } finally {
    timings[name] = Number(((Date.now() - start) / 1000).toFixed(1));
    log(`${name}: ${timings[name]} s`);
  }
}

function which(cmd) {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const p = path.join(dir, cmd);
    if (dir && fs.existsSync(p)) {
      return p;
    }
  }
  return undefined;
}

function requireFile(p, what, fix) {
  if (!p || !fs.existsSync(p)) {
    console.error(`e2e prerequisite missing: ${what} (${p ?? "not found"}). Fix: ${fix}`);
    process.exit(3);
  }
}

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function writeSettings(userDir, model, extra = {}) {
  const settings = {
    "plancode.serverPath": PLANCODE,
    "plancode.model": model,
    "plancode.serverArgs": ["--log-file", path.join(work, "server.log"), "--log-level", process.env.E2E_SERVER_LOG_LEVEL ?? "info"],
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "extensions.ignoreRecommendations": true,
    "chat.commandCenter.enabled": false,
    "chat.disableAIFeatures": true,
    "files.autoSave": "off",
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
    "editor.autoIndent": "none",
    "editor.quickSuggestions": { other: false, comments: false, strings: false },
    "editor.suggestOnTriggerCharacters": false,
    "editor.wordBasedSuggestions": "off",
    "editor.inlineSuggest.enabled": true,
    "editor.minimap.enabled": false,
    "workbench.colorTheme": "Default Dark Modern",
    ...extra,
  };
  fs.mkdirSync(userDir, { recursive: true });
  fs.writeFileSync(path.join(userDir, "settings.json"), JSON.stringify(settings, null, 2));
  return settings;
}

function settingsObject(model, extra = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "plancode-settings-"));
  const settings = writeSettings(dir, model, extra);
  fs.rmSync(dir, { recursive: true, force: true });
  return settings;
}

/** Change the user settings the way a user does: edit settings.json in VS Code and save. */
async function editSettings(page, settings) {
  await runCommand(page, "Preferences: Open User Settings (JSON)");
  await page.locator(".tab", { hasText: "settings.json" }).first().waitFor({ timeout: 15000 });
  await page.waitForTimeout(700);
  await page.locator(".monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+A");
  await page.keyboard.insertText(JSON.stringify(settings, null, 2));
  await save(page);
  await page.waitForTimeout(700);
  await runCommand(page, "View: Close Editor");
  await page.waitForTimeout(300);
}

async function statusLabel(page) {
  const item = page.locator('.part.statusbar [aria-label^="plancode"]').first();
  return (await item.getAttribute("aria-label", { timeout: 1000 }).catch(() => null)) ?? "";
}

async function waitForStatus(page, pattern, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < end) {
    last = await statusLabel(page);
    if (pattern.test(last)) {
      return last;
    }
    if (/could not/.test(last) && !pattern.test(last)) {
      throw new Error(`status bar says: ${last}`);
    }
    await page.waitForTimeout(500);
  }
  throw new Error(`timed out waiting for ${what}; status bar: "${last}"`);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The quick input box (F1), retried: focus can be anywhere after the previous step. */
async function quickInput(page) {
  const input = page.locator(".quick-input-widget input");
  for (let attempt = 0; attempt < 4; attempt++) {
    await page.keyboard.press("F1");
    try {
      await input.waitFor({ state: "visible", timeout: 5000 });
      return input;
    } catch {
      await page.keyboard.press("Escape");
      await page.locator(".monaco-workbench").click({ position: { x: 700, y: 5 } }).catch(() => undefined);
    }
  }
  throw new Error("the command palette did not open");
}

/** Run a command from the palette, choosing the row whose label is exactly `title`. */
async function runCommand(page, title) {
  const input = await quickInput(page);
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-list .monaco-list-row").filter({
    has: page.locator(".label-name", { hasText: new RegExp(`^${escapeRegExp(title)}$`) }),
  }).first();
  await row.waitFor({ state: "visible", timeout: 10000 });
  await row.click();
}

async function openFile(page, name) {
  const input = await quickInput(page);
  await input.fill(name); // without the ">" the palette is Quick Open
  await page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first()
    .waitFor({ state: "visible", timeout: 15000 });
  await page.keyboard.press("Enter");
  await page.locator(".tab", { hasText: name }).first().waitFor({ timeout: 15000 });
  await page.waitForTimeout(300);
}

/** Save the active editor and wait until VS Code has written it (the tab is no longer dirty). */
async function save(page) {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt === 0) {
      await page.keyboard.press("Control+S");
    } else {
      log("Ctrl+S did not save: using File: Save");
      await runCommand(page, "File: Save");
    }
    try {
      await page.locator(".tab.active.dirty").waitFor({ state: "detached", timeout: 5000 });
      return;
    } catch {
      // try again
    }
  }
  throw new Error("could not save the active editor");
}

async function gotoLine(page, line) {
  const input = await quickInput(page);
  await input.fill(`:${line}`);
  await page.keyboard.press("Enter");
}

/** The text of the Markdown preview whose tab is `title` (a webview: two nested iframes). */
async function previewText(page, title, pattern, timeoutMs = 20000) {
  await page.locator(".tab", { hasText: title }).first().waitFor({ timeout: timeoutMs });
  const end = Date.now() + timeoutMs;
  let text = "";
  while (Date.now() < end) {
    for (const frame of page.frames()) {
      const body = await frame.locator("body.vscode-body").innerText({ timeout: 500 }).catch(() => "");
      if (pattern.test(body)) {
        return body;
      }
      text = body || text;
    }
    await page.waitForTimeout(500);
  }
  throw new Error(`the preview "${title}" does not show ${pattern}; it shows: ${text.slice(0, 500)}`);
}

/** Run the doctor (through `start`), wait for its notification, check its report view. */
async function doctorRun(page, start, notice, report, shot) {
  await start();
  const toast = page.locator(".notifications-toasts .notification-toast", { hasText: /plancode doctor: / });
  await toast.first().waitFor({ state: "visible", timeout: 120000 });
  const text = (await toast.first().locator(".notification-list-item-message").innerText()).trim();
  if (!notice.test(text)) {
    throw new Error(`the doctor's notification does not match ${notice}: ${text}`);
  }
  const shown = await previewText(page, "plancode doctor", report);
  await page.waitForTimeout(500);
  await screenshot(page, shot);
  return { notification: text, report: shown };
}

async function screenshot(page, name) {
  const file = path.join(work, name);
  await page.screenshot({ path: file });
  report.screenshots = [...(report.screenshots ?? []), file];
  log(`screenshot ${file}`);
}

async function main() {
  requireFile(PLANCODE, "the plancode executable", "`make test` (or pip install -e .) creates .venv/bin/plancode; or set PLANCODE_BIN");
  requireFile(CODE_SERVER, "code-server", `editors/vscode/e2e/install-code-server.sh ${CS_DIR}`);
  const chromiumPath = process.env.CHROMIUM ?? which("chromium") ?? which("chromium-browser");
  requireFile(chromiumPath, "Chromium", "apt-get install -y chromium (Debian), or set CHROMIUM");
  requireFile(VSIX, "the packaged extension", "npm run package (in editors/vscode)");

  work = fs.mkdtempSync(path.join(os.tmpdir(), "plancode-vscode-e2e-"));
  report.work = work;
  log(`work folder ${work}`);
  const folder = path.join(work, "examples");
  fs.cpSync(path.join(REPO, "examples", "textstats"), path.join(folder, "textstats"), {
    recursive: true, filter: (src) => !src.includes("__pycache__") && !src.includes(".pytest_cache"),
  });
  const project = path.join(folder, "textstats");
  const numbers = path.join(project, "textstats", "numbers.py");
  const original = fs.readFileSync(numbers, "utf8");
  const userData = path.join(work, "user-data");
  const extensions = path.join(work, "extensions");
  writeSettings(path.join(userData, "User"), GHOST_MODEL);

  await timed("install_extension", async () => {
    const out = execFileSync(CODE_SERVER, ["--install-extension", VSIX, "--extensions-dir", extensions,
      "--user-data-dir", userData], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    log(out.trim().split("\n").slice(-1)[0]);
    const listed = execFileSync(CODE_SERVER, ["--list-extensions", "--show-versions", "--extensions-dir",
      extensions, "--user-data-dir", userData], { encoding: "utf8" });
    if (!/plancode\.plancode@/.test(listed)) {
      throw new Error(`extension not installed; --list-extensions says: ${listed}`);
    }
    report.extension = listed.trim();
  });

  const port = await freePort();
  const csLog = fs.openSync(path.join(work, "code-server.log"), "w");
  const cs = spawn(CODE_SERVER, [
    "--bind-addr", `127.0.0.1:${port}`, "--auth", "none", "--disable-telemetry", "--disable-update-check",
    "--disable-workspace-trust", "--disable-getting-started-override", "--user-data-dir", userData,
    "--extensions-dir", extensions, folder,
  ], { stdio: ["ignore", csLog, csLog], detached: true });
  let browser;
  let page;
  try {
    await timed("code_server_start", async () => {
      const end = Date.now() + 60000;
      while (Date.now() < end) {
        if (fs.readFileSync(path.join(work, "code-server.log"), "utf8").includes("HTTP server listening")) {
          return;
        }
        if (cs.exitCode !== null) {
          throw new Error(`code-server exited: ${fs.readFileSync(path.join(work, "code-server.log"), "utf8")}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error("code-server did not start within 60 s");
    });

    browser = await chromium.launch({ executablePath: chromiumPath, headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
    page = await context.newPage();
    page.on("pageerror", (e) => log(`page error: ${e.message}`));

    await timed("workbench_load", async () => {
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(folder)}`);
      await page.locator(".monaco-workbench").waitFor({ state: "visible", timeout: 60000 });
      await page.locator(".explorer-folders-view, .explorer-viewlet").first().waitFor({ timeout: 30000 }).catch(() => undefined);
      await page.waitForTimeout(1500);
    });

    await timed("open_file_and_server_ready", async () => {
      await openFile(page, "numbers.py");
      report.status_ready_ghost = await waitForStatus(page, new RegExp(`^plancode: ready \\(${GHOST_MODEL}\\)`),
        180000, "the server with the ghost-text model");
    });

    // -- ghost text --------------------------------------------------------------------------
    const TYPED = "    return sum(";
    const lines = original.split("\n");
    const appendAt = original.endsWith("\n") ? lines.length : lines.length + 1;
    await timed("ghost_text", async () => {
      await page.locator(".monaco-editor .view-lines").first().click();
      await page.keyboard.press("Control+End");
      if (!original.endsWith("\n")) {
        await page.keyboard.press("Enter");
      }
      await page.keyboard.press("Enter");
      await page.keyboard.press("Enter");
      await page.keyboard.type("def mean(values: list[float]) -> float:", { delay: 15 });
      await page.keyboard.press("Enter");
      await page.keyboard.type('    """Return the arithmetic mean of values."""', { delay: 15 });
      await page.keyboard.press("Enter");
      await page.keyboard.type(TYPED, { delay: 15 });
      const ghost = page.locator(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text").first();
      let shown = false;
      for (let attempt = 0; attempt < 4 && !shown; attempt++) {
        try {
          await ghost.waitFor({ state: "visible", timeout: 45000 });
          shown = true;
        } catch {
          log("no ghost text yet: asking again (Alt+\\ = trigger inline suggestion)");
          await page.keyboard.press("Alt+Backslash");
        }
      }
      if (!shown) {
        throw new Error("no ghost text appeared");
      }
      report.ghost_text = (await page.locator(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview")
        .allTextContents()).join("").replace(/\u00a0/g, " ").trim();
      log(`ghost text: ${JSON.stringify(report.ghost_text)}`);
      await screenshot(page, "vscode-ghost-text.png");
      await page.keyboard.press("Tab");
      await page.waitForTimeout(500);
      await save(page);
      const saved = fs.readFileSync(numbers, "utf8");
      const returnLine = saved.split("\n").find((l) => l.startsWith("    return ")) ?? "";
      report.accepted_line = returnLine;
      log(`after Tab the line reads: ${JSON.stringify(returnLine)}`);
      if (!returnLine.startsWith(TYPED) || returnLine.length <= TYPED.length) {
        throw new Error("Tab did not insert the ghost text");
      }
      if (!returnLine.includes((report.ghost_text ?? "").split("\n")[0].trim().slice(0, 8))) {
        throw new Error(`accepted line ${JSON.stringify(returnLine)} does not hold the ghost text`);
      }
      // remove the typed function again, so the file is exactly as before
      await gotoLine(page, appendAt);
      await page.keyboard.press("End");
      await page.keyboard.press("Control+Shift+End");
      await page.keyboard.press("Delete");
      await save(page);
      const restored = fs.readFileSync(numbers, "utf8");
      if (restored !== original) {
        throw new Error(`could not restore numbers.py after the ghost-text step:\n${restored}`);
      }
    });

    // -- switch the model through settings.json: didChangeConfiguration -----------------------
    if (IMPLEMENT_MODEL !== GHOST_MODEL) {
      await timed("model_switch", async () => {
        await editSettings(page, settingsObject(IMPLEMENT_MODEL));
        report.status_ready_implement = await waitForStatus(page,
          new RegExp(`^plancode: ready \\(${IMPLEMENT_MODEL.replace(/\./g, "\\.")}\\)`), 240000,
          "the default model after the settings change");
      });
    }

    // -- implement median ------------------------------------------------------------------------
    await timed("implement", async () => {
      await openFile(page, "numbers.py");
      await gotoLine(page, 13);
      await runCommand(page, "Plancode: Implement function with plan");
      const progress = page.locator(".notifications-toasts .notification-toast", { hasText: "plancode: implement" });
      await progress.first().waitFor({ state: "visible", timeout: 60000 }).then(async () => {
        log("progress notification shown");
        await page.waitForTimeout(1500);
        await screenshot(page, "vscode-progress.png");
      }).catch(() => log("no progress notification seen (the job may have been cached)"));
      const done = page.locator(".notifications-toasts .notification-toast", { hasText: /applied\.|nothing was applied|no usable candidate/ });
      await done.first().waitFor({ state: "visible", timeout: IMPLEMENT_TIMEOUT });
      report.implement_message = (await done.first().locator(".notification-list-item-message").innerText()).trim();
      log(`notification: ${report.implement_message}`);
      if (!/applied\./.test(report.implement_message ?? "") || /nothing was applied/.test(report.implement_message ?? "")) {
        throw new Error(`implement did not apply a verified result: ${report.implement_message}`);
      }
      await page.waitForTimeout(800);
      await gotoLine(page, 13);
      await page.waitForTimeout(500);
      await screenshot(page, "vscode-e2e.png");
      await save(page);
    });

    const implemented = fs.readFileSync(numbers, "utf8");
    report.numbers_py = implemented;
    if (implemented === original) {
      throw new Error("numbers.py was not changed by the implement command");
    }
    await timed("pytest", async () => {
      try {
        const out = execFileSync(PYTHON, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_numbers.py", "-k", "median"],
          { cwd: project, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
        report.pytest = out.trim().split("\n").slice(-1)[0];
        log(`pytest: ${report.pytest}`);
      } catch (err) {
        report.pytest = `${err.stdout ?? ""}${err.stderr ?? ""}`;
        throw new Error(`the project's median tests fail on the implemented file:\n${report.pytest}\n${implemented}`);
      }
    });

    // -- the last result view --------------------------------------------------------------------
    await timed("show_last_result", async () => {
      await runCommand(page, "Notifications: Clear All Notifications");
      await runCommand(page, "Plancode: Show last plan and test results");
      await page.locator(".tab", { hasText: /plancode median/ }).first().waitFor({ timeout: 30000 });
      await page.waitForTimeout(2500);
      await screenshot(page, "vscode-last-result.png");
    });

    // -- the code action on an empty function, Cancel, and Restart server ----------------------
    await timed("code_action_cancel_restart", async () => {
      await openFile(page, "numbers.py");
      await gotoLine(page, 4); // running_mean: still empty
      await page.keyboard.press("Control+.");
      const action = page.locator(".action-widget .monaco-list-row, .context-view .action-label", { hasText: "Implement with plan (verified)" });
      await action.first().waitFor({ state: "visible", timeout: 20000 });
      report.code_action = (await action.first().innerText()).trim();
      log(`code action offered: ${report.code_action}`);
      await page.keyboard.press("Escape");
      // start implementing running_mean from the code action, then press Cancel on its progress
      const before = fs.readFileSync(numbers, "utf8");
      await page.keyboard.press("Control+.");
      await action.first().waitFor({ state: "visible", timeout: 20000 });
      for (let i = 0; i < 4; i++) {
        const focused = await page.locator(".action-widget .monaco-list-row.focused").first()
          .getAttribute("aria-label").catch(() => null);
        if (focused === "Implement with plan (verified)") {
          break;
        }
        await page.keyboard.press("ArrowDown");
      }
      await page.keyboard.press("Enter");
      const cancel = page.locator(".notifications-toasts .notification-toast", { hasText: "plancode: implement" })
        .locator(".monaco-button", { hasText: "Cancel" });
      await cancel.first().waitFor({ state: "visible", timeout: 60000 });
      await page.waitForTimeout(1000);
      await cancel.first().click();
      const cancelled = page.locator(".notifications-toasts .notification-toast", { hasText: "implementing was cancelled" });
      await cancelled.first().waitFor({ state: "visible", timeout: 30000 });
      log("implement started from the code action was cancelled from its notification");
      await page.waitForTimeout(1000);
      if (fs.readFileSync(numbers, "utf8") !== before || (await page.locator(".tab.active.dirty").count()) > 0) {
        throw new Error("the cancelled implement changed numbers.py");
      }
      report.cancel = "ok";
      await runCommand(page, "Plancode: Restart server");
      await waitForStatus(page, /^plancode: (starting|loading)/, 15000, "the restart to begin").catch(() => undefined);
      report.status_after_restart = await waitForStatus(page,
        new RegExp(`^plancode: ready \\(${IMPLEMENT_MODEL.replace(/\./g, "\\.")}\\)`), 120000, "the server after Restart");
    });

    // -- the doctor on a working install ---------------------------------------------------------
    await timed("doctor", async () => {
      await runCommand(page, "Notifications: Clear All Notifications");
      report.doctor = await doctorRun(page, () => runCommand(page, "Plancode: Run doctor (check the install)"),
        /^plancode doctor: (all \d+ checks passed|0 failed, )/,
        /✓ generation \(passed\): loaded .* and generated one token/, "vscode-doctor.png");
      log(`doctor: ${report.doctor.notification}`);
    });

    // -- what the user sees when the server cannot start or the model is missing ---------------
    await timed("error_paths", async () => {
      const cases = [
        { name: "missing serverPath", settings: { "plancode.serverPath": "/nonexistent/bin/plancode" },
          message: /cannot start the language server: plancode\.serverPath is set to/,
          fix: /Fix: point plancode\.serverPath at the `plancode` executable/ },
        { name: "Python without plancode", settings: { "plancode.serverPath": "", "plancode.pythonPath": SYSTEM_PYTHON },
          message: /cannot start the language server: .* does not have plancode installed/,
          fix: /Fix: install it into that interpreter .* -m pip install plancode/ },
        { name: "missing model", settings: { "plancode.model": "/nonexistent/model.gguf" },
          message: /model file \/nonexistent\/model\.gguf does not exist/,
          fix: /does not exist\. Fix: check the path, or use a catalog name/ },
        // what an Intel AMX machine with a native llama.cpp build does (the probe child crashes)
        { name: "llama.cpp crash", settings: { "plancode.serverEnv": { PLANCODE_PROBE_FAULT: "SIGILL" } },
          message: /llama\.cpp crashed with SIGILL/,
          fix: /Fix: rebuild llama-cpp-python without AMX/, doctor: true },
      ];
      report.error_paths = {};
      for (const c of cases) {
        if (c.name === "Python without plancode" && !SYSTEM_PYTHON) {
          log("no system python3 without plancode found: skipping that case");
          continue;
        }
        await runCommand(page, "Notifications: Clear All Notifications");
        await editSettings(page, settingsObject(IMPLEMENT_MODEL, c.settings));
        const toast = page.locator(".notifications-toasts .notification-toast", { hasText: c.message });
        await toast.first().waitFor({ state: "visible", timeout: 60000 });
        const text = (await toast.first().locator(".notification-list-item-message").innerText()).trim();
        const buttons = await toast.first().locator(".monaco-button").allTextContents();
        if (!c.fix.test(text)) {
          throw new Error(`${c.name}: the message does not say how to fix it: ${text}`);
        }
        if (!buttons.some((b) => /Open Settings/.test(b))) {
          throw new Error(`${c.name}: no "Open Settings" button on: ${text} (buttons: ${buttons})`);
        }
        await waitForStatus(page, /could not/, 30000, `${c.name}: the status bar's error`);
        await page.waitForTimeout(1500);
        const stuck = await page.locator(".notifications-toasts .notification-toast", { hasText: "plancode: loading" }).count();
        if (stuck) {
          throw new Error(`${c.name}: a "plancode: loading" progress notification stayed on screen`);
        }
        report.error_paths[c.name] = { message: text, buttons, status: await statusLabel(page) };
        log(`${c.name}: ${text} [${buttons.join(", ")}]`);
        await screenshot(page, `vscode-error-${c.name.replace(/\W+/g, "-").toLowerCase()}.png`);
        if (c.doctor) {
          const button = toast.first().locator(".monaco-button", { hasText: "Run Doctor" });
          if (!(await button.count())) {
            throw new Error(`${c.name}: no "Run Doctor" button on: ${text} (buttons: ${buttons})`);
          }
          report.error_paths[c.name].doctor = await doctorRun(page, () => button.first().click(),
            /^plancode doctor: 1 failed, .* ✗ generation: llama\.cpp crashed with SIGILL.*Fix: rebuild llama-cpp-python without AMX/,
            /✗ generation \(FAILED\): llama\.cpp crashed with SIGILL[\s\S]*Fix: rebuild llama-cpp-python without AMX/,
            "vscode-doctor-sigill.png");
          log(`${c.name}: Run Doctor: ${report.error_paths[c.name].doctor.notification}`);
        }
      }
    });
    report.ok = true;
  } catch (err) {
    if (page) {
      await screenshot(page, "failure.png").catch(() => undefined);
    }
    throw err;
  } finally {
    timings.total = Number(((Date.now() - t0) / 1000).toFixed(1));
    const shots = argValue("--screenshots");
    if (shots && report.screenshots) {
      fs.mkdirSync(shots, { recursive: true });
      for (const f of report.screenshots) {
        fs.copyFileSync(f, path.join(shots, path.basename(f)));
      }
    }
    fs.writeFileSync(path.join(work, "e2e-report.json"), JSON.stringify(report, null, 2));
    await browser?.close().catch(() => undefined);
    try {
      process.kill(-cs.pid, "SIGTERM");
    } catch {
      // already gone
    }
    if (!args.includes("--keep") && report.ok) {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
}

main().then(() => {
  console.log(`E2E OK ${JSON.stringify(timings)}`);
}, (err) => {
  console.error(`E2E FAILED: ${err.stack ?? err}`);
  if (work) {
    console.error(`work folder kept: ${work} (code-server.log, server.log, screenshots, e2e-report.json)`);
    try {
      fs.writeFileSync(path.join(work, "e2e-report.json"), JSON.stringify({ ...report, error: String(err) }, null, 2));
    } catch {
      // ignore
    }
  }
  process.exit(1);
});
