--- Ghost text while typing.
---
--- 'native' mode uses Neovim's vim.lsp.inline_completion (0.12+). 'plugin' mode (0.11, or when
--- forced) asks textDocument/inlineCompletion itself: debounced after each keystroke, the
--- previous request cancelled, the suggestion drawn with extmarks (first line inline at the
--- cursor, or overlaid where it replaces text; further lines as virt_lines). Typing the start of
--- the suggestion keeps the rest on screen; leaving insert mode or moving elsewhere clears it.
local api = vim.api
local M = {}

M.ns = api.nvim_create_namespace('plancode.ghost') -- what is drawn
local track = api.nvim_create_namespace('plancode.ghost.range') -- the range it replaces
local METHOD = 'textDocument/inlineCompletion'

---@type table<integer, {timer?: uv.uv_timer_t, request?: {client_id: integer, id: integer}, item?: table}>
local state = {}
local opts ---@type plancode.Options

function M.native_available()
  local ic = vim.lsp.inline_completion
  return type(ic) == 'table' and type(ic.enable) == 'function' and type(ic.get) == 'function'
end

--- 'native', 'plugin' or 'off'
M.mode = 'off'

local function client_of(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = 'plancode' })[1]
end

local function buf_state(bufnr)
  state[bufnr] = state[bufnr] or {}
  return state[bufnr]
end

local function cancel_request(s)
  if s.request then
    local client = vim.lsp.get_client_by_id(s.request.client_id)
    if client then
      client:cancel_request(s.request.id)
    end
    s.request = nil
  end
end

--- Forget the suggestion of `bufnr` and stop what is pending.
function M.clear(bufnr)
  local s = state[bufnr]
  if not s then
    return
  end
  if s.timer then
    s.timer:stop()
  end
  cancel_request(s)
  s.item = nil
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
    api.nvim_buf_clear_namespace(bufnr, track, 0, -1)
  end
end

local function byte_col(bufnr, pos, encoding)
  local line = api.nvim_buf_get_lines(bufnr, pos.line, pos.line + 1, false)[1] or ''
  if encoding == 'utf-8' then
    return math.min(pos.character, #line)
  end
  local ok, col = pcall(vim.str_byteindex, line, encoding, pos.character, false)
  return ok and math.min(col, #line) or #line
end

local function cursor0(win)
  local c = api.nvim_win_get_cursor(win)
  return c[1] - 1, c[2]
end

--- What to draw for the suggestion, or nil when it no longer fits the text:
--- {rest, at (the column to draw at), row, line, srow, scol, erow, ecol (the range it replaces,
--- tracked through edits)}. Usually the suggestion starts with what lies between the range's
--- start and the cursor (typing its start keeps the rest); a suggestion replacing a line whose
--- text is still as it was (a verified body for `pass`) is drawn over that line instead.
local function visible(bufnr)
  local s = state[bufnr]
  local item = s and s.item
  if not item or api.nvim_get_current_buf() ~= bufnr then
    return nil
  end
  local row, col = cursor0(0)
  local sm = api.nvim_buf_get_extmark_by_id(bufnr, track, item.start_mark, {})
  local em = api.nvim_buf_get_extmark_by_id(bufnr, track, item.end_mark, {})
  if not sm[1] or not em[1] or sm[1] ~= row or col < sm[2] then
    return nil
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local v = { line = line, row = row, srow = sm[1], scol = sm[2], erow = em[1], ecol = em[2] }
  local typed = line:sub(sm[2] + 1, col)
  if item.text:sub(1, #typed) == typed and #item.text > #typed then
    v.rest, v.at = item.text:sub(#typed + 1), col
    return v
  end
  if item.replaced and em[1] == row and col <= em[2]
    and line:sub(sm[2] + 1, em[2]) == item.replaced then
    v.rest, v.at = item.text, sm[2]
    return v
  end
end

local function render(bufnr)
  api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local v = visible(bufnr)
  if not v then
    if state[bufnr] and state[bufnr].item then
      M.clear(bufnr)
    end
    return
  end
  local hl = opts.inline.hl_group
  local lines = vim.split(v.rest, '\n', { plain = true })
  local first = lines[1]
  local mark = { hl_mode = 'combine', virt_text_pos = 'inline' }
  -- text after where it is drawn that the suggestion replaces: draw over it, not beside it
  local tail = v.erow == v.row and v.line:sub(v.at + 1, math.max(v.ecol, v.at)) or ''
  if tail ~= '' then
    mark.virt_text_pos = 'overlay'
    local pad = vim.fn.strdisplaywidth(tail) - vim.fn.strdisplaywidth(first)
    first = first .. string.rep(' ', math.max(pad, 0))
  end
  if first ~= '' then
    mark.virt_text = { { first, hl } }
  end
  if #lines > 1 then
    mark.virt_lines = vim.tbl_map(function(l)
      return { { l, hl } }
    end, { unpack(lines, 2) })
  end
  if mark.virt_text or mark.virt_lines then
    api.nvim_buf_set_extmark(bufnr, M.ns, v.row, v.at, mark)
  end
end

local function on_result(bufnr, client, tick, row, col, result)
  local items = result and (result.items or result) or {}
  local item = items[1]
  if not item or api.nvim_buf_get_changedtick(bufnr) ~= tick
    or api.nvim_get_current_buf() ~= bufnr or not api.nvim_get_mode().mode:match('^i') then
    return
  end
  local crow, ccol = cursor0(0)
  if crow ~= row or ccol ~= col then
    return
  end
  local text = item.insertText
  if type(text) == 'table' then
    text = text.value -- a snippet: shown and inserted as plain text
  end
  if type(text) ~= 'string' or text == '' then
    return
  end
  local srow, scol, erow, ecol = row, col, row, col
  if item.range then
    local enc = client.offset_encoding
    srow, erow = item.range.start.line, item.range['end'].line
    scol, ecol = byte_col(bufnr, item.range.start, enc), byte_col(bufnr, item.range['end'], enc)
  end
  api.nvim_buf_clear_namespace(bufnr, track, 0, -1)
  buf_state(bufnr).item = {
    text = text,
    -- the text of a one-line range it replaces, as it was when the answer came
    replaced = srow == erow and ecol > scol
      and api.nvim_buf_get_lines(bufnr, srow, srow + 1, false)[1]:sub(scol + 1, ecol) or nil,
    start_mark = api.nvim_buf_set_extmark(bufnr, track, srow, scol, { right_gravity = false }),
    end_mark = api.nvim_buf_set_extmark(bufnr, track, erow, ecol, { right_gravity = true }),
  }
  render(bufnr)
end

--- Ask the server now (the previous request of this buffer is cancelled).
function M.request(bufnr)
  local s = buf_state(bufnr)
  cancel_request(s)
  local client = client_of(bufnr)
  if not client or api.nvim_get_current_buf() ~= bufnr
    or not api.nvim_get_mode().mode:match('^i') then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = 2 } -- Automatic
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local row, col = cursor0(0)
  local id
  local ok, req_id = client:request(METHOD, params, function(err, result)
    if not s.request or s.request.id ~= id then
      return -- superseded
    end
    s.request = nil
    if not err then
      on_result(bufnr, client, tick, row, col, result)
    end
  end, bufnr)
  if ok and req_id then
    id = req_id
    s.request = { client_id = client.id, id = req_id }
  end
end

local function schedule(bufnr)
  local s = buf_state(bufnr)
  cancel_request(s)
  s.timer = s.timer or vim.uv.new_timer()
  s.timer:stop()
  s.timer:start(opts.inline.debounce_ms, 0, vim.schedule_wrap(function()
    if api.nvim_buf_is_valid(bufnr) then
      M.request(bufnr)
    end
  end))
end

local function attach_plugin(bufnr)
  local group = api.nvim_create_augroup('plancode.ghost.' .. bufnr, { clear = true })
  local function au(events, fn)
    api.nvim_create_autocmd(events, { group = group, buffer = bufnr, callback = fn })
  end
  au({ 'InsertEnter', 'TextChangedI', 'CursorMovedI' }, function()
    render(bufnr) -- keeps the rest of the suggestion when its start was typed
    schedule(bufnr)
  end)
  au({ 'InsertLeave', 'BufLeave' }, function()
    M.clear(bufnr)
  end)
  au('BufWipeout', function()
    M.detach(bufnr)
  end)
end

--- Stop ghost text in `bufnr` (plugin mode).
function M.detach(bufnr)
  M.clear(bufnr)
  local s = state[bufnr]
  if s and s.timer then
    s.timer:stop()
    s.timer:close()
  end
  state[bufnr] = nil
  pcall(api.nvim_del_augroup_by_name, 'plancode.ghost.' .. bufnr)
end

--- The suggestion shown at the cursor in plugin mode (for statuslines and tests), or nil.
function M.current(bufnr)
  local v = visible(bufnr or api.nvim_get_current_buf())
  return v and v.rest or nil
end

--- Rows and columns (0-based, end exclusive) of a vim.Range, whose shape has changed during
--- 0.12 development.
local function range_bounds(r)
  local s, e = r.start, r.end_ or r['end']
  if type(s) == 'table' and type(e) == 'table' and s.row then
    return s.row, s.col, e.row, e.col
  elseif r.start_row then
    return r.start_row, r.start_col, r.end_row, r.end_col
  end
end

--- Accept a native item like Neovim does, but over the characters typed since the request
--- too: Neovim builds without the fix for neovim#36529 insert the item at the range the
--- server answered with, so typing `lo` ahead of `lower()` and accepting gave `lower()lo`.
local function accept_native(bufnr, item)
  local text = item.insert_text
  if type(text) ~= 'string' then
    vim.snippet.expand(text.value)
  else
    local sr, sc, er, ec
    if item.range then
      sr, sc, er, ec = range_bounds(item.range)
    end
    if not sr then
      api.nvim_paste(text, false, -1)
    else
      local row, col = cursor0(0)
      if row == sr and row == er and col > ec then
        local typed = (api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''):sub(sc + 1, col)
        if text:sub(1, #typed) == typed then
          ec = col
        end
      end
      local lines = vim.split(text, '\n', { plain = true })
      api.nvim_buf_set_text(bufnr, sr, sc, er, ec, lines)
      local last = #lines == 1 and sc + #lines[1] or #lines[#lines]
      api.nvim_win_set_cursor(0, { sr + #lines, last })
    end
  end
  if item.command then
    local client = vim.lsp.get_client_by_id(item.client_id)
    if client then
      client:exec_cmd(item.command, { bufnr = bufnr })
    end
  end
end

--- Accept the suggestion: true when there was one (it is inserted on the next tick, so this
--- can be called from an <expr> mapping).
function M.accept(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if M.mode == 'native' then
    return vim.lsp.inline_completion.get({ bufnr = bufnr, on_accept = function(item)
      accept_native(bufnr, item)
    end })
  end
  local v = visible(bufnr)
  if not v then
    return false
  end
  local text = state[bufnr].item.text
  vim.schedule(function()
    M.clear(bufnr)
    if not api.nvim_buf_is_valid(bufnr) then
      return
    end
    local lines = vim.split(text, '\n', { plain = true })
    local row, col = cursor0(0)
    local ecol = v.erow == row and math.max(v.ecol, col) or v.ecol
    api.nvim_buf_set_text(bufnr, v.srow, v.scol, v.erow, ecol, lines)
    local last = #lines == 1 and v.scol + #lines[1] or #lines[#lines]
    api.nvim_win_set_cursor(0, { v.srow + #lines, last })
  end)
  return true
end

--- Drop the suggestion: true when there was one.
function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if M.mode == 'native' then
    -- get() with a no-op accept handler drops the current item
    return vim.lsp.inline_completion.get({ bufnr = bufnr, on_accept = function() end })
  end
  local had = visible(bufnr) ~= nil
  M.clear(bufnr)
  return had
end

local function map(bufnr, lhs, fn, desc)
  if not lhs then
    return
  end
  vim.keymap.set('i', lhs, function()
    if fn(bufnr) then
      return ''
    end
    return lhs
  end, { buffer = bufnr, expr = true, desc = desc })
end

local CURSOR_REST_MS = 250 -- the cursor counts as resting after this long without moving

--- Where the cursor rests goes to the server as plancode/cursor: it computes the suggestion
--- there while idle, so the first keystroke after opening a file or jumping elsewhere does not
--- wait for a cold prompt.
local function watch_cursor(bufnr)
  local group = api.nvim_create_augroup('plancode.cursor.' .. bufnr, { clear = true })
  local timer = (vim.uv or vim.loop).new_timer()
  api.nvim_create_autocmd({ 'CursorMoved', 'BufEnter', 'InsertEnter' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      timer:stop()
      timer:start(CURSOR_REST_MS, 0, vim.schedule_wrap(function()
        if not api.nvim_buf_is_valid(bufnr) or api.nvim_get_current_buf() ~= bufnr then
          return
        end
        local client = client_of(bufnr)
        if client then
          client:notify('plancode/cursor',
            vim.lsp.util.make_position_params(0, client.offset_encoding))
        end
      end))
    end,
  })
  api.nvim_create_autocmd({ 'BufWipeout', 'LspDetach' }, {
    group = group,
    buffer = bufnr,
    once = true,
    callback = function()
      timer:stop()
      if not timer:is_closing() then
        timer:close()
      end
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
end

--- Called on LspAttach of a plancode client.
function M.attach(bufnr)
  if M.mode ~= 'off' then
    watch_cursor(bufnr)
  end
  if M.mode == 'native' then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  elseif M.mode == 'plugin' then
    attach_plugin(bufnr)
  else
    return
  end
  map(bufnr, opts.keymaps.accept, M.accept, 'plancode: accept the suggestion')
  map(bufnr, opts.keymaps.dismiss, M.dismiss, 'plancode: dismiss the suggestion')
end

---@param o plancode.Options
function M.setup(o)
  opts = o
  if not o.inline.enabled then
    M.mode = 'off'
  elseif o.inline.mode ~= 'plugin' and M.native_available() then
    M.mode = 'native'
  else
    if o.inline.mode == 'native' then
      vim.notify_once('plancode: vim.lsp.inline_completion needs Neovim 0.12; using the '
        .. "plugin's ghost text", vim.log.levels.INFO)
    end
    M.mode = 'plugin'
  end
  local group = api.nvim_create_augroup('plancode.ghost', { clear = true })
  api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == 'plancode' then
        M.attach(ev.buf)
      end
    end,
  })
  api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == 'plancode' and M.mode == 'plugin' then
        M.detach(ev.buf)
      end
    end,
  })
end

return M
