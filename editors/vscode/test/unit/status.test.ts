import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { initialStatus, isTransient, render, statsMarkdown, withLatency, withStats } from '../../src/status';

test('stats answers drive the state', () => {
  let s = initialStatus();
  assert.ok(isTransient(s));
  s = withStats(s, { model: { error: 'slm-ls: the model is not loaded yet' } });
  assert.equal(s.state, 'loading');
  s = withStats(s, { model: { error: 'slm-ls: the model is still loading (40%)' } });
  assert.deepEqual([s.state, s.percent], ['loading', 40]);
  assert.match(render(s).text, /40%/);
  s = withStats(s, { model: { name: 'SmolLM2', fim: 'none', loadMs: 150 }, completion: {} });
  assert.deepEqual([s.state, s.model, s.percent], ['ready', 'SmolLM2', undefined]);
  assert.ok(!isTransient(s));
  s = withLatency(s, 123.4);
  assert.match(render(s).text, /SmolLM2 123 ms/);
  const failed = withStats(initialStatus(), { model: { error: 'slm-ls: no model: file missing' } });
  assert.deepEqual([failed.state, failed.error], ['error', 'no model: file missing']);
  assert.equal(render(failed).severity, 'error');
});

test('off is shown', () => {
  const s = { ...withStats(initialStatus(), { model: { name: 'M' } }), enabled: false };
  assert.match(render(s).tooltip, /off/);
});

test('stats render as a Markdown table', () => {
  const md = statsMarkdown({ model: { name: 'M|x' }, openDocuments: 2 }, { enabled: true });
  assert.match(md, /\| `model.name` \| "M\\\|x" \|/);
  assert.match(md, /\| `openDocuments` \| 2 \|/);
  assert.match(md, /\| `client.enabled` \| true \|/);
});
