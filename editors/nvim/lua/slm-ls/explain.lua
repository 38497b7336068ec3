-- :SlmExplain: `workspace/executeCommand` `slm-ls.explain` on a range, with the answer shown in
-- a floating Markdown window that fills while the server streams it (`$/progress` reports on
-- the request's work-done token). The command's result (the full Markdown) replaces the
-- streamed text at the end; an error (e.g. no remote model configured) is shown in the window.
local config = require('slm-ls.config')
local util = require('slm-ls.util')

local api = vim.api
local M = {}

local seq = 0
--- token -> session {buf, win, text, done, client_id, req_id}
local sessions = {}

local function set_text(s, text)
  if not api.nvim_buf_is_valid(s.buf) then
    return
  end
  s.text = text
  local lines = vim.split(text, '\n', { plain = true })
  vim.bo[s.buf].modifiable = true
  api.nvim_buf_set_lines(s.buf, 0, -1, false, lines)
  vim.bo[s.buf].modifiable = false
  if s.win and api.nvim_win_is_valid(s.win) and not s.done then
    -- Follow the text while it streams.
    pcall(api.nvim_win_set_cursor, s.win, { #lines, 0 })
  end
end

local function open_window(title)
  local o = config.options.explain
  local buf = api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].filetype = 'markdown'
  local width = math.max(40, math.floor(vim.o.columns * o.width))
  local height = math.max(8, math.floor(vim.o.lines * o.height))
  local win = api.nvim_open_win(buf, true, {
    relative = 'editor',
    width = width,
    height = height,
    row = math.floor((vim.o.lines - height) / 2),
    col = math.floor((vim.o.columns - width) / 2),
    style = 'minimal',
    border = o.border,
    title = title,
    title_pos = 'center',
  })
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].conceallevel = 2
  for _, lhs in ipairs({ 'q', '<Esc>' }) do
    vim.keymap.set('n', lhs, '<Cmd>close<CR>', { buffer = buf, nowait = true, desc = 'slm-ls: close explain' })
  end
  return buf, win
end

--- Merge a streamed report into the text so far. Reports may carry the whole answer so far or
--- only the newest piece; both are handled.
local function merge(so_far, msg)
  if so_far == '' or msg:sub(1, #so_far) == so_far then
    return msg
  end
  return so_far .. msg
end

function M.on_progress(client_id, params)
  local s = sessions[params.token]
  if not s or s.client_id ~= client_id or s.done then
    return
  end
  local v = params.value or {}
  if v.kind == 'report' and type(v.message) == 'string' and v.message ~= '' then
    s.streamed = merge(s.streamed or '', v.message)
    set_text(s, s.streamed)
  end
end

local function result_text(result)
  if type(result) == 'string' then
    return result
  end
  if type(result) == 'table' then
    for _, k in ipairs({ 'markdown', 'text', 'value', 'contents', 'explanation' }) do
      if type(result[k]) == 'string' then
        return result[k]
      end
    end
    return '```json\n' .. vim.json.encode(result) .. '\n```'
  end
  return nil
end

--- The LSP range for a command invocation (`opts` of nvim_create_user_command).
--- No range: an empty range at the cursor (the server explains the enclosing scope).
--- A range from a characterwise visual selection: exactly that text; otherwise whole lines.
function M.range(bufnr, opts, encoding)
  if not opts or opts.range == 0 then
    local pos = vim.lsp.util.make_position_params(0, encoding).position
    return { start = pos, ['end'] = pos }
  end
  local vs, ve = api.nvim_buf_get_mark(bufnr, '<'), api.nvim_buf_get_mark(bufnr, '>')
  if vim.fn.visualmode() == 'v' and vs[1] == opts.line1 and ve[1] == opts.line2 then
    return vim.lsp.util.make_given_range_params(vs, ve, bufnr, encoding).range
  end
  local last = api.nvim_buf_line_count(bufnr)
  local stop
  if opts.line2 < last then
    stop = { line = opts.line2, character = 0 }
  else
    local text = api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ''
    stop = { line = last - 1, character = vim.lsp.util.character_offset(bufnr, last - 1, #text, encoding) }
  end
  return { start = { line = opts.line1 - 1, character = 0 }, ['end'] = stop }
end

--- :SlmExplain
function M.explain(opts)
  local bufnr = api.nvim_get_current_buf()
  local client = util.client(bufnr)
  if not client then
    vim.notify('slm-ls: not attached to this buffer', vim.log.levels.WARN, { title = 'slm-ls' })
    return
  end
  local enc = client.offset_encoding or 'utf-16'
  local range = M.range(bufnr, opts, enc)
  seq = seq + 1
  local token = ('slm-ls/explain/%d/%d'):format(vim.fn.getpid(), seq)
  local buf, win = open_window(' slm-ls explain ')
  local s = { buf = buf, win = win, text = '', client_id = client.id }
  sessions[token] = s
  set_text(s, '_Asking the explain model…_')
  local ok, id = util.request(client, 'workspace/executeCommand', {
    command = 'slm-ls.explain',
    arguments = { { uri = vim.uri_from_bufnr(bufnr), range = range } },
    workDoneToken = token,
  }, function(err, result)
    s.done = true
    sessions[token] = nil
    if err then
      if util.is_cancel(err) then
        return
      end
      local msg = tostring(err.message or err)
      set_text(s, table.concat({
        '**slm-ls could not explain this code.**',
        '',
        msg,
        '',
        '_Explain uses a remote model: set `remote.model` (and `remote.provider`, `remote.endpoint`)',
        'in `settings` of `require("slm-ls").setup()`. See :help slm-ls-explain._',
      }, '\n'))
      return
    end
    local text = result_text(result) or s.streamed or ''
    if text == '' then
      text = '_The model returned an empty answer._'
    end
    set_text(s, text)
  end, bufnr)
  if ok then
    s.req_id = id
    api.nvim_create_autocmd('BufWipeout', {
      buffer = buf,
      once = true,
      callback = function()
        if not s.done then
          s.done = true
          sessions[token] = nil
          pcall(util.cancel, client, id)
        end
      end,
    })
  end
  return s
end

return M
