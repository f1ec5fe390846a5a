--- Options of the plancode plugin: defaults, merging, validation.
---
--- `settings` is handed to the language server untouched (as initializationOptions and as the
--- `plancode` section of workspace/didChangeConfiguration): its keys are those of
--- `plancode config` (model, n_gpu_layers, candidates, test_timeout, plan_comments, ...), and
--- the server validates them and reports a bad value with a message naming the key.
local M = {}

---@class plancode.Options
M.defaults = {
  -- how to start the server; the first element must be an executable
  cmd = { 'plancode', 'serve' },
  filetypes = { 'python' },
  -- the workspace root is the nearest directory holding one of these (tests are searched there)
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', 'pytest.ini', 'tox.ini', '.git' },
  -- server settings, as printed by `plancode config`
  settings = {},
  inline = {
    enabled = true,
    -- 'auto': Neovim's vim.lsp.inline_completion where it exists (0.12+), else the plugin's own
    -- ghost text; 'native' or 'plugin' to force one ('native' falls back when unavailable)
    mode = 'auto',
    debounce_ms = 150, -- plugin mode: wait this long after the last keystroke before asking
    hl_group = 'PlancodeGhost', -- plugin mode: highlight of the ghost text (linked to Comment)
  },
  keymaps = {
    -- insert-mode keys; false disables one. `accept` types its own key when nothing is shown.
    accept = '<Tab>',
    dismiss = '<C-]>',
  },
  -- how $/progress is shown: 'echo' (command line), 'notify' (vim.notify), or false
  progress = 'echo',
  plan_window = { border = 'rounded', width = 0.8, height = 0.8 },
}

M.options = vim.deepcopy(M.defaults)

local function check(cond, msg)
  if not cond then
    error('plancode.setup: ' .. msg, 3)
  end
end

---@param opts table|nil
---@return plancode.Options
function M.set(opts)
  opts = opts or {}
  check(type(opts) == 'table', 'options must be a table')
  local o = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- lists replace, they do not merge by index
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts[key] ~= nil then
      o[key] = opts[key]
    end
  end
  check(type(o.cmd) == 'table' and type(o.cmd[1]) == 'string', 'cmd must be a list of strings')
  check(type(o.settings) == 'table', 'settings must be a table')
  check(vim.tbl_contains({ 'auto', 'native', 'plugin' }, o.inline.mode),
    "inline.mode must be 'auto', 'native' or 'plugin'")
  check(type(o.inline.debounce_ms) == 'number' and o.inline.debounce_ms >= 0,
    'inline.debounce_ms must be a number >= 0')
  check(vim.tbl_contains({ 'echo', 'notify', false }, o.progress),
    "progress must be 'echo', 'notify' or false")
  M.options = o
  return o
end

--- The command line for `plancode` subcommands: `cmd` up to (not including) "serve".
---@return string[]
function M.cli()
  local cmd = M.options.cmd
  local out = {}
  for _, part in ipairs(cmd) do
    if part == 'serve' then
      return out
    end
    out[#out + 1] = part
  end
  return { cmd[1] }
end

--- The model the server will load: `settings.model`, else $PLANCODE_MODEL, else the default.
function M.model()
  return M.options.settings.model or vim.env.PLANCODE_MODEL or 'qwen2.5-coder-0.5b'
end

return M
