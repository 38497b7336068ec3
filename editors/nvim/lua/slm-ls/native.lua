-- The native backend: Neovim 0.12's `vim.lsp.inline_completion` draws and accepts the ghost
-- text; this module adds partial accepts (word / line), dismiss, and a way to read what is shown.
local util = require('slm-ls.util')

local api = vim.api
local M = {}

M.namespace = 'nvim.lsp.inline_completion'

local attached = {}
local enabled = true

function M.available()
  return type(vim.lsp.inline_completion) == 'table' and type(vim.lsp.inline_completion.enable) == 'function'
end

function M.attach(bufnr, _client_id)
  attached[bufnr] = true
  if enabled then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  end
end

function M.detach(bufnr)
  attached[bufnr] = nil
  pcall(vim.lsp.inline_completion.enable, false, { bufnr = bufnr })
end

function M.attached(bufnr)
  return attached[bufnr] == true
end

--- The text Neovim shows as ghost text in `bufnr`, read back from its extmark.
function M.suggestion(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local ns = api.nvim_get_namespaces()[M.namespace]
  if not ns then
    return nil
  end
  local marks = api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })
  for _, m in ipairs(marks) do
    local d = m[4]
    local function chunks(list)
      local s = {}
      for _, c in ipairs(list or {}) do
        if c[2] ~= 'ComplHintMore' then
          table.insert(s, c[1])
        end
      end
      return table.concat(s)
    end
    local lines = { chunks(d.virt_text) }
    for _, vl in ipairs(d.virt_lines or {}) do
      table.insert(lines, chunks(vl))
    end
    local text = table.concat(lines, '\n')
    if text ~= '' then
      return text
    end
  end
  return nil
end

function M.visible(bufnr)
  return M.suggestion(bufnr) ~= nil
end

local function insert_partial(item, kind)
  local bufnr = api.nvim_get_current_buf()
  local text = item.insert_text
  if type(text) == 'table' then
    text = text.value or ''
  end
  local c = api.nvim_win_get_cursor(0)
  local row, col = c[1] - 1, c[2]
  -- Text of the item the user has already typed (the item's range may start before the cursor).
  local r = item.range
  if r and r.start.row == row and r.start.col < col then
    local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
    local typed = line:sub(r.start.col + 1, col)
    if text:sub(1, #typed) == typed then
      text = text:sub(#typed + 1)
    end
  end
  local piece = kind == 'word' and util.first_word(text) or util.first_line(text)
  local lines = vim.split(piece, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
  if piece == text and item.command then
    local client = vim.lsp.get_client_by_id(item.client_id)
    if client then
      util.exec_cmd(client, item.command, bufnr)
    end
  end
end

---@param kind 'all'|'word'|'line'
function M.accept(kind)
  if kind == 'all' then
    return vim.lsp.inline_completion.get()
  end
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      insert_partial(item, kind)
    end,
  })
end

function M.dismiss()
  if not M.visible() then
    return false
  end
  -- `get` with an accept handler that does nothing: hides the item and cancels requests.
  return vim.lsp.inline_completion.get({ on_accept = function() end })
end

function M.select(delta)
  if not M.visible() then
    return false
  end
  vim.lsp.inline_completion.select({ count = delta })
  return true
end

function M.enable(on)
  enabled = on
  for bufnr in pairs(attached) do
    if api.nvim_buf_is_valid(bufnr) then
      pcall(vim.lsp.inline_completion.enable, on, { bufnr = bufnr })
    end
  end
end

function M.is_enabled()
  return enabled
end

function M.request() end

return M
