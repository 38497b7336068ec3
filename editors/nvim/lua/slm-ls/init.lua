-- slm-ls for Neovim: starts the server with vim.lsp.start, shows its suggestions as ghost text.
--
--   require('slm-ls').setup({ keymaps = true })
--
-- See :help slm-ls.
local config = require('slm-ls.config')
local util = require('slm-ls.util')

local api = vim.api
local M = {}

M.version = '0.1.0'

--- What the server is doing, from its `$/progress` model-load reports and our requests.
M.server = { state = 'stopped', message = nil, percent = nil, model = nil }

--- Keymaps installed ({lhs = name}) and skipped because the key was already mapped.
M.keymaps_installed = {}
M.keymaps_skipped = {}

local did_setup = false
local enabled = true
local warned = {}

local function warn_once(key, msg, level)
  if warned[key] then
    return
  end
  warned[key] = true
  vim.notify(msg, level or vim.log.levels.WARN, { title = 'slm-ls' })
end

--- 'native' (vim.lsp.inline_completion) or 'extmark'.
function M.backend_name()
  local native = require('slm-ls.native')
  local want = config.options.ghost_text.backend
  if want == 'extmark' then
    return 'extmark'
  end
  if native.available() then
    return 'native'
  end
  if want == 'native' then
    warn_once('native', 'slm-ls: vim.lsp.inline_completion needs Neovim 0.12+; using the extmark backend')
  end
  return 'extmark'
end

function M.backend()
  return require(M.backend_name() == 'native' and 'slm-ls.native' or 'slm-ls.ghost')
end

-- ---------------------------------------------------------------------------
-- Starting the server
-- ---------------------------------------------------------------------------

local function wanted(bufnr)
  local o = config.options
  if vim.bo[bufnr].buftype ~= '' then
    return false
  end
  local ft = vim.bo[bufnr].filetype
  if ft == '' or api.nvim_buf_get_name(bufnr) == '' then
    return false
  end
  if o.filetypes then
    return vim.tbl_contains(o.filetypes, ft)
  end
  return not vim.tbl_contains(o.exclude_filetypes or {}, ft)
end

local function root_dir(bufnr)
  local markers = config.options.root_markers or {}
  if vim.fs.root and #markers > 0 then
    local r = vim.fs.root(bufnr, markers)
    if r then
      return r
    end
  end
  return vim.fn.getcwd()
end

--- Is the server command runnable? Tells the user how to fix it once when not.
function M.cmd_ok()
  local cmd = config.options.cmd
  if type(cmd) == 'function' then
    return true
  end
  if vim.fn.executable(cmd[1]) == 1 then
    return true
  end
  warn_once(
    'cmd',
    ('slm-ls: the server `%s` was not found. Build it with `cargo build --release` in the slm-ls '
      .. 'repository and put target/release/slm-ls on $PATH, or set '
      .. "require('slm-ls').setup({ cmd = { '/path/to/slm-ls' } }). See :checkhealth slm-ls."):format(cmd[1]),
    vim.log.levels.ERROR
  )
  return false
end

local function settings_payload()
  local s = vim.deepcopy(config.options.settings or {})
  if not enabled then
    s.completion = s.completion or {}
    s.completion.enabled = false
  end
  if next(s) == nil then
    return vim.empty_dict()
  end
  return s
end

--- Start (or reuse) the server and attach it to `bufnr`.
function M.start(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  if not M.cmd_ok() then
    return nil
  end
  local o = config.options
  local settings = settings_payload()
  local id = vim.lsp.start({
    name = 'slm-ls',
    cmd = o.cmd,
    cmd_env = o.cmd_env,
    root_dir = root_dir(bufnr),
    init_options = settings,
    settings = settings,
  }, {
    bufnr = bufnr,
    -- One server (one model in memory) for every project.
    reuse_client = function(client, conf)
      return client.name == conf.name
    end,
  })
  if id and M.server.state == 'stopped' then
    M.server.state = 'starting'
  end
  return id
end

-- ---------------------------------------------------------------------------
-- Keymaps
-- ---------------------------------------------------------------------------

local actions = {
  accept = function(b)
    return b.accept('all')
  end,
  accept_word = function(b)
    return b.accept('word')
  end,
  accept_line = function(b)
    return b.accept('line')
  end,
  dismiss = function(b)
    return b.dismiss()
  end,
  next = function(b)
    return b.select(1)
  end,
  prev = function(b)
    return b.select(-1)
  end,
}

--- Neovim's own default insert-mode mappings (0.11+: <Tab>/<S-Tab> jump in snippets) are not
--- the user's: we map over them and chain to them when there is no suggestion.
local function builtin_default(m)
  return type(m.desc) == 'string' and m.desc:find('^vim%.snippet%.jump') ~= nil and type(m.callback) == 'function'
end

local function set_keymaps(bufnr)
  for name, lhs in pairs(config.keymaps()) do
    local existing = vim.fn.maparg(lhs, 'i', false, true)
    local mapped = type(existing) == 'table' and next(existing) ~= nil
    local ours = mapped and type(existing.desc) == 'string' and existing.desc:find('^slm%-ls') ~= nil
    local chain = nil
    if mapped and not ours and builtin_default(existing) then
      chain = existing.callback
    end
    if mapped and not ours and not chain then
      -- Never steal a key: report it instead (here once, and in :checkhealth slm-ls).
      if not M.keymaps_skipped[lhs] then
        M.keymaps_skipped[lhs] = {
          name = name,
          by = existing.desc or existing.rhs or (existing.callback and '<Lua function>') or '?',
        }
        warn_once('key:' .. lhs, ('slm-ls: %s is already mapped in insert mode; not mapping it to %s. '
          .. 'Pick another key with setup({ keymaps = { %s = "<key>" } }).'):format(lhs, name, name), vim.log.levels.INFO)
      end
    elseif not ours then
      M.keymaps_installed[lhs] = name
      vim.keymap.set('i', lhs, function()
        local b = M.backend()
        local snippet = chain and vim.snippet and vim.snippet.active and vim.snippet.active()
        if enabled and not snippet and b.visible() then
          vim.schedule(function()
            actions[name](b)
          end)
          return ''
        end
        if chain then
          return chain() -- Neovim's default (snippet jump, else the key itself)
        end
        return lhs -- no suggestion: the key does what it normally does
      end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = 'slm-ls: ' .. name:gsub('_', ' ') })
    end
  end
end

-- ---------------------------------------------------------------------------
-- Public actions (map them yourself if you prefer: they return false when nothing is shown)
-- ---------------------------------------------------------------------------

function M.accept()
  return M.backend().accept('all')
end
function M.accept_word()
  return M.backend().accept('word')
end
function M.accept_line()
  return M.backend().accept('line')
end
function M.dismiss()
  return M.backend().dismiss()
end
function M.next()
  return M.backend().select(1)
end
function M.prev()
  return M.backend().select(-1)
end

--- The ghost text shown in `bufnr` (nil when none).
function M.suggestion(bufnr)
  return M.backend().suggestion(bufnr or api.nvim_get_current_buf())
end

function M.is_enabled()
  return enabled
end

--- :SlmToggle. Turns ghost text off/on and tells the server (completion.enabled).
function M.toggle(on)
  if on == nil then
    on = not enabled
  end
  enabled = on
  require('slm-ls.ghost').enable(on)
  local native = require('slm-ls.native')
  if native.available() then
    native.enable(on)
  end
  for _, client in ipairs(vim.lsp.get_clients({ name = 'slm-ls' })) do
    client.settings = settings_payload()
    util.notify(client, 'workspace/didChangeConfiguration', { settings = settings_payload() })
  end
  vim.notify('slm-ls: completions ' .. (on and 'on' or 'off'), vim.log.levels.INFO, { title = 'slm-ls' })
  return on
end

--- `slm-ls/stats` from the server, plus this plugin's counters. Calls cb(result, err).
function M.stats(cb)
  local client = util.client()
  if not client then
    cb(nil, 'slm-ls is not running (open a file of a configured filetype first)')
    return
  end
  util.request(client, 'slm-ls/stats', vim.NIL, function(err, result)
    if err then
      cb(nil, err.message)
      return
    end
    result = result or {}
    result.client = {
      backend = M.backend_name(),
      enabled = enabled,
      extmarkCounters = require('slm-ls.ghost').counters,
    }
    cb(result)
  end)
end

local function flatten(prefix, value, out)
  if type(value) == 'table' and not vim.islist(value) then
    local keys = vim.tbl_keys(value)
    table.sort(keys, function(a, b)
      return tostring(a) < tostring(b)
    end)
    for _, k in ipairs(keys) do
      flatten(prefix == '' and tostring(k) or (prefix .. '.' .. k), value[k], out)
    end
  else
    local v = type(value) == 'table' and vim.inspect(value, { newline = ' ', indent = '' }) or tostring(value)
    table.insert(out, ('- `%s`: %s'):format(prefix, v))
  end
  return out
end

--- :SlmStats
function M.show_stats()
  M.stats(function(result, err)
    if not result then
      vim.notify('slm-ls: ' .. tostring(err), vim.log.levels.WARN, { title = 'slm-ls' })
      return
    end
    local lines = { '# slm-ls stats', '' }
    flatten('', result, lines)
    vim.lsp.util.open_floating_preview(lines, 'markdown', { border = 'rounded', focus_id = 'slm-ls-stats' })
  end)
end

--- A short status for statuslines: "slm-ls: ready", "slm-ls: loading 40%", ...
function M.statusline()
  local s = M.server
  if s.state == 'loading' and s.percent then
    return ('slm-ls: loading %d%%'):format(s.percent)
  end
  if not enabled then
    return 'slm-ls: off'
  end
  return 'slm-ls: ' .. s.state
end

-- ---------------------------------------------------------------------------
-- Progress: model load state, streamed ghost text, streamed explain answers
-- ---------------------------------------------------------------------------

local function on_progress(args)
  local data = args.data or {}
  local client = data.client_id and vim.lsp.get_client_by_id(data.client_id)
  if not client or client.name ~= 'slm-ls' then
    return
  end
  local params = data.params or {}
  local token, value = params.token, params.value or {}
  if type(token) == 'string' and token:find('^slm%-ls/load/') then
    if value.kind == 'begin' then
      M.server.state, M.server.percent, M.server.message = 'loading', value.percentage or 0, value.message
    elseif value.kind == 'report' then
      M.server.state, M.server.percent = 'loading', value.percentage or M.server.percent
    elseif value.kind == 'end' then
      local msg = value.message or ''
      M.server.percent = nil
      M.server.message = msg
      if msg:find('ready') then
        M.server.state = 'ready'
        M.server.model = msg:match('^(.-) ready')
        -- A request made while loading got an error; ask again now.
        local bufnr = api.nvim_get_current_buf()
        local mode = api.nvim_get_mode().mode
        if mode:sub(1, 1) == 'i' and M.backend().attached(bufnr) then
          if M.backend_name() == 'extmark' then
            require('slm-ls.ghost').schedule(bufnr)
          else
            -- vim.lsp.inline_completion asks on cursor moves; nudge it.
            api.nvim_exec_autocmds('CursorMovedI', { buffer = bufnr, modeline = false })
          end
        end
      else
        M.server.state = 'error'
      end
    end
    return
  end
  require('slm-ls.ghost').on_progress(client.id, params)
  require('slm-ls.explain').on_progress(client.id, params)
end

-- ---------------------------------------------------------------------------
-- setup
-- ---------------------------------------------------------------------------

function M.setup(opts)
  config.set(opts)
  if vim.fn.has('nvim-0.10') ~= 1 then
    vim.notify('slm-ls needs Neovim 0.10 or newer', vim.log.levels.ERROR)
    return
  end
  api.nvim_set_hl(0, 'SlmGhostText', { link = 'Comment', default = true })
  local group = api.nvim_create_augroup('slm-ls', { clear = true })
  did_setup = true

  api.nvim_create_autocmd('FileType', {
    group = group,
    callback = function(args)
      if wanted(args.buf) then
        M.start(args.buf)
      end
    end,
  })
  api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= 'slm-ls' then
        return
      end
      if M.server.state == 'stopped' or M.server.state == 'starting' then
        M.server.state = 'running'
      end
      if config.options.ghost_text.enabled then
        M.backend().attach(args.buf, client.id)
      end
      set_keymaps(args.buf)
    end,
  })
  api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == 'slm-ls' then
        M.backend().detach(args.buf)
      end
    end,
  })
  api.nvim_create_autocmd('LspProgress', { group = group, callback = on_progress })
  api.nvim_create_autocmd('ColorScheme', {
    group = group,
    callback = function()
      api.nvim_set_hl(0, 'SlmGhostText', { link = 'Comment', default = true })
    end,
  })

  -- Buffers already open (lazy-loaded plugin managers call setup late).
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and wanted(bufnr) then
      M.start(bufnr)
    end
  end
end

function M.did_setup()
  return did_setup
end

return M
