--- :PlancodeImplement and :PlancodeCancel.
---
--- The server finds the function around the cursor line. The plugin asks for its code action
--- ("Implement with plan (verified)") and runs that action's command, `plancode.implement`;
--- the server reports $/progress (see progress.lua) and applies the chosen code with
--- workspace/applyEdit, which Neovim's client performs on the buffer. The buffer is not saved.
local api = vim.api
local M = {}

M.COMMAND = 'plancode.implement'
M.TITLE = 'Implement with plan (verified)'

---@type table<integer, {client_id: integer, id: integer}> bufnr -> running request
M.running = {}
---@type table? the last result object received (docs/complete-json.md plus `applied`)
M.last = nil
---@type table<string, table> uri -> params of the last `plancode/answer` (an answer offered
--- while the search goes on), until the job ends
M.offered = {}
M.last_offered = nil ---@type string? uri of the latest offer
M.ACCEPT = 'plancode.acceptAnswer'

local function notify(msg, level)
  vim.notify('plancode: ' .. msg, level or vim.log.levels.INFO)
end

--- The status in honest words: 'passes-tests' is not called verified, and says why.
local function status_text(r)
  if r.status == 'passes-tests' and r.not_verified_because == 'in-process' then
    return 'passes your tests (checked in-process: not called verified)'
  end
  if r.status == 'passes-tests' then
    return 'passes your tests (too few to call it verified)'
  end
  return r.status or '?'
end

--- One line for a finished job.
function M.summary(r)
  local c = r.chosen
  if type(c) ~= 'table' then
    return ('%s: no usable candidate (%s)'):format(r['function'] or '?', r.status or '?')
  end
  local total = (c.tests_passed or 0) + (c.tests_failed or 0)
  return ('%s %s, %d/%d tests pass (%s): %s; :PlancodePlan for details'):format(
    r['function'], status_text(r), c.tests_passed or 0, total, c.strategy or '?',
    r.applied and 'applied' or 'nothing applied')
end

--- How strong an answer is, in a few words: the server's `strength`, else its tests.
local function strength(r)
  if type(r.strength) == 'string' and r.strength ~= '' then
    return r.strength
  end
  local c = type(r.chosen) == 'table' and r.chosen or {}
  return ('%s, %d/%d tests pass'):format(status_text(r), c.tests_passed or 0,
    (c.tests_passed or 0) + (c.tests_failed or 0))
end

--- The `plancode/answer` handler: the first candidate that passes the user's (weak) tests,
--- offered while the search goes on. Nothing is applied until :PlancodeAccept or the end.
function M.on_answer(_, params, _)
  if type(params) ~= 'table' or type(params.uri) ~= 'string' then
    return vim.NIL
  end
  M.offered[params.uri] = params
  M.last_offered = params.uri
  local r = type(params.result) == 'table' and params.result or {}
  notify(('first answer for %s: %s (:PlancodeAccept to take it)'):format(
    params['function'] or r['function'] or '?', strength(r)))
  return vim.NIL
end

--- :PlancodeAccept: take the answer offered for the current buffer (else the latest offer);
--- the running :PlancodeImplement then ends with it and applies it.
function M.accept()
  local uri = vim.uri_from_bufnr(api.nvim_get_current_buf())
  if not M.offered[uri] then
    uri = M.last_offered
  end
  if not uri or not M.offered[uri] then
    return notify('no answer is on offer (it comes while :PlancodeImplement runs)',
      vim.log.levels.WARN)
  end
  local client = require('plancode').client(vim.uri_to_bufnr(uri), true)
  if not client then
    return notify('the server is not running', vim.log.levels.ERROR)
  end
  client:request('workspace/executeCommand', { command = M.ACCEPT, arguments = { uri } },
    function(err, res)
      if err then
        return notify(err.message, vim.log.levels.ERROR)
      end
      if type(res) ~= 'table' or not res.accepted then
        return notify('could not accept: ' .. (type(res) == 'table' and res.why or
          'the run has ended'), vim.log.levels.WARN)
      end
      notify(('accepted the first answer for %s'):format(res['function'] or '?'))
    end)
end

local function on_done(bufnr, err, result)
  M.running[bufnr] = nil
  M.offered[vim.uri_from_bufnr(bufnr)] = nil
  if err then
    return notify(err.message, vim.log.levels.ERROR)
  end
  if type(result) ~= 'table' then
    return notify('the server returned no result', vim.log.levels.ERROR)
  end
  M.last = result
  if result.status == 'failing' then
    return -- the server has said so with window/showMessage
  end
  local good = result.applied or result.status == 'verified' or result.status == 'passes-tests'
  notify(M.summary(result), good and vim.log.levels.INFO or vim.log.levels.WARN)
end

--- Run a `plancode.implement` command (as given by the code action).
local function run(client, bufnr, command)
  if M.running[bufnr] then
    return notify('already implementing in this buffer (:PlancodeCancel stops it)',
      vim.log.levels.WARN)
  end
  local id
  local ok, req_id = client:request('workspace/executeCommand',
    { command = command.command, arguments = command.arguments },
    function(err, result)
      local job = M.running[bufnr]
      if job and job.id == id then -- not cancelled meanwhile
        on_done(bufnr, err, result)
      end
    end, bufnr)
  id = req_id
  if ok and id then
    M.running[bufnr] = { client_id = client.id, id = id }
  else
    notify('could not reach the server', vim.log.levels.ERROR)
  end
end

local function find_command(actions)
  for _, a in ipairs(actions or {}) do
    local c = a.command
    if type(c) == 'table' and c.command == M.COMMAND then
      return c -- a CodeAction carrying a Command
    elseif c == M.COMMAND then
      return a -- a bare Command
    end
  end
end

--- Implement the function at the cursor. `opts.force` (:PlancodeImplement!) also rewrites a
--- function whose body is already complete (the server offers no code action for those).
---@param opts? {force?: boolean, bufnr?: integer, line?: integer}
function M.implement(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  local client = require('plancode').client(bufnr)
  if not client then
    return notify('the server is not attached to this buffer (:checkhealth plancode)',
      vim.log.levels.ERROR)
  end
  local name = api.nvim_buf_get_name(bufnr)
  if name == '' or not vim.uv.fs_stat(name) then
    return notify('write the file first: its tests are found and run on disk',
      vim.log.levels.ERROR)
  end
  local line = opts.line or (api.nvim_win_get_cursor(0)[1] - 1)
  local uri = vim.uri_from_bufnr(bufnr)
  local params = {
    textDocument = { uri = uri },
    range = { start = { line = line, character = 0 }, ['end'] = { line = line, character = 0 } },
    context = { diagnostics = {} },
  }
  client:request('textDocument/codeAction', params, function(err, actions)
    if err then
      return notify(err.message, vim.log.levels.ERROR)
    end
    local command = find_command(actions)
    if not command then
      if not opts.force then
        return notify(('nothing to implement at line %d: the cursor is not in a function, or '
          .. 'its body is complete (:PlancodeImplement! rewrites it)'):format(line + 1),
          vim.log.levels.WARN)
      end
      command = { title = M.TITLE, command = M.COMMAND, arguments = { uri, line } }
    end
    run(client, bufnr, command)
  end, bufnr)
end

--- Cancel the running implementation of the current buffer (else of any buffer).
function M.cancel()
  local bufnr = api.nvim_get_current_buf()
  local job = M.running[bufnr]
  if not job then
    bufnr, job = next(M.running)
  end
  if not job then
    return notify('nothing is running')
  end
  -- the server answers with RequestCancelled, which Neovim's client does not pass on
  M.running[bufnr] = nil
  local client = vim.lsp.get_client_by_id(job.client_id)
  if client then
    client:cancel_request(job.id)
  end
  notify('implement cancelled')
end

return M
