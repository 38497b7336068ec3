-- Headless end-to-end test: a real Neovim, this plugin, the real slm-ls binary and model.
--
--   SLM_LS_BIN=/path/to/slm-ls SLM_BACKEND=native|extmark \
--     nvim --headless -u NONE -i NONE -n --cmd 'set rtp^=editors/nvim' -c 'luafile editors/nvim/tests/e2e.lua'
--
-- Keys go through nvim_feedkeys (as if typed, mappings applied), so the insert-mode events,
-- the plugin's keymaps and Neovim's own inline-completion code run exactly as for a user.
-- Assertions compare the buffer before and after an accept: it must have changed by exactly the
-- suggestion that was shown (no hard-coded model output; greedy decoding is deterministic).

local api, uv = vim.api, (vim.uv or vim.loop)
local backend = os.getenv('SLM_BACKEND') or 'native'
local bin = assert(os.getenv('SLM_LS_BIN'), 'SLM_LS_BIN is not set')
local extra = os.getenv('SLM_EXTRA') == '1'
local total_s = tonumber(os.getenv('SLM_TEST_TIMEOUT') or '240')
local t_start = uv.now()

local function log(msg)
  io.stderr:write(('[nvim-e2e %s %6.1fs] %s\n'):format(backend, (uv.now() - t_start) / 1000, msg))
end

local finished = false
local function finish(code, msg)
  if finished then
    return
  end
  finished = true
  log(msg)
  vim.schedule(function()
    vim.cmd((code == 0) and 'qall!' or ('cquit ' .. code))
  end)
end

local function fail(msg)
  finish(1, 'FAIL: ' .. msg)
  error('test failed: ' .. msg, 0)
end

local function check(cond, msg)
  if not cond then
    fail(msg)
  end
end

-- Hard deadline for the whole script.
vim.defer_fn(function()
  finish(2, ('FAIL: the test did not finish within %ds'):format(total_s))
end, total_s * 1000)

local co
local function sleep(ms)
  vim.defer_fn(function()
    if not finished then
      local ok, err = coroutine.resume(co)
      if not ok and not finished then
        finish(1, 'FAIL: ' .. debug.traceback(co, tostring(err)))
      end
    end
  end, ms)
  coroutine.yield()
end

local function wait_for(desc, timeout_ms, pred)
  local t0 = uv.now()
  while true do
    local v = pred()
    if v then
      return v
    end
    if uv.now() - t0 > timeout_ms then
      fail(('timed out after %d ms waiting for %s'):format(timeout_ms, desc))
    end
    sleep(25)
  end
end

local function feed(keys)
  api.nvim_feedkeys(api.nvim_replace_termcodes(keys, true, false, true), 'mt', false)
end

local function type_text(s)
  for ch in s:gmatch('.') do
    feed(ch)
    sleep(40)
  end
end

local function buf_text(buf)
  return table.concat(api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

--- Byte offset in the buffer text of the cursor (row/col are 0-based, col in bytes).
local function offset(buf, row, col)
  local lines = api.nvim_buf_get_lines(buf, 0, row, false)
  local n = 0
  for _, l in ipairs(lines) do
    n = n + #l + 1
  end
  return n + col
end

local function cursor()
  local c = api.nvim_win_get_cursor(0)
  return c[1] - 1, c[2]
end

local function mode()
  return api.nvim_get_mode().mode
end

local slm = require('slm-ls')
local ghost = require('slm-ls.ghost')

--- Wait for a final (not streaming) suggestion; returns it.
local function wait_suggestion(buf, desc)
  return wait_for(desc or 'ghost text', 120000, function()
    local s = slm.suggestion(buf)
    if s and not (backend == 'extmark' and ghost.streaming(buf)) then
      return s
    end
  end)
end

local FIXTURE = table.concat({
  'def fibonacci(n):',
  '    """Return the n-th Fibonacci number."""',
  '    if n < 2:',
  '        return n',
  '    return ',
  '',
}, '\n')

local fake_port = os.getenv('SLM_FAKE_OPENAI_PORT')
local fake_answer = os.getenv('SLM_FAKE_ANSWER')
local settings = { completion = { maxTokens = 24 } }
if fake_port then
  -- An OpenAI-compatible stand-in on 127.0.0.1 (editors/tests/fake_openai.py) answers Explain.
  settings.remote = { provider = 'openai', endpoint = 'http://127.0.0.1:' .. fake_port, model = 'fake-explainer', apiKeyEnv = '' }
end

--- :SlmExplain on lines 1-4: a Markdown float fills with the streamed answer (fake provider) or
--- shows the server's error (no remote model configured).
local function check_explain(buf)
  vim.cmd('1,4SlmExplain')
  local ewin = api.nvim_get_current_win()
  local ebuf = api.nvim_win_get_buf(ewin)
  check(api.nvim_win_get_config(ewin).relative ~= '', 'SlmExplain did not open a floating window')
  check(vim.bo[ebuf].filetype == 'markdown', 'explain window is not markdown')
  local seen, last = {}, nil
  local etext = wait_for('the explain answer', 60000, function()
    local t = buf_text(ebuf)
    if t ~= last then
      last = t
      table.insert(seen, t)
    end
    if fake_answer then
      if t == fake_answer then
        return t
      end
    elseif t ~= '' and not t:find('^_Asking') then
      return t
    end
  end)
  log(('SlmExplain window (%d distinct states): %q'):format(#seen, etext:sub(1, 200)))
  if fake_answer then
    -- The float showed partial answers, each a prefix of the final one, before the end.
    local partial = 0
    for _, t in ipairs(seen) do
      if t ~= fake_answer and #t > 0 and fake_answer:sub(1, #t) == t then
        partial = partial + 1
      end
    end
    check(partial >= 2, ('the explain answer did not stream: states %s'):format(vim.inspect(seen)))
  else
    check(etext:find('could not explain', 1, true) and etext:find('remote', 1, true), 'explain error not shown: ' .. etext)
  end
  vim.cmd('close')
  check(api.nvim_get_current_buf() == buf, 'closing the explain window did not return to the file')
end

local function main()
  log('nvim ' .. tostring(vim.version()) .. ', backend ' .. backend .. ', server ' .. bin)
  vim.cmd('filetype on')
  vim.o.showmode = false
  vim.cmd('runtime! plugin/slm-ls.lua') -- what a plugin manager does; -u NONE skips plugin/
  slm.setup({
    cmd = { bin },
    keymaps = true,
    ghost_text = { backend = backend },
    settings = settings,
  })
  check(slm.backend_name() == backend, 'backend is ' .. slm.backend_name() .. ', wanted ' .. backend)

  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, 'p')
  local path = dir .. '/fib.py'
  vim.fn.writefile(vim.split(FIXTURE, '\n'), path)
  vim.cmd.edit(vim.fn.fnameescape(path))
  local buf = api.nvim_get_current_buf()
  check(vim.bo[buf].filetype == 'python', 'filetype detection: ' .. vim.bo[buf].filetype)

  local client = wait_for('the slm-ls client to attach', 20000, function()
    return vim.lsp.get_clients({ name = 'slm-ls', bufnr = buf })[1]
  end)
  log('attached, position encoding ' .. tostring(client.offset_encoding))

  -- The model loads in the background; wait until the server reports it.
  local model, asking, load_error = nil, false, nil
  wait_for('the model to load', 120000, function()
    if load_error then
      fail('the model did not load: ' .. load_error)
    end
    if model then
      return true
    end
    if not asking then
      asking = true
      slm.stats(function(r)
        asking = false
        if r and r.model and r.model.name then
          model = r.model.name
        elseif r and r.model and r.model.error then
          local e = tostring(r.model.error)
          if not (e:find('still loading', 1, true) or e:find('not loaded yet', 1, true)) then
            load_error = e
          end
        end
      end)
    end
    return false
  end)
  log('model ready: ' .. model)

  -- Scenario 1: type at the end of `    return `, see ghost text, accept it all with <Tab>.
  api.nvim_win_set_cursor(0, { 5, 0 })
  feed('A')
  sleep(50)
  check(mode():sub(1, 1) == 'i', 'not in insert mode: ' .. mode())
  type_text('fib')
  local s1 = wait_suggestion(buf, 'ghost text after typing "fib"')
  log(('ghost text: %q'):format(s1))
  check(vim.trim(s1) ~= '', 'the suggestion is blank')
  local before = buf_text(buf)
  local row, col = cursor()
  local at = offset(buf, row, col)
  check(before:sub(at - 2, at) == 'fib', 'cursor is not after the typed text')
  feed('<Tab>')
  wait_for('the accepted text in the buffer', 10000, function()
    return buf_text(buf) ~= before
  end)
  sleep(100)
  local after = buf_text(buf)
  local expected = before:sub(1, at) .. s1 .. before:sub(at + 1)
  check(after == expected, ('buffer after accept:\n%s\nexpected:\n%s'):format(after, expected))
  local r2, c2 = cursor()
  check(offset(buf, r2, c2) == at + #s1, 'cursor is not at the end of the accepted text')
  check(mode():sub(1, 1) == 'i', 'accepting left insert mode')
  log('accept: the buffer changed by exactly the suggestion')

  -- Scenario 2: same place again, accept one word with <M-Right>.
  feed('<Esc>')
  sleep(50)
  api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(FIXTURE, '\n'))
  api.nvim_win_set_cursor(0, { 5, 0 })
  feed('A')
  type_text('fib')
  local s2 = wait_suggestion(buf, 'ghost text for the word accept')
  log(('ghost text: %q'):format(s2))
  local word = require('slm-ls.util').first_word(s2)
  before = buf_text(buf)
  row, col = cursor()
  at = offset(buf, row, col)
  feed('<M-Right>')
  wait_for('the accepted word in the buffer', 10000, function()
    return buf_text(buf) ~= before
  end)
  sleep(50)
  after = buf_text(buf)
  expected = before:sub(1, at) .. word .. before:sub(at + 1)
  check(after == expected, ('buffer after accept word:\n%s\nexpected:\n%s'):format(after, expected))
  log(('accept word: inserted exactly %q'):format(word))
  local rest = s2:sub(#word + 1)
  if vim.trim(rest) ~= '' then
    if backend == 'extmark' then
      -- The rest stays on screen at once, without asking the server.
      check(slm.suggestion(buf) == rest, ('after a word accept the ghost text is %q, expected %q'):format(
        tostring(slm.suggestion(buf)), rest))
    end
    -- Scenario 3: dismiss whatever is shown now with <C-]>.
    wait_suggestion(buf, 'ghost text after the word accept')
    before = buf_text(buf)
    feed('<C-]>')
    wait_for('the ghost text to go away', 5000, function()
      return slm.suggestion(buf) == nil
    end)
    check(buf_text(buf) == before, 'dismiss changed the buffer')
    log('dismiss: ghost text hidden, buffer unchanged')
  end

  -- Keys fall back to their own meaning when nothing is shown: <Tab> inserts a tab/indent.
  feed('<Esc>')
  sleep(50)
  if backend == 'extmark' then
    log(('extmark backend counters: %s'):format(vim.inspect(ghost.counters, { newline = ' ', indent = '' })))
    check(ghost.counters.stream_updates > 0, 'no streamed partial text was shown before the final answer')
  end

  if not extra then
    check_explain(buf)
    log('SlmExplain (no remote model) ok')
  end

  if extra then
    -- :SlmStats
    local stats
    slm.stats(function(r)
      stats = r
    end)
    wait_for('slm-ls/stats', 10000, function()
      return stats
    end)
    check(stats.model and stats.model.name, 'stats without a model')
    vim.cmd('SlmStats')
    sleep(100)
    log('SlmStats ok')

    check_explain(buf)
    log('SlmExplain ok')

    -- :SlmToggle off: no ghost text; on again: back.
    vim.cmd('SlmToggle off')
    api.nvim_win_set_cursor(0, { 5, 0 })
    feed('A')
    type_text('  ')
    sleep(1500)
    check(slm.suggestion(buf) == nil, 'ghost text shown while toggled off')
    feed('<Esc>')
    vim.cmd('SlmToggle on')
    log('SlmToggle ok')

    -- :checkhealth slm-ls
    vim.cmd('checkhealth slm-ls')
    sleep(200)
    local health
    for _, b in ipairs(api.nvim_list_bufs()) do
      if vim.bo[b].filetype == 'checkhealth' then
        health = buf_text(b)
      end
    end
    check(health, 'no checkhealth buffer')
    log('checkhealth:\n' .. health)
    check(health:find('model loaded: ', 1, true), 'checkhealth does not report the loaded model')
    check(health:find('binary: ', 1, true), 'checkhealth does not report the binary')
    check(not health:find('ERROR'), 'checkhealth reports an error')
  end

  finish(0, 'PASS')
end

co = coroutine.create(function()
  local ok, err = xpcall(main, debug.traceback)
  if not ok and not finished then
    finish(1, 'FAIL: ' .. tostring(err))
  end
end)
vim.schedule(function()
  local ok, err = coroutine.resume(co)
  if not ok and not finished then
    finish(1, 'FAIL: ' .. tostring(err))
  end
end)
