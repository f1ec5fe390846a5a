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
  h.start('plancode: executable and model')
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
  local model = config.model()
  local res = run(vim.list_extend(vim.deepcopy(cli), { 'model', 'path', model }), 30000)
  local path = first_line(res.stdout)
  if res.code ~= 0 or path == '' then
    h.error(('model %s: %s'):format(model, vim.trim(res.stderr or '')),
      { 'plancode model list', 'plancode model fetch ' .. model })
  elseif not vim.uv.fs_stat(path) then
    h.warn(('model %s is not cached (%s)'):format(model, path),
      { 'plancode model fetch ' .. model })
  else
    h.ok(('model %s cached: %s (%.0f MB)'):format(model, path,
      vim.uv.fs_stat(path).size / 1e6))
  end
  return true
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
    check_server(h, config)
  end
end

return M
