-- :checkhealth slm-ls
local config = require('slm-ls.config')

local M = {}

local function run(cmd, env)
  local ok, obj = pcall(function()
    return vim.system(cmd, { text = true, env = env }):wait(10000)
  end)
  if not ok or not obj then
    return nil, tostring(obj)
  end
  if obj.code ~= 0 then
    return nil, vim.trim((obj.stderr or '') .. (obj.stdout or ''))
  end
  return vim.trim(obj.stdout or '')
end

function M.check()
  local h = vim.health
  local slm = require('slm-ls')
  local o = config.options

  h.start('slm-ls: Neovim')
  if vim.fn.has('nvim-0.10') == 1 then
    h.ok(('Neovim %s'):format(tostring(vim.version())))
  else
    h.error('Neovim 0.10 or newer is required')
  end
  if not slm.did_setup() then
    h.warn("require('slm-ls').setup() has not been called", { "Add require('slm-ls').setup({ keymaps = true }) to your config" })
  end
  local backend = slm.backend_name()
  if backend == 'native' then
    h.ok('ghost text: vim.lsp.inline_completion (native)')
  else
    h.ok('ghost text: extmarks' .. (require('slm-ls.native').available() and ' (forced by ghost_text.backend)' or ' (Neovim < 0.12)'))
  end

  h.start('slm-ls: server binary')
  local cmd = type(o.cmd) == 'table' and o.cmd or nil
  local exe = cmd and vim.fn.exepath(cmd[1]) or ''
  if not cmd then
    h.info('cmd is a function; not checked')
  elseif exe == '' then
    h.error(('`%s` not found'):format(cmd[1]), {
      'Build it: cargo build --release (in the slm-ls repository), then put target/release on $PATH',
      "or point to it: require('slm-ls').setup({ cmd = { '/abs/path/to/slm-ls' } })",
    })
  else
    h.ok('binary: ' .. exe)
    local version, err = run({ exe, '--version' }, o.cmd_env)
    if version then
      h.ok('version: ' .. version)
    else
      h.error('`' .. exe .. ' --version` failed: ' .. tostring(err))
    end
    local model_path = vim.tbl_get(o.settings or {}, 'model', 'path')
    if model_path then
      model_path = vim.fn.expand(model_path)
    else
      model_path = run({ exe, 'models', 'path' }, o.cmd_env)
    end
    if model_path and vim.fn.filereadable(model_path) == 1 then
      h.ok('model: ' .. model_path)
    elseif model_path then
      h.error('model file missing: ' .. model_path, { 'Download the default model: ' .. exe .. ' models fetch' })
    else
      h.warn('could not ask the server for its model path')
    end
  end

  h.start('slm-ls: server')
  local clients = vim.lsp.get_clients({ name = 'slm-ls' })
  if #clients == 0 then
    h.info('not running (it starts when you open a file of a configured filetype)')
  else
    local client = clients[1]
    h.ok(('running (client id %d, %d buffer(s) attached, position encoding %s)'):format(
      client.id, vim.tbl_count(client.attached_buffers or {}), client.offset_encoding or '?'))
    local ok, resp = pcall(function()
      if vim.fn.has('nvim-0.11') == 1 then
        return client:request_sync('slm-ls/stats', vim.NIL, 3000)
      end
      return client.request_sync('slm-ls/stats', vim.NIL, 3000)
    end)
    local result = ok and resp and resp.result
    if result and result.model and result.model.name then
      h.ok(('model loaded: %s (prompt format %s, loaded in %s ms)'):format(
        result.model.name, tostring(result.model.fim), tostring(result.model.loadMs)))
    elseif result and result.model and result.model.error then
      local e = tostring(result.model.error)
      if e:find('loading') or e:find('not loaded yet') then
        h.info(e)
      else
        h.error(e, { 'Check the model path; see :LspLog for the server log' })
      end
    else
      h.warn('no answer to slm-ls/stats: ' .. tostring(ok and resp and resp.err and resp.err.message or resp))
    end
    h.info('state: ' .. slm.statusline())
  end
  local ghost = require('slm-ls.ghost')
  if ghost.last_error then
    h.warn('last completion error: ' .. ghost.last_error)
  end

  h.start('slm-ls: keymaps')
  if not o.keymaps then
    h.info("keymaps are off (opt-in): setup({ keymaps = true }) maps " .. table.concat(vim.tbl_values(o.default_keymaps), ' '))
  end
  for lhs, name in pairs(slm.keymaps_installed) do
    h.ok(('%s: %s'):format(lhs, name))
  end
  for lhs, s in pairs(slm.keymaps_skipped) do
    h.warn(('%s: not mapped to %s, already mapped by %s'):format(lhs, s.name, s.by),
      { ('setup({ keymaps = { %s = "<another key>" } })'):format(s.name) })
  end
end

return M
