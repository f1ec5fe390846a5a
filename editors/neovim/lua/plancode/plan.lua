--- :PlancodePlan: the last finished result (`plancode.lastResult`) in a floating window: the
--- verdict, the plan, every test's verdict, the candidates tried and the chosen code.
local api = vim.api
local M = {}

local MARK = { passed = '✓', failed = '✗', error = '✗', timeout = '⧗', skipped = '-',
               ['not-run'] = '-' }

local function push_block(out, text, indent)
  for _, l in ipairs(vim.split(text or '', '\n', { plain = true })) do
    out[#out + 1] = indent .. l
  end
end

local function str(v, default)
  return (v == nil or v == vim.NIL) and default or tostring(v)
end

--- The result object (docs/complete-json.md) as markdown lines.
---@param r table
---@return string[]
function M.lines(r)
  local out = {}
  local c = type(r.chosen) == 'table' and r.chosen or nil
  out[#out + 1] = ('# %s: %s'):format(str(r['function'], '?'), str(r.status, '?'))
  out[#out + 1] = ''
  out[#out + 1] = ('%s:%s'):format(str(r.file, '?'), str(r.line, '?'))
  local t = type(r.timings) == 'table' and r.timings or {}
  out[#out + 1] = ('tests: %s, isolation: %s, %s s'):format(str(r.tests_source, '?'),
    str(r.isolation, '?'), type(t.total) == 'number' and ('%.1f'):format(t.total) or '?')
  if c then
    out[#out + 1] = ('chosen: candidate %s (%s), %d passed, %d failed'):format(
      str(c.index, '?'), str(c.strategy, '?'), c.tests_passed or 0, c.tests_failed or 0)
  end
  if r.status == 'passes-tests' and r.not_verified_because == 'in-process' then
    out[#out + 1] = 'passes your tests, but some were checked in-process (in the candidate\'s own process): not called verified'
  elseif r.status == 'passes-tests' then
    out[#out + 1] = 'passes your tests, but they are too few to call it verified'
  end
  if type(r.strength) == 'string' and r.strength ~= '' then
    out[#out + 1] = 'evidence: ' .. r.strength
  end
  if type(r.change) == 'string' and r.change ~= '' then
    out[#out + 1] = 'changed from the first answer: ' .. r.change
  end
  if r.budget_reached == true then
    out[#out + 1] = 'time budget reached: this is the best answer found by then'
  end
  out[#out + 1] = ''
  out[#out + 1] = '## Plan'
  out[#out + 1] = ''
  if c and type(c.plan) == 'string' and c.plan ~= '' then
    push_block(out, c.plan, '')
  else
    out[#out + 1] = c and '(none: the direct answer was chosen)' or '(no candidate)'
  end
  out[#out + 1] = ''
  out[#out + 1] = '## Tests'
  out[#out + 1] = ''
  local verdicts = c and type(c.verdicts) == 'table' and c.verdicts or {}
  if #verdicts == 0 then
    out[#out + 1] = '(no test verdicts)'
  end
  for _, v in ipairs(verdicts) do
    local outcome = str(v.outcome, '?')
    local line = ('%s %-7s %s'):format(MARK[outcome] or '?', outcome, str(v.id, '?'))
    if type(v.seconds) == 'number' then
      line = line .. (' (%.2f s)'):format(v.seconds)
    end
    out[#out + 1] = line
    local msg = str(v.message, '')
    if msg ~= '' and outcome ~= 'passed' then
      out[#out + 1] = '    ' .. msg
    end
  end
  local cands = type(r.candidates) == 'table' and r.candidates or {}
  if #cands > 0 then
    out[#out + 1] = ''
    out[#out + 1] = '## Candidates'
    out[#out + 1] = ''
    for _, k in ipairs(cands) do
      local line = ('#%s %-14s %d passed, %d failed'):format(str(k.index, '?'),
        str(k.strategy, '?'), k.tests_passed or 0, k.tests_failed or 0)
      local err = str(k.error, '')
      if err ~= '' then
        line = line .. ' (' .. err:gsub('\n', ' ') .. ')'
      end
      out[#out + 1] = line
    end
  end
  if c and type(c.code) == 'string' and c.code ~= '' then
    out[#out + 1] = ''
    out[#out + 1] = '## Code'
    out[#out + 1] = ''
    out[#out + 1] = '```python'
    push_block(out, c.code, '')
    out[#out + 1] = '```'
  end
  return out
end

--- Open `lines` in a centred floating window; `q` or <Esc> closes it. Returns the window.
function M.open(lines)
  local o = require('plancode.config').options.plan_window
  local buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].filetype = 'markdown'
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = 'wipe'
  local widest = 0
  for _, l in ipairs(lines) do
    widest = math.max(widest, vim.fn.strdisplaywidth(l))
  end
  local width = math.max(20, math.min(widest + 2, math.floor(vim.o.columns * o.width)))
  local height = math.max(1, math.min(#lines, math.floor((vim.o.lines - 2) * o.height)))
  local win = api.nvim_open_win(buf, true, {
    relative = 'editor',
    width = width,
    height = height,
    row = math.floor((vim.o.lines - height) / 2) - 1,
    col = math.floor((vim.o.columns - width) / 2),
    border = o.border,
    title = ' plancode ',
    title_pos = 'center',
    style = 'minimal',
  })
  vim.wo[win].wrap = true
  for _, key in ipairs({ 'q', '<Esc>' }) do
    vim.keymap.set('n', key, function()
      if api.nvim_win_is_valid(win) then
        api.nvim_win_close(win, true)
      end
    end, { buffer = buf, nowait = true })
  end
  return win
end

--- Ask the server for its last result and show it.
function M.show()
  local client = require('plancode').client(0, true)
  if not client then
    return vim.notify('plancode: the server is not running', vim.log.levels.WARN)
  end
  client:request('workspace/executeCommand', { command = 'plancode.lastResult', arguments = {} },
    function(err, result)
      if err then
        return vim.notify('plancode: ' .. err.message, vim.log.levels.ERROR)
      end
      if type(result) ~= 'table' then
        return vim.notify('plancode: no finished implementation yet (:PlancodeImplement)',
          vim.log.levels.INFO)
      end
      M.open(M.lines(result))
    end)
end

return M
