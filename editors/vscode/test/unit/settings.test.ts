import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { buildServerSettings, cancelsSlowInlineSuggestions, configurationDefaults, configurationProperties, SETTINGS } from '../../src/settings';

const root = path.join(__dirname, '..', '..', '..');
const repo = path.join(root, '..', '..');

test('only settings the user set are sent, nested by their dotted keys', () => {
  const user: Record<string, unknown> = {
    'model.path': '/m.gguf',
    'completion.maxTokens': 12,
    'completion.server.model': 'qwen',
    serverPath: '/bin/slm-ls', // client-only: not sent
  };
  assert.deepEqual(buildServerSettings((k) => user[k]), {
    model: { path: '/m.gguf' },
    completion: { maxTokens: 12, server: { model: 'qwen' } },
  });
  assert.deepEqual(buildServerSettings(() => undefined), {});
});

test('null is sent only for nullable settings (to clear them)', () => {
  const s = buildServerSettings((k) => (k === 'model.path' || k === 'completion.maxTokens' ? null : undefined));
  assert.deepEqual(s, { model: { path: null } });
});

test('package.json contributes every setting of the table, generated from it', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert.deepEqual(pkg.contributes.configuration.properties, configurationProperties());
  for (const [key, p] of Object.entries(pkg.contributes.configuration.properties as Record<string, Record<string, unknown>>)) {
    assert.ok(String(p['markdownDescription'] ?? '').length > 10, `${key} has a description`);
  }
});

test('defaults are valid for their types and enums', () => {
  for (const s of SETTINGS) {
    if (s.default === null) {
      assert.ok(s.nullable, `${s.key}: null default needs nullable`);
      continue;
    }
    const t = Array.isArray(s.default) ? 'array' : typeof s.default;
    const want = s.type === 'integer' ? 'number' : s.type;
    assert.equal(t, want, `${s.key}: default ${JSON.stringify(s.default)} is not a ${s.type}`);
    if (s.enum) {
      assert.ok(s.enum.includes(String(s.default)), `${s.key}: default not in enum`);
    }
  }
});

// The server's settings structs, read from its source: every server option has a VS Code
// setting and every VS Code setting is a server option (catches drift in both directions).
function serverOptionPaths(): string[] | undefined {
  const files = ['server/src/config.rs', 'server/src/remote/config.rs'].map((f) => path.join(repo, f));
  if (!files.every((f) => fs.existsSync(f))) {
    return undefined;
  }
  const src = files.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  const structs = new Map<string, [string, string][]>();
  for (const m of src.matchAll(/pub struct (\w+) \{([\s\S]*?)\n\}/g)) {
    const fields: [string, string][] = [];
    for (const f of (m[2] ?? '').matchAll(/^\s*pub (\w+): ([\w:<>]+),/gm)) {
      fields.push([f[1] as string, f[2] as string]);
    }
    structs.set(m[1] as string, fields);
  }
  const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const out: string[] = [];
  const walk = (struct: string, prefix: string): void => {
    for (const [name, ty] of structs.get(struct) ?? []) {
      const key = prefix + camel(name);
      const inner = ty.split('::').pop() as string;
      if (structs.has(inner) && inner !== 'Config') {
        walk(inner, key + '.');
      } else {
        out.push(key);
      }
    }
  };
  walk('Config', '');
  return out;
}

test('the settings table matches the server settings structs', (t) => {
  const server = serverOptionPaths();
  if (!server) {
    t.skip('server sources not found next to the extension');
    return;
  }
  assert.ok(server.length > 20, `parsed ${server.length} server options`);
  const ours = SETTINGS.filter((s) => !s.clientOnly).map((s) => s.key);
  assert.deepEqual([...server].sort(), [...ours].sort());
});

test('package.json defaults editor.quickSuggestions to "on" for code, complete (VS Code does not merge its keys)', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert.deepEqual(pkg.contributes.configurationDefaults, configurationDefaults());
  assert.deepEqual(pkg.contributes.configurationDefaults['editor.quickSuggestions'], { other: 'on', comments: 'off', strings: 'off' });
  // Only that: no other editor default is changed behind the user's back.
  assert.deepEqual(Object.keys(pkg.contributes.configurationDefaults), ['editor.quickSuggestions']);
});

test('which quickSuggestions values cancel suggestions slower than 750 ms in code', () => {
  assert.equal(cancelsSlowInlineSuggestions({ other: 'offWhenInlineCompletions', comments: 'off', strings: 'off' }), true);
  assert.equal(cancelsSlowInlineSuggestions('offWhenInlineCompletions'), true);
  assert.equal(cancelsSlowInlineSuggestions({ other: 'on', comments: 'offWhenInlineCompletions' }), false);
  assert.equal(cancelsSlowInlineSuggestions({ other: 'on' }), false);
  assert.equal(cancelsSlowInlineSuggestions(true), false);
  assert.equal(cancelsSlowInlineSuggestions(false), false);
  assert.equal(cancelsSlowInlineSuggestions(undefined), false);
});
