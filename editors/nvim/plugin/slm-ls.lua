-- Commands only; nothing starts until require('slm-ls').setup() is called.
if vim.g.loaded_slm_ls then
  return
end
vim.g.loaded_slm_ls = 1

vim.api.nvim_create_user_command('SlmStats', function()
  require('slm-ls').show_stats()
end, { desc = 'slm-ls: show server statistics' })

vim.api.nvim_create_user_command('SlmToggle', function(args)
  local on = nil
  if args.args == 'on' then
    on = true
  elseif args.args == 'off' then
    on = false
  end
  require('slm-ls').toggle(on)
end, {
  nargs = '?',
  complete = function()
    return { 'on', 'off' }
  end,
  desc = 'slm-ls: turn completions on/off',
})

vim.api.nvim_create_user_command('SlmExplain', function(args)
  require('slm-ls.explain').explain(args)
end, { range = true, desc = 'slm-ls: explain the selection (or the enclosing function)' })
