--- $/progress of the plancode server (model loading, implement jobs) shown in the command line
--- or with vim.notify, kept in a short history, and offered as a statusline component.
local M = {}

---@type {kind: string, message: string}[]
M.history = {}
---@type table<string|integer, string> progress token -> latest message, while running
M.active = {}
local MAX = 100

local function format(value)
  local title = value.title or 'plancode'
  local text = value.message and (title .. ': ' .. value.message) or title
  if value.kind == 'report' and (value.percentage or 0) > 0 then
    text = ('%s (%d%%)'):format(text, value.percentage)
  end
  return text
end

local function show(text, kind, how)
  if how == 'notify' then
    vim.notify(text, vim.log.levels.INFO)
  elseif how == 'echo' then
    -- one line that fits: a longer echo would stop the editor with a hit-enter prompt
    local width = math.max(vim.v.echospace, 20)
    if vim.fn.strdisplaywidth(text) > width then
      text = vim.fn.strcharpart(text, 0, width - 1) .. '…'
    end
    vim.api.nvim_echo({ { text } }, kind == 'end', {})
  end
end

--- Handle one LspProgress event (exposed for tests and for users with their own autocmds).
function M.on_progress(ev, how)
  local client = vim.lsp.get_client_by_id(ev.data.client_id)
  local params = ev.data.params or {}
  local value = params.value
  if not client or client.name ~= 'plancode' or type(value) ~= 'table' then
    return
  end
  local text = format(value)
  if value.kind == 'end' then
    M.active[params.token] = nil
  else
    M.active[params.token] = text
    M.latest = params.token
  end
  table.insert(M.history, { kind = value.kind, message = text })
  if #M.history > MAX then
    table.remove(M.history, 1)
  end
  if value.kind == 'end' and value.title == 'plancode: implement'
    and next(require('plancode.implement').running) then
    return -- :PlancodeImplement reports the result itself; two messages at once would stop
    -- the editor with a hit-enter prompt
  end
  show(text, value.kind, how)
end

--- The progress of the latest running job, or ''.
function M.statusline()
  local text = M.active[M.latest]
  if not text then
    text = select(2, next(M.active))
  end
  return text or ''
end

---@param o plancode.Options
function M.setup(o)
  local group = vim.api.nvim_create_augroup('plancode.progress', { clear = true })
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    callback = function(ev)
      M.on_progress(ev, o.progress)
    end,
  })
end

return M
