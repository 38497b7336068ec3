import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { DOWNLOAD_MODEL, lastLine, offersModelFetch, rewriteFetchAdvice, shellWord } from '../../src/modelFetch';

// The server's messages (server/src/engine/mod.rs check_model_file, lsp/handlers.rs engine_failed).
const missing =
  'slm-ls: completions are off, the model did not load: model file /h/models/q.gguf cannot be read: No such file or directory (os error 2). ' +
  'Run `slm-ls models fetch` for the default model, or set model.path / SLM_LS_MODEL';
const notGguf = '/h/models/q.gguf is not a GGUF model file (it does not start with the GGUF magic); re-download it with `slm-ls models fetch`';
const configured =
  'the model file /x.gguf configured with model.path cannot be read: nope. Check the path: correct model.path in your editor\'s slm-ls settings, ' +
  'or remove it to use the default model (fetched with `slm-ls models fetch`)';

test('messages about the default model offer the download; others do not', () => {
  assert.ok(offersModelFetch(missing));
  assert.ok(offersModelFetch(notGguf));
  assert.ok(offersModelFetch(configured));
  assert.ok(!offersModelFetch('slm-ls internal error in didChange: boom'));
  assert.ok(!offersModelFetch('the explain model is not configured'));
});

test('the advice names the button and the exact binary it runs, and keeps the model.path advice', () => {
  const bin = '/home/u/.vscode/extensions/slm-ls.slm-ls-0.1.0/bin/linux-x64/slm-ls';
  const m = rewriteFetchAdvice(missing, bin);
  assert.equal(
    m,
    'slm-ls: completions are off, the model did not load: model file /h/models/q.gguf cannot be read: No such file or directory (os error 2). ' +
      `Click "${DOWNLOAD_MODEL}" (it runs \`${bin} models fetch\`) for the default model, or set model.path / SLM_LS_MODEL`,
  );
  assert.ok(!/`slm-ls models fetch`/.test(m));
  assert.match(rewriteFetchAdvice(notGguf, bin), new RegExp(`re-download it with "${DOWNLOAD_MODEL}" \\(it runs \`${bin} models fetch\`\\)$`));
  assert.match(rewriteFetchAdvice(configured, bin), /fetched with "Download Model" \(`\/home\/u\/.+\/slm-ls models fetch`\)\)$/);
  // Idempotent (the status bar text is rewritten on every update).
  assert.equal(rewriteFetchAdvice(m, bin), m);
  // Not found yet: the text stays as the server wrote it, plus the button.
  assert.match(rewriteFetchAdvice(missing, undefined), /Click "Download Model" \(it runs `slm-ls models fetch`\)/);
});

test('a binary path with spaces is quoted for the shell', () => {
  assert.equal(shellWord('/opt/slm-ls/bin/slm-ls'), '/opt/slm-ls/bin/slm-ls');
  assert.equal(shellWord('/Users/a b/slm-ls'), "'/Users/a b/slm-ls'");
  assert.equal(shellWord("/x/it's/slm-ls"), "'/x/it'\\''s/slm-ls'");
});

test('lastLine: the newest progress line', () => {
  assert.equal(lastLine('downloading ...\nverifying sha256 of q.gguf ...\n\n'), 'verifying sha256 of q.gguf ...');
  assert.equal(lastLine('a\r50%\r'), '50%');
  assert.equal(lastLine(''), '');
});
