// The extension's language-client wiring against the real slm-ls binary and default model, from
// Node (VS Code itself cannot run here). What is exercised is the extension's own code:
// resolveServer() finds the binary, buildServerSettings() produces the initializationOptions
// and didChangeConfiguration payloads, the initialize request carries the client capabilities
// vscode-languageclient 10 declares for the features used (inline completion, work-done
// progress, UTF-16), withStats() turns `slm-ls/stats` into the status bar state, and
// runExplain() streams an explain request. The editor-side rendering (ghost text, webview,
// status bar item) is VS Code's and is not run here.
import * as assert from 'node:assert/strict';
import * as cp from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import {
  createMessageConnection,
  MessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgress,
} from 'vscode-languageserver-protocol/node';

import { ExplainRpc, runExplain } from '../../src/explain';
import { StatsRequest } from '../../src/protocol';
import { resolveServer } from '../../src/serverPath';
import { buildServerSettings, SETTINGS } from '../../src/settings';
import { initialStatus, StatusModel, withStats } from '../../src/status';

const repo = path.join(__dirname, '..', '..', '..', '..', '..');
const configured = process.env['SLM_LS_BIN'] ?? path.join(repo, 'target', 'release', 'slm-ls');

let proc: cp.ChildProcess;
let conn: MessageConnection;
const logs: { type: number; message: string }[] = [];
const shown: { type: number; message: string }[] = [];
let stderr = '';

/** Every setting at its default, as if the user had set each one explicitly. */
const allDefaults = buildServerSettings((k) => SETTINGS.find((s) => s.key === k)?.default ?? undefined);

async function waitFor<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined) {
      return v;
    }
    if (Date.now() - t0 > ms) {
      throw new Error(`timed out waiting for ${what}; server stderr:\n${stderr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  const r = resolveServer({
    configured,
    extensionPath: path.join(__dirname, '..', '..', '..'),
    platform: process.platform,
    arch: process.arch,
    envPath: process.env['PATH'] ?? '',
    home: os.homedir(),
  });
  assert.equal(r.source, 'setting');
  proc = cp.spawn(r.command, [], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  conn.onRequest('window/workDoneProgress/create', () => null);
  conn.onNotification('window/logMessage', (p: { type: number; message: string }) => {
    logs.push(p);
  });
  conn.onNotification('window/showMessage', (p: { type: number; message: string }) => {
    shown.push(p);
  });
  conn.listen();
});

after(async () => {
  if (conn) {
    try {
      await conn.sendRequest('shutdown');
      await conn.sendNotification('exit');
    } catch {
      // the server is gone already
    }
    conn.dispose();
  }
  if (proc && proc.exitCode === null) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve();
      }, 5000);
      proc.on('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
});

test('initialize with the extension settings and the language client capabilities', async () => {
  const result = (await conn.sendRequest('initialize', {
    processId: process.pid,
    clientInfo: { name: 'Visual Studio Code', version: '1.91.0' },
    rootUri: `file://${repo}`,
    workspaceFolders: [{ uri: `file://${repo}`, name: 'slm-ls' }],
    capabilities: {
      general: { positionEncodings: ['utf-16'] },
      window: { workDoneProgress: true },
      workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: true }, executeCommand: { dynamicRegistration: true } },
      textDocument: {
        synchronization: { dynamicRegistration: true, didSave: true },
        inlineCompletion: { dynamicRegistration: true },
        completion: { completionItem: { snippetSupport: true } },
      },
    },
    initializationOptions: allDefaults,
  })) as { capabilities: Record<string, unknown>; serverInfo?: { name: string } };
  const caps = result.capabilities;
  assert.equal(result.serverInfo?.name, 'slm-ls');
  assert.equal(caps['positionEncoding'], 'utf-16', 'VS Code speaks UTF-16');
  assert.ok(caps['inlineCompletionProvider'], 'inline completion is registered statically');
  const cmds = (caps['executeCommandProvider'] as { commands: string[] }).commands;
  assert.ok(cmds.includes('slm-ls.explain'));
  await conn.sendNotification('initialized', {});
});

test('the status bar reaches "ready" through slm-ls/stats', async () => {
  let status: StatusModel = initialStatus();
  await waitFor('the model to load', 120000, async () => {
    status = withStats(status, await conn.sendRequest(StatsRequest));
    assert.notEqual(status.state, 'error', status.error);
    return status.state === 'ready' ? true : undefined;
  });
  assert.ok(status.model && status.model.length > 0);
  // Every setting sent at its default value was accepted.
  const bad = [...logs, ...shown].filter((m) => /invalid slm-ls settings/.test(m.message));
  assert.deepEqual(bad, []);
});

const uri = 'file:///tmp/slm-ls-vscode-it/fib.py';
// A non-ASCII character before the cursor: positions are UTF-16 code units.
const text = 'def fibonacci(n):\n    """Fibonacci — the n-th number."""\n    if n < 2:\n        return n\n    return fib';
const cursor = { line: 4, character: '    return fib'.length };

test('inline completion at the cursor (what the ghost text shows)', async () => {
  await conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'python', version: 1, text } });
  type Items = { items: { insertText: string; range: unknown; command?: { command: string } }[] };
  const ask = async (): Promise<Items> =>
    (await conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri }, position: cursor, context: { triggerKind: 1 } })) as Items;
  let r = await ask();
  if (r.items.length === 0) {
    // The first request after a cold start may hit completion.maxTimeMs on a
    // busy machine, and a line cut short is never shown; an editor asks again
    // on the next keystroke, which finds the prompt cached.
    r = await ask();
  }
  assert.equal(r.items.length, 1);
  const item = r.items[0]!;
  assert.ok(item.insertText.trim().length > 0, 'the model suggested nothing');
  assert.deepEqual(item.range, { start: cursor, end: cursor });
  assert.equal(item.command?.command, 'slm-ls.accepted');
});

test('didChangeConfiguration: completion.enabled=false turns suggestions off, true back on', async () => {
  await conn.sendNotification('workspace/didChangeConfiguration', { settings: { ...allDefaults, completion: { enabled: false } } });
  const off = (await conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri }, position: cursor, context: { triggerKind: 1 } })) as
    | { items: unknown[] }
    | null;
  assert.ok(off === null || off.items.length === 0, `expected nothing, got ${JSON.stringify(off)}`);
  await conn.sendNotification('workspace/didChangeConfiguration', { settings: buildServerSettings((k) => (k === 'completion.maxTokens' ? 16 : undefined)) });
  const on = (await conn.sendRequest('textDocument/inlineCompletion', { textDocument: { uri }, position: cursor, context: { triggerKind: 1 } })) as {
    items: { insertText: string }[];
  };
  assert.ok(on.items[0]!.insertText.length > 0);
  assert.deepEqual(shown.filter((m) => m.type === 1), [], 'no error shown to the user');
});

test('explain: a request with a work-done token ends in Markdown (answer or clear error)', async () => {
  const rpc: ExplainRpc = {
    sendRequest: (method, params) => conn.sendRequest(method, params),
    onProgress: (token, handler) => conn.onProgress(WorkDoneProgress.type, token, (v) => handler(v as { kind?: string; message?: string })),
  };
  const updates: [string, boolean][] = [];
  const out = await runExplain(rpc, { uri, range: { start: { line: 0, character: 0 }, end: { line: 3, character: 0 } } }, (t, d) => updates.push([t, d]));
  assert.ok(out.markdown.length > 0);
  assert.equal(updates.at(-1)?.[1], true, 'the panel gets a final update');
  if (!out.ok) {
    // No remote model is configured in CI: the message must say so.
    assert.match(out.markdown, /remote/i, out.markdown);
  }
  assert.equal(proc.exitCode, null, 'the server is still up');
});

test('explain streams into the panel from an OpenAI-compatible provider (a local stand-in)', async () => {
  const fake = cp.spawn('python3', [path.join(repo, 'editors', 'tests', 'fake_openai.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<string>((resolve, reject) => {
      fake.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
      fake.once('error', reject);
    });
    const answer = cp.execFileSync('python3', [path.join(repo, 'editors', 'tests', 'fake_openai.py'), '--answer']).toString();
    // What the extension sends when the user sets slm-ls.remote.* in the settings UI.
    const user: Record<string, unknown> = {
      'remote.provider': 'openai',
      'remote.endpoint': `http://127.0.0.1:${port}`,
      'remote.model': 'fake-explainer',
      'remote.apiKeyEnv': '',
    };
    await conn.sendNotification('workspace/didChangeConfiguration', { settings: buildServerSettings((k) => user[k]) });
    // The server's code action on a selection carries the command the middleware routes to the panel.
    const range = { start: { line: 0, character: 0 }, end: { line: 3, character: 0 } };
    const actions = (await conn.sendRequest('textDocument/codeAction', {
      textDocument: { uri },
      range,
      context: { diagnostics: [], triggerKind: 1 },
    })) as { title: string; command?: { command: string; arguments: unknown[] } }[] | null;
    const act = (actions ?? []).find((a) => a.command?.command === 'slm-ls.explain');
    assert.ok(act, `no explain code action: ${JSON.stringify(actions)}`);
    assert.match(act.title, /fake-explainer/);
    const args = act.command!.arguments[0] as { uri: string; range: typeof range };
    const rpc: ExplainRpc = {
      sendRequest: (method, params) => conn.sendRequest(method, params),
      onProgress: (token, handler) => conn.onProgress(WorkDoneProgress.type, token, (v) => handler(v as { kind?: string; message?: string })),
    };
    const updates: [string, boolean][] = [];
    const out = await runExplain(rpc, { uri: args.uri, range: args.range }, (t, d) => updates.push([t, d]));
    assert.ok(out.ok, out.markdown);
    assert.equal(out.markdown, answer);
    assert.ok(out.reports >= 2, `streamed ${out.reports} reports`);
    const partial = updates.filter(([t, done]) => !done && t !== answer && answer.startsWith(t));
    assert.ok(partial.length >= 2, `the panel showed partial answers first: ${JSON.stringify(updates)}`);
    assert.deepEqual(updates.at(-1), [answer, true]);
  } finally {
    fake.kill();
  }
});
