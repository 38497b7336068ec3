import * as assert from 'node:assert/strict';
import { test } from 'node:test';

import { ExplainRpc, mergeReport, resultText, runExplain } from '../../src/explain';

test('reports carrying the text so far or only a delta both merge', () => {
  assert.equal(mergeReport('', 'The'), 'The');
  assert.equal(mergeReport('The', 'The code'), 'The code');
  assert.equal(mergeReport('The code', ' adds'), 'The code adds');
});

test('result shapes', () => {
  assert.equal(resultText('# x'), '# x');
  assert.equal(resultText({ markdown: 'm' }), 'm');
  assert.equal(resultText(null), undefined);
  assert.match(resultText({ other: 1 }) ?? '', /```json/);
});

function fakeRpc(reports: string[], outcome: { result?: unknown; error?: string }): ExplainRpc & { params?: unknown } {
  const rpc: ExplainRpc & { params?: unknown } = {
    onProgress(_token, handler) {
      this.handler = handler;
      return { dispose: () => undefined };
    },
    async sendRequest(_method, params) {
      rpc.params = params;
      for (const r of reports) {
        (rpc as unknown as { handler: (v: unknown) => void }).handler({ kind: 'report', message: r });
      }
      if (outcome.error) {
        throw new Error(outcome.error);
      }
      return outcome.result;
    },
  } as ExplainRpc & { params?: unknown; handler?: unknown };
  return rpc;
}

test('streams reports, then the result replaces them', async () => {
  const seen: [string, boolean][] = [];
  const rpc = fakeRpc(['Adds', 'Adds two', 'Adds two numbers.'], { result: 'Adds two numbers.\n' });
  const range = { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } };
  const out = await runExplain(rpc, { uri: 'file:///a.py', range }, (t, d) => seen.push([t, d]));
  assert.deepEqual(seen, [['Adds', false], ['Adds two', false], ['Adds two numbers.', false], ['Adds two numbers.\n', true]]);
  assert.deepEqual(out, { ok: true, markdown: 'Adds two numbers.\n', reports: 3 });
  const p = rpc.params as { command: string; arguments: unknown[]; workDoneToken: string };
  assert.equal(p.command, 'slm-ls.explain');
  assert.deepEqual(p.arguments, [{ uri: 'file:///a.py', range }]);
  assert.match(p.workDoneToken, /^slm-ls\/explain\//);
});

test('an error becomes a Markdown message, not an exception', async () => {
  let last = '';
  const out = await runExplain(fakeRpc([], { error: 'no remote model is configured' }), {
    uri: 'file:///a.py', range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
  }, (t) => (last = t));
  assert.equal(out.ok, false);
  assert.match(last, /could not explain/);
  assert.match(last, /no remote model is configured/);
});
