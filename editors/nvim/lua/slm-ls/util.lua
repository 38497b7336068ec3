-- Small compatibility layer over the LSP client API (Neovim 0.10 uses `client.request(...)`,
-- 0.11+ `client:request(...)` and warns about the old form in 0.12).
local M = {}

local has_011 = vim.fn.has('nvim-0.11') == 1

function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.cancel(client, id)
  if not id then
    return
  end
  if has_011 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

--- Run a server command (e.g. the `slm-ls.accepted` telemetry command of an item).
function M.exec_cmd(client, command, bufnr)
  if not command then
    return
  end
  M.request(client, 'workspace/executeCommand', {
    command = command.command,
    arguments = command.arguments,
  }, function() end, bufnr)
end

--- The slm-ls client attached to `bufnr` (or any slm-ls client when bufnr is nil).
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = 'slm-ls', bufnr = bufnr })
  return clients[1]
end

function M.is_cancel(err)
  return err and (err.code == -32800 or err.code == -32802)
end

--- LSP position (in the client's encoding) of the cursor in window 0.
function M.position_params(client)
  return vim.lsp.util.make_position_params(0, client.offset_encoding or 'utf-16')
end

--- Split `text` at its first word (leading whitespace + identifier, or one run of punctuation).
--- A suggestion starting with a newline gives the newline plus the next line's indentation.
function M.first_word(text)
  if text == '' then
    return ''
  end
  local nl = text:match('^\r?\n[ \t]*')
  if nl then
    return nl
  end
  local piece = text:match('^[ \t]*[%w_]+') or text:match('^[ \t]*[^%w_%s]+') or text:match('^[ \t]+')
  return piece or text:sub(1, 1)
end

--- The rest of the current line of `text`; if it starts with a newline, the newline and the next line.
function M.first_line(text)
  if text == '' then
    return ''
  end
  local nl = text:match('^\r?\n[^\n]*')
  if nl then
    return nl
  end
  return text:match('^[^\n]*')
end

return M
