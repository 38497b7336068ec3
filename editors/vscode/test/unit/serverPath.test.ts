import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';

import { resolveServer, ServerNotFound } from '../../src/serverPath';

const base = { extensionPath: '/ext', platform: 'linux' as NodeJS.Platform, arch: 'x64', envPath: '/usr/bin:/opt/bin', home: '/home/u' };

test('the setting wins, with ~ expanded', () => {
  const r = resolveServer({ ...base, configured: '~/bin/slm-ls', isExecutable: (p) => p === '/home/u/bin/slm-ls' });
  assert.deepEqual(r, { command: '/home/u/bin/slm-ls', source: 'setting' });
});

test('a wrong setting is an error that names the path and the fix', () => {
  assert.throws(
    () => resolveServer({ ...base, configured: '/nope/slm-ls', isExecutable: () => true && false }),
    (e: unknown) => e instanceof ServerNotFound && /\/nope\/slm-ls/.test(e.message) && /serverPath/.test(e.message),
  );
});

test('bundled binary (platform-specific first), then PATH', () => {
  const bundled = path.join('/ext', 'bin', 'linux-x64', 'slm-ls');
  assert.equal(resolveServer({ ...base, configured: '', isExecutable: (p) => p === bundled || p === '/opt/bin/slm-ls' }).source, 'bundled');
  const r = resolveServer({ ...base, configured: '', isExecutable: (p) => p === '/opt/bin/slm-ls' });
  assert.deepEqual(r, { command: '/opt/bin/slm-ls', source: 'path' });
  const w = resolveServer({ ...base, platform: 'win32', envPath: 'C:\\a;C:\\b', configured: '', isExecutable: (p) => p === path.join('C:\\b', 'slm-ls.exe') });
  assert.equal(w.command, path.join('C:\\b', 'slm-ls.exe'));
  assert.equal(w.source, 'path');
});

test('not found anywhere: the message says how to build and configure it', () => {
  try {
    resolveServer({ ...base, configured: '', isExecutable: () => false });
    assert.fail('expected ServerNotFound');
  } catch (e) {
    assert.ok(e instanceof ServerNotFound);
    assert.match(e.message, /cargo build --release/);
    assert.match(e.message, /slm-ls\.serverPath/);
    assert.ok(e.tried.includes('/usr/bin/slm-ls'));
  }
});
