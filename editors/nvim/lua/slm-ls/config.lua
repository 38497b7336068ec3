---@mod slm-ls.config Options and their defaults.
local M = {}

---@class SlmLsKeymaps
---@field accept string|false        accept the whole suggestion
---@field accept_word string|false   accept the next word
---@field accept_line string|false   accept the rest of the line (or the next line)
---@field dismiss string|false       hide the suggestion
---@field next string|false          next suggestion (when the server sent several)
---@field prev string|false          previous suggestion

M.defaults = {
  -- The server command line. Any executable on $PATH, or an absolute path.
  cmd = { 'slm-ls' },
  -- Extra environment for the server process (e.g. { SLM_LS_MODEL = '/path/to/model.gguf' }).
  cmd_env = nil,
  -- Filetypes to attach to. nil = every buffer that is a real file with a filetype.
  filetypes = nil,
  -- Filetypes never attached to (only used when `filetypes` is nil).
  exclude_filetypes = { 'help', 'gitcommit', 'gitrebase', 'netrw', 'qf', 'TelescopePrompt' },
  -- Files whose first 'root_markers' ancestor becomes the workspace root (used for prompt paths).
  root_markers = { '.git' },
  -- Server settings, sent as `initializationOptions` and `workspace/didChangeConfiguration`.
  -- Same keys as the server's JSON settings, e.g.
  --   { model = { path = '~/models/qwen2.5-coder-0.5b-q8_0.gguf' }, completion = { maxTokens = 48 } }
  settings = {},
  ghost_text = {
    enabled = true,
    -- 'auto': vim.lsp.inline_completion on Neovim 0.12+, else extmarks.
    -- 'native': always vim.lsp.inline_completion (errors on older Neovim).
    -- 'extmark': this plugin's own renderer (streams partial text; works on 0.10+).
    backend = 'auto',
    -- Extmark backend: wait this long after the last keystroke before asking the server.
    debounce_ms = 75,
    -- Extmark backend: show partial text while the model is still generating.
    stream = true,
    -- Highlight group of the ghost text (extmark backend; native uses ComplHint).
    hl_group = 'SlmGhostText',
  },
  -- Insert-mode keymaps. Opt-in: `keymaps = true` uses the keys below, a table overrides
  -- single keys (false = leave that one unmapped). A key that is already mapped in insert
  -- mode is never overridden: it is skipped and reported by :checkhealth slm-ls.
  -- Every mapped key falls back to its normal behaviour when no suggestion is shown.
  keymaps = false,
  default_keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-Down>',
    dismiss = '<C-]>',
    next = '<M-]>',
    prev = '<M-[>',
  },
  explain = {
    -- Floating window size, as a fraction of the editor.
    width = 0.6,
    height = 0.6,
    border = 'rounded',
  },
}

M.options = vim.deepcopy(M.defaults)

---@param opts table|nil
function M.set(opts)
  opts = opts or {}
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists replace, they do not merge element-wise.
  for _, k in ipairs({ 'cmd', 'filetypes', 'exclude_filetypes', 'root_markers' }) do
    if opts[k] ~= nil then
      merged[k] = opts[k]
    end
  end
  if type(merged.cmd) == 'string' then
    merged.cmd = { merged.cmd }
  end
  M.options = merged
  return merged
end

--- The keymaps to install: {name = lhs} for the enabled ones.
function M.keymaps()
  local k = M.options.keymaps
  if not k then
    return {}
  end
  local out = {}
  for name, lhs in pairs(M.options.default_keymaps) do
    local v = lhs
    if type(k) == 'table' and k[name] ~= nil then
      v = k[name]
    end
    if v then
      out[name] = v
    end
  end
  return out
end

return M
