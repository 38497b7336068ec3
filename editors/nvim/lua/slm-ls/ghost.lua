-- The extmark backend: this plugin's own ghost-text renderer for Neovim 0.10/0.11 (and for
-- 0.12 with `ghost_text.backend = 'extmark'`).
--
-- Asks `textDocument/inlineCompletion` after a short pause in typing, passing a work-done
-- token so the server streams the text as it is generated (`$/progress` reports, seen here
-- through the `LspProgress` autocmd), and draws it with extmarks: inline virtual text for the
-- first line, virtual lines for the rest. Cleared on cursor moves, on leaving insert mode,
-- and replaced on every edit; typing the suggestion's next characters keeps the rest shown.
local util = require('slm-ls.util')
local config = require('slm-ls.config')

local api = vim.api
local M = {}

M.ns = api.nvim_create_namespace('slm-ls.ghost')

--- Per-buffer state.
---@class SlmGhostState
---@field client_id integer
---@field group integer
---@field timer? uv.uv_timer_t
---@field req_id? integer
---@field pending? {token: string, row: integer, col: integer, tick: integer, client_id: integer}
---@field items? table[]   InlineCompletionItem[] of the last answer
---@field index integer
---@field text? string      the text shown (what accept inserts)
---@field anchor? {row: integer, col: integer}
---@field tick? integer     b:changedtick the shown text belongs to
---@field streamed boolean  the shown text is a partial (still generating)
local state = {}

--- Counters for tests and :SlmStats.
M.counters = { requests = 0, answers = 0, stream_updates = 0, accepted = 0, partial_accepts = 0, errors = 0 }
M.last_error = nil

local seq = 0
local enabled = true

local function cursor()
  local c = api.nvim_win_get_cursor(0)
  return c[1] - 1, c[2]
end

local function in_insert()
  local m = api.nvim_get_mode().mode
  return m:sub(1, 1) == 'i' or m:sub(1, 1) == 'R'
end

local function stop_timer(st)
  if st.timer then
    st.timer:stop()
    if not st.timer:is_closing() then
      st.timer:close()
    end
    st.timer = nil
  end
end

local function cancel(bufnr)
  local st = state[bufnr]
  if not st then
    return
  end
  stop_timer(st)
  if st.req_id and st.pending then
    local client = vim.lsp.get_client_by_id(st.pending.client_id)
    if client then
      pcall(util.cancel, client, st.req_id)
    end
  end
  st.req_id, st.pending = nil, nil
end

--- Hide the suggestion (and forget it).
function M.clear(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
  local st = state[bufnr]
  if st then
    st.text, st.items, st.anchor, st.tick, st.streamed = nil, nil, nil, nil, false
  end
end

local function render(bufnr)
  api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local st = state[bufnr]
  if not st or not st.text or st.text == '' or not st.anchor then
    return
  end
  local hl = config.options.ghost_text.hl_group
  local ts = vim.bo[bufnr].tabstop
  local lines = vim.split(st.text, '\n', { plain = true })
  for i, l in ipairs(lines) do
    lines[i] = l:gsub('\r$', ''):gsub('\t', string.rep(' ', ts))
  end
  local opts = { hl_mode = 'combine', priority = 1000 }
  if lines[1] ~= '' then
    opts.virt_text = { { lines[1], hl } }
    opts.virt_text_pos = 'inline'
  end
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { lines[i] == '' and ' ' or lines[i], hl } })
    end
  end
  local row = st.anchor.row
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local col = math.min(st.anchor.col, #line)
  pcall(api.nvim_buf_set_extmark, bufnr, M.ns, row, col, opts)
end

local function show(bufnr, text, streamed)
  local st = state[bufnr]
  local row, col = cursor()
  st.text, st.anchor, st.tick, st.streamed = text, { row = row, col = col }, vim.b[bufnr].changedtick, streamed
  render(bufnr)
end

--- Is the request/answer still about the text and cursor the user has now?
local function still_valid(bufnr, p)
  if api.nvim_get_current_buf() ~= bufnr or not in_insert() then
    return false
  end
  local row, col = cursor()
  return p.row == row and p.col == col and p.tick == vim.b[bufnr].changedtick
end

local function item_text(item)
  local t = item.insertText
  if type(t) == 'table' then
    t = t.value
  end
  return t or ''
end

--- Ask the server now.
function M.request(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local st = state[bufnr]
  if not st or not enabled or not config.options.ghost_text.enabled then
    return
  end
  cancel(bufnr)
  if api.nvim_get_current_buf() ~= bufnr or not in_insert() then
    return
  end
  local client = vim.lsp.get_client_by_id(st.client_id)
  if not client then
    return
  end
  seq = seq + 1
  local row, col = cursor()
  local pending = {
    token = ('slm-ls/ghost/%d/%d'):format(vim.fn.getpid(), seq),
    row = row,
    col = col,
    tick = vim.b[bufnr].changedtick,
    client_id = client.id,
  }
  local params = util.position_params(client)
  params.context = { triggerKind = 2 } -- Automatic
  if config.options.ghost_text.stream then
    params.workDoneToken = pending.token
  end
  st.pending = pending
  M.counters.requests = M.counters.requests + 1
  local ok, id = util.request(client, 'textDocument/inlineCompletion', params, function(err, result)
    if st.pending ~= pending then
      return -- superseded
    end
    st.req_id, st.pending = nil, nil
    if err then
      if not util.is_cancel(err) then
        M.counters.errors = M.counters.errors + 1
        M.last_error = err.message
      end
      return
    end
    M.counters.answers = M.counters.answers + 1
    if not still_valid(bufnr, pending) then
      return
    end
    local items = {}
    for _, it in ipairs(result and (result.items or result) or {}) do
      if item_text(it) ~= '' then
        table.insert(items, it)
      end
    end
    if #items == 0 then
      M.clear(bufnr)
      return
    end
    st.items, st.index = items, 1
    show(bufnr, item_text(items[1]), false)
  end, bufnr)
  if ok then
    st.req_id = id
  else
    st.pending = nil
  end
end

--- Ask after `debounce_ms` without further typing.
function M.schedule(bufnr)
  local st = state[bufnr]
  if not st or not enabled then
    return
  end
  stop_timer(st)
  local timer = (vim.uv or vim.loop).new_timer()
  st.timer = timer
  timer:start(config.options.ghost_text.debounce_ms, 0, vim.schedule_wrap(function()
    if st.timer == timer then
      stop_timer(st)
      M.request(bufnr)
    end
  end))
end

--- A streamed partial text arrived (`$/progress` report for one of our tokens).
function M.on_progress(client_id, params)
  local token, value = params.token, params.value
  if type(token) ~= 'string' or not token:find('^slm%-ls/ghost/') or type(value) ~= 'table' then
    return
  end
  if value.kind ~= 'report' or type(value.message) ~= 'string' or value.message == '' then
    return
  end
  for bufnr, st in pairs(state) do
    local p = st.pending
    if p and p.token == token and p.client_id == client_id then
      if still_valid(bufnr, p) and (st.text == nil or st.streamed) then
        M.counters.stream_updates = M.counters.stream_updates + 1
        show(bufnr, value.message, true)
      end
      return
    end
  end
end

--- Text changed in insert mode: keep the rest if the user typed the suggestion's next
--- characters, else ask again.
local function on_change(bufnr)
  local st = state[bufnr]
  if not st or not enabled then
    return
  end
  local tick = vim.b[bufnr].changedtick
  if st.tick == tick then
    return -- our own edit (partial accept) already accounted for
  end
  local row, col = cursor()
  if st.text and not st.streamed and st.anchor and st.anchor.row == row and col > st.anchor.col then
    local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
    local typed = line:sub(st.anchor.col + 1, col)
    if st.text:sub(1, #typed) == typed and #st.text > #typed then
      cancel(bufnr)
      st.items = { { insertText = st.text:sub(#typed + 1), command = st.items and st.items[st.index] and st.items[st.index].command } }
      st.index = 1
      show(bufnr, st.text:sub(#typed + 1), false)
      return
    end
  end
  M.clear(bufnr)
  M.schedule(bufnr)
end

local function on_cursor(bufnr)
  local st = state[bufnr]
  if not st then
    return
  end
  if st.tick and st.tick ~= vim.b[bufnr].changedtick then
    return -- a text change: on_change decides
  end
  local row, col = cursor()
  local at = st.anchor or st.pending
  if at and at.row == row and at.col == col then
    return -- still where the suggestion (or the pending request) is
  end
  M.clear(bufnr)
  M.schedule(bufnr)
end

function M.attach(bufnr, client_id)
  if state[bufnr] then
    state[bufnr].client_id = client_id
    return
  end
  local st = { client_id = client_id, index = 1, streamed = false }
  state[bufnr] = st
  st.group = api.nvim_create_augroup('slm-ls.ghost.' .. bufnr, { clear = true })
  api.nvim_create_autocmd('InsertEnter', {
    group = st.group,
    buffer = bufnr,
    callback = function()
      M.schedule(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, {
    group = st.group,
    buffer = bufnr,
    callback = function()
      on_change(bufnr)
    end,
  })
  api.nvim_create_autocmd('CursorMovedI', {
    group = st.group,
    buffer = bufnr,
    callback = function()
      on_cursor(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = st.group,
    buffer = bufnr,
    callback = function()
      cancel(bufnr)
      M.clear(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'BufWipeout', 'BufUnload' }, {
    group = st.group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
  if api.nvim_get_current_buf() == bufnr and in_insert() then
    M.schedule(bufnr)
  end
end

function M.detach(bufnr)
  local st = state[bufnr]
  if not st then
    return
  end
  cancel(bufnr)
  M.clear(bufnr)
  pcall(api.nvim_del_augroup_by_id, st.group)
  state[bufnr] = nil
end

function M.attached(bufnr)
  return state[bufnr] ~= nil
end

--- The suggestion shown in `bufnr` (nil when none).
function M.suggestion(bufnr)
  local st = state[bufnr or api.nvim_get_current_buf()]
  if st and st.text and st.text ~= '' then
    return st.text
  end
end

--- True while the shown text is a streamed partial (the final answer has not arrived yet).
function M.streaming(bufnr)
  local st = state[bufnr or api.nvim_get_current_buf()]
  return st ~= nil and st.streamed == true
end

function M.visible(bufnr)
  return M.suggestion(bufnr) ~= nil
end

--- Insert all of the suggestion, its next word or its next line.
---@param kind 'all'|'word'|'line'
---@return boolean accepted
function M.accept(kind)
  local bufnr = api.nvim_get_current_buf()
  local st = state[bufnr]
  if not st or not st.text or st.text == '' or not st.anchor then
    return false
  end
  local row, col = cursor()
  if row ~= st.anchor.row or col ~= st.anchor.col then
    M.clear(bufnr)
    return false
  end
  local text = st.text
  local piece = text
  if kind == 'word' then
    piece = util.first_word(text)
  elseif kind == 'line' then
    piece = util.first_line(text)
  end
  local item = st.items and st.items[st.index]
  cancel(bufnr)
  local lines = vim.split(piece, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local new_row = row + #lines - 1
  local new_col = (#lines == 1 and col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  local rest = text:sub(#piece + 1)
  if rest == '' or kind == 'all' then
    M.counters.accepted = M.counters.accepted + 1
    M.clear(bufnr)
    local client = vim.lsp.get_client_by_id(st.client_id)
    if client and item and item.command then
      util.exec_cmd(client, item.command, bufnr)
    end
    -- The edit itself (TextChangedI) asks for what comes next.
  else
    M.counters.partial_accepts = M.counters.partial_accepts + 1
    st.items = { { insertText = rest, command = item and item.command } }
    st.index = 1
    show(bufnr, rest, false)
  end
  return true
end

function M.dismiss()
  local bufnr = api.nvim_get_current_buf()
  if not M.visible(bufnr) then
    return false
  end
  cancel(bufnr)
  M.clear(bufnr)
  return true
end

--- Cycle through the items of the last answer.
function M.select(delta)
  local bufnr = api.nvim_get_current_buf()
  local st = state[bufnr]
  if not st or not st.items or #st.items == 0 or not st.anchor then
    return false
  end
  st.index = (st.index - 1 + delta) % #st.items + 1
  st.text = item_text(st.items[st.index])
  render(bufnr)
  return true
end

--- Turn the backend on or off everywhere.
function M.enable(on)
  enabled = on
  if not on then
    for bufnr in pairs(state) do
      cancel(bufnr)
      M.clear(bufnr)
    end
  end
end

function M.is_enabled()
  return enabled
end

return M
