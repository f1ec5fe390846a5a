--- :checkhealth plancode
local M = {}

local function run(cmd, timeout_ms)
  local ok, proc = pcall(vim.system, cmd, { text = true })
  if not ok then
    return { code = -1, stdout = '', stderr = tostring(proc) }
  end
  return proc:wait(timeout_ms)
end

local function first_line(s)
  return vim.trim((s or ''):match('[^\n]*') or '')
end

local function check_neovim(h)
  h.start('plancode: Neovim')
  local v = tostring(vim.version())
  if vim.fn.has('nvim-0.11') == 1 then
    h.ok('Neovim ' .. v)
  else
    h.error('Neovim ' .. v .. ': plancode needs 0.11+ (vim.lsp.config, vim.lsp.enable)')
  end
  local ghost = require('plancode.ghost')
  if not require('plancode').did_setup then
    h.warn("setup() has not been called", { "require('plancode').setup({})" })
  elseif ghost.mode == 'native' then
    h.ok('ghost text: vim.lsp.inline_completion (native)')
  elseif ghost.mode == 'plugin' then
    h.ok("ghost text: the plugin's own (textDocument/inlineCompletion, extmarks)")
  else
    h.info('ghost text: off (inline.enabled = false)')
  end
end

local function check_executable(h, config)
  h.start('plancode: executable')
  local exe = config.options.cmd[1]
  if vim.fn.executable(exe) ~= 1 then
    h.error(('`%s` (cmd[1]) is not an executable'):format(exe), {
      'pip install plancode (in the environment whose bin/ is on $PATH)',
      "or setup({ cmd = { '/path/to/venv/bin/plancode', 'serve' } })",
    })
    return false
  end
  local cli = config.cli()
  local version = run(vim.list_extend(vim.deepcopy(cli), { '--version' }), 20000)
  h.ok(('executable found: %s (%s)'):format(vim.fn.exepath(exe),
    version.code == 0 and first_line(version.stdout) or 'version unknown'))
  return true
end

-- `plancode doctor --json`: the same checks, findings and fixes as on the command line (the
-- one-token generation runs in a child process of the doctor, so this cannot crash Neovim)
local function check_doctor(h, config)
  h.start('plancode: doctor')
  local cmd = vim.list_extend(vim.deepcopy(config.cli()),
    { 'doctor', '--json', '--model', config.model(), '--workspace', vim.fn.getcwd() })
  local res = run(cmd, 300000)
  local ok, report = pcall(vim.json.decode, res.stdout or '')
  if not ok or type(report) ~= 'table' or type(report.checks) ~= 'table' then
    h.error(('`plancode doctor --json` gave no report (exit %s): %s'):format(
      tostring(res.code), first_line(res.stderr)), { table.concat(cmd, ' ') })
    return
  end
  for _, c in ipairs(report.checks) do
    local text = ('%s: %s'):format(c.title, c.finding)
    local advice = (c.fix and c.fix ~= '') and { c.fix } or nil
    if c.status == 'ok' then
      h.ok(text)
    elseif c.status == 'warn' then
      h.warn(text, advice)
    else
      h.error(text, advice)
    end
  end
end

local function check_server(h, config)
  h.start('plancode: language server')
  local clients = vim.lsp.get_clients({ name = 'plancode' })
  if #clients == 0 then
    h.info(('not running: it starts when a buffer of type %s opens'):format(
      table.concat(config.options.filetypes, ', ')))
    return
  end
  for _, client in ipairs(clients) do
    local bufs = vim.tbl_keys(client.attached_buffers or {})
    h.ok(('running (client %d, root %s), attached to %d buffer(s)'):format(
      client.id, client.root_dir or '?', #bufs))
    local reply = client:request_sync('plancode/stats', vim.empty_dict(), 3000)
    local stats = reply and reply.result
    if type(stats) ~= 'table' then
      h.warn('no answer to plancode/stats within 3 s')
    elseif stats.model_state == 'ready' then
      h.ok('model loaded')
    elseif stats.model_state == 'error' then
      h.error('the model failed to load: see :messages or the server log')
    else
      h.info('model state: ' .. tostring(stats.model_state))
    end
  end
end

function M.check()
  local h = vim.health
  local config = require('plancode.config')
  check_neovim(h)
  if check_executable(h, config) then
    check_doctor(h, config)
    check_server(h, config)
  end
end

return M
