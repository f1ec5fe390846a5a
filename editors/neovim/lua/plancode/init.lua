--- plancode for Neovim 0.11+: starts `plancode serve` with the native LSP client
--- (vim.lsp.config / vim.lsp.enable) and adds ghost text, :PlancodeImplement, :PlancodePlan.
local M = {}

M.name = 'plancode'

--- The plancode client attached to `bufnr` (0: current), else any running plancode client.
---@param bufnr? integer
---@param any? boolean also accept a client that is not attached to the buffer
---@return vim.lsp.Client?
function M.client(bufnr, any)
  bufnr = bufnr and bufnr ~= 0 and bufnr or vim.api.nvim_get_current_buf()
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = M.name })[1]
  if client or not any then
    return client
  end
  return vim.lsp.get_clients({ name = M.name })[1]
end

local function empty_to_nil(t)
  return next(t) ~= nil and t or nil
end

local function commands()
  local cmd = vim.api.nvim_create_user_command
  cmd('PlancodeImplement', function(a)
    require('plancode.implement').implement({ force = a.bang })
  end, { bang = true, desc = 'plancode: implement the function at the cursor, verified by its tests' })
  cmd('PlancodeAccept', function()
    require('plancode.implement').accept()
  end, { desc = 'plancode: take the first answer offered while :PlancodeImplement runs' })
  cmd('PlancodeCancel', function()
    require('plancode.implement').cancel()
  end, { desc = 'plancode: cancel the running implementation' })
  cmd('PlancodePlan', function()
    require('plancode.plan').show()
  end, { desc = 'plancode: show the last plan and per-test verdicts' })
  cmd('PlancodeStats', function()
    local client = M.client(0, true)
    if not client then
      return vim.notify('plancode: the server is not running', vim.log.levels.WARN)
    end
    client:request('plancode/stats', vim.empty_dict(), function(err, res)
      vim.notify(err and ('plancode: ' .. err.message) or vim.inspect(res))
    end)
  end, { desc = 'plancode: server counters and model state' })
end

---@param opts? plancode.Options
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('plancode: Neovim 0.11 or newer is needed (vim.lsp.config, vim.lsp.enable)',
      vim.log.levels.ERROR)
    return
  end
  local o = require('plancode.config').set(opts)
  vim.api.nvim_set_hl(0, 'PlancodeGhost', { link = 'Comment', default = true })
  vim.lsp.config(M.name, {
    cmd = o.cmd,
    filetypes = o.filetypes,
    root_markers = o.root_markers,
    -- an empty table would travel as a JSON list: leave it out instead
    init_options = empty_to_nil(vim.deepcopy(o.settings)),
    settings = next(o.settings) and { plancode = vim.deepcopy(o.settings) } or nil,
    handlers = {
      ['plancode/answer'] = function(...)
        return require('plancode.implement').on_answer(...)
      end,
    },
  })
  require('plancode.ghost').setup(o)
  require('plancode.progress').setup(o)
  commands()
  vim.lsp.enable(M.name)
  M.did_setup = true
end

--- Change server settings at run time (sent as workspace/didChangeConfiguration; a model
--- setting makes the server reload the model).
---@param settings table
function M.configure(settings)
  local config = require('plancode.config')
  local all = vim.tbl_extend('force', config.options.settings, settings)
  config.options.settings = all
  -- servers started later get them at initialize
  vim.lsp.config(M.name, { init_options = vim.deepcopy(all), settings = { plancode = all } })
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client.settings = { plancode = vim.deepcopy(all) }
    client:notify('workspace/didChangeConfiguration', { settings = { plancode = settings } })
  end
end

--- A statusline component: the running job's progress, or ''.
function M.statusline()
  return require('plancode.progress').statusline()
end

return M
