// Every server option the extension exposes, in one table: the source of `package.json`'s
// `contributes.configuration` (scripts/gen-config.js writes it; a unit test keeps them equal)
// and of the settings object sent to the server (`initializationOptions` and
// `workspace/didChangeConfiguration`). Keys are the server's JSON paths (camelCase), so
// `slm-ls.model.path` in VS Code is `{ "model": { "path": ... } }` for the server.
//
// Only values the user has set are sent: the server's own defaults stay the single truth
// (`default` here is what VS Code shows, and equals the server's default).

export type SettingType = 'string' | 'number' | 'integer' | 'boolean' | 'array';

export interface SettingSpec {
  /** Path under `slm-ls.` in VS Code, and the server's JSON path. */
  key: string;
  type: SettingType;
  /** null: unset (server decides). */
  default: string | number | boolean | null | string[];
  description: string;
  enum?: string[];
  minimum?: number;
  /** Client-side only: not sent to the server. */
  clientOnly?: boolean;
  /** Stored as `null` when unset (VS Code type ["string","null"]). */
  nullable?: boolean;
}

export const SETTINGS: SettingSpec[] = [
  // --- Client (not sent to the server) ---
  {
    key: 'serverPath', type: 'string', default: '', clientOnly: true,
    description: 'Path to the slm-ls binary. Empty: the binary bundled with the extension, else `slm-ls` on PATH.',
  },
  {
    key: 'serverArgs', type: 'array', default: [], clientOnly: true,
    description: 'Extra command-line arguments for the server (e.g. ["--model", "/path/to/model.gguf"]).',
  },
  {
    key: 'inlineCompletion.enabled', type: 'boolean', default: true, clientOnly: true,
    description: 'Show ghost-text suggestions while typing (turn off to use slm-ls only through the completion menu).',
  },
  // --- model ---
  {
    key: 'model.path', type: 'string', default: null, nullable: true,
    description: 'Path to a GGUF model. Unset: $SLM_LS_MODEL, then the default model downloaded by `slm-ls models fetch`.',
  },
  { key: 'model.threads', type: 'integer', default: 0, minimum: 0, description: 'CPU threads for decoding; 0 = all cores.' },
  { key: 'model.contextTokens', type: 'integer', default: 2048, minimum: 256, description: 'Context window per cached document, in tokens.' },
  {
    key: 'model.batchSize', type: 'integer', default: 64, minimum: 1,
    description: 'Tokens per decode call during prefill. Smaller: faster cancellation; larger: better throughput.',
  },
  { key: 'model.gpuLayers', type: 'integer', default: 0, minimum: 0, description: 'Layers offloaded to a GPU (needs a CUDA/Vulkan/Metal build of slm-ls).' },
  { key: 'model.cacheSlots', type: 'integer', default: 4, minimum: 1, description: 'How many documents keep their own KV cache (least recently used is evicted).' },
  {
    key: 'model.cacheReuseMinChunk', type: 'integer', default: 16, minimum: 0,
    description: 'Minimum run of matching tokens shifted instead of re-evaluated after an edit mid-prompt; 0 disables chunk reuse.',
  },
  { key: 'model.cacheReuse', type: 'boolean', default: true, description: 'Reuse the KV cache between requests (turn off only to debug suspected cache bugs).' },
  {
    key: 'model.fimFormat', type: 'string', default: 'auto',
    enum: ['auto', 'none', 'starcoder', 'codellama', 'deepseek', 'qwen', 'codestral', 'codegemma'],
    description: 'Fill-in-the-middle prompt format; "auto" detects it from the model, "none" continues the prefix only.',
  },
  { key: 'model.draft', type: 'string', default: '', description: 'A smaller model of the same vocabulary that drafts tokens for this one (speculative decoding: the same suggestions, fewer sequential steps): a name from `slm-ls models list` (qwen2.5-coder-0.5b for the 1.5B) or a GGUF path. Empty: none.' },
  { key: 'model.draftMax', type: 'integer', default: 6, minimum: 1, description: 'Most tokens the draft model proposes per step (it stops earlier where it is unsure).' },
  { key: 'model.fimSpm', type: 'boolean', default: true, description: 'Models trained on both FIM orders (Qwen2.5-Coder, StarCoder): suffix first, prefix last, so typing and Enter only append to the cached prompt (right more often on the quality bench too). Off: prefix first (PSM).' },
  { key: 'model.fimLineInMiddle', type: 'boolean', default: false, description: 'FIM models: put the typed part of the cursor line after the middle marker (exact KV reuse while typing on a line; measured to answer worse with Qwen2.5-Coder).' },
  // --- completion ---
  { key: 'completion.enabled', type: 'boolean', default: true, description: 'Serve completions (the "slm-ls: Toggle" command flips this).' },
  { key: 'completion.maxTokens', type: 'integer', default: 48, minimum: 1, description: 'Upper bound on generated tokens per suggestion.' },
  { key: 'completion.maxTimeMs', type: 'integer', default: 3000, minimum: 1, description: 'Wall-clock budget for generating one suggestion (prefill excluded), in milliseconds. A suggestion it cuts short is shown only up to its last complete line.' },
  { key: 'completion.loadWaitMs', type: 'integer', default: 5000, minimum: 0, description: 'While the model loads, how long a completion request waits for it before an empty answer, in milliseconds.' },
  { key: 'completion.multiline', type: 'boolean', default: true, description: 'Allow multi-line suggestions (block bodies); otherwise one line.' },
  {
    key: 'completion.typedAhead', type: 'boolean', default: true,
    description: 'Serve the rest of a shown suggestion from a cache while you type its first characters.',
  },
  {
    key: 'completion.draftTokens', type: 'integer', default: 8, minimum: 0,
    description: 'Speculative decoding: tokens drafted per step from text already seen; 0 turns it off (output is the same).',
  },
  {
    key: 'completion.backend', type: 'string', default: 'local', enum: ['local', 'llama-server', 'openai', 'ollama'],
    description: 'Where completions come from: the in-process model, or a team inference server (llama-server /infill, OpenAI-compatible /v1/completions, Ollama /api/generate).',
  },
  {
    key: 'completion.server.endpoint', type: 'string', default: null, nullable: true,
    description: 'Base URL of the inference server for a non-local backend. Unset: the backend\'s usual local port.',
  },
  { key: 'completion.server.model', type: 'string', default: '', description: 'Model name on the inference server (OpenAI-compatible servers and Ollama).' },
  {
    key: 'completion.server.apiKeyEnv', type: 'string', default: null, nullable: true,
    description: 'Name of the environment variable holding the inference server\'s bearer token (never the token itself).',
  },
  { key: 'completion.server.timeoutMs', type: 'integer', default: 5000, minimum: 1, description: 'Timeout for the inference server, in milliseconds.' },
  {
    key: 'completion.server.fimFormat', type: 'string', default: '',
    enum: ['', 'qwen', 'starcoder', 'deepseek', 'codellama', 'codestral', 'codegemma'],
    description: 'OpenAI-compatible backend: build the FIM prompt client-side with this model family\'s tokens (for servers that reject `suffix`).',
  },
  // --- context ---
  { key: 'context.prefixTokens', type: 'integer', default: 384, minimum: 0, description: 'Token budget for the text before the cursor.' },
  { key: 'context.suffixTokens', type: 'integer', default: 384, minimum: 0, description: 'Token budget for the text after the cursor (FIM models only; with model.fimSpm evaluated once per place, not per keystroke).' },
  { key: 'context.extraTokens', type: 'integer', default: 128, minimum: 0, description: 'Token budget for the prompt head: definitions of names used near the cursor, recently edited code and similar code from open files (never secret-looking files).' },
  { key: 'context.comments', type: 'boolean', default: false, description: 'Also suggest inside comments (off: no request there).' },
  { key: 'context.naive', type: 'boolean', default: false, description: 'Benchmark floor (plain FIM): a plain window of the same token budgets, no healing, no cross-file snippets, no skipping, no post-processing.' },
  { key: 'context.fileFrame', type: 'boolean', default: false, description: 'Models with repository-level tokens (Qwen2.5-Coder, StarCoder2): start the prompt with the file\'s relative path after the file separator, as in their repository-level training and llama-server\'s /infill (off until the quality bench shows it helps).' },
  { key: 'context.heal', type: 'boolean', default: true, description: 'Token healing: leave the space, tab or punctuation character before the cursor out of the prompt and have the model write it first (for measuring it; leave on).' },
  { key: 'context.workspace', type: 'boolean', default: true, description: 'Index the workspace folder in the background so definitions from files you never opened reach the prompt (never secret-looking or ignored files). Off: only open files are read.' },
  // --- remote (explain) ---
  {
    key: 'remote.provider', type: 'string', default: 'openai', enum: ['openai', 'anthropic', 'ollama'],
    description: 'Wire format of the explain model: OpenAI-compatible chat completions (also vLLM, llama-server, LM Studio), Anthropic Messages, or Ollama.',
  },
  { key: 'remote.endpoint', type: 'string', default: null, nullable: true, description: 'Base URL of the explain provider. Unset: the provider\'s public endpoint (Ollama: the local daemon).' },
  { key: 'remote.model', type: 'string', default: '', description: 'Model name for "Explain". Empty: explain is off.' },
  {
    key: 'remote.apiKeyEnv', type: 'string', default: null, nullable: true,
    description: 'Name of the environment variable with the API key (never the key itself). Unset: OPENAI_API_KEY / ANTHROPIC_API_KEY; "" sends no key.',
  },
  { key: 'remote.timeoutMs', type: 'integer', default: 30000, minimum: 1, description: 'Explain: connect timeout and longest wait for streamed data, in milliseconds.' },
  { key: 'remote.maxTokens', type: 'integer', default: 1024, minimum: 1, description: 'Explain: upper bound on the answer length, in tokens.' },
  { key: 'remote.neverSend', type: 'array', default: [], description: 'Glob patterns of files never sent to a remote model (in addition to the built-in list: .env, keys, ...).' },
  { key: 'remote.pricePer1kTokens', type: 'number', default: 0.002, minimum: 0, description: 'Price of 1000 remote tokens, for the cost figures in the stats.' },
  { key: 'remote.maxRetries', type: 'integer', default: 2, minimum: 0, description: 'Explain: retries after a 429 or 5xx answer, with backoff.' },
];

export const SECTION = 'slm-ls';

/** Set `value` at the dotted `path` inside `obj`. */
function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      cur[p] = {};
    }
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = value;
}

/**
 * The settings object for the server. `userValue(key)` returns what the user set for
 * `slm-ls.<key>` (any scope), or undefined when unset.
 */
export function buildServerSettings(userValue: (key: string) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    if (s.clientOnly) {
      continue;
    }
    const v = userValue(s.key);
    if (v === undefined) {
      continue;
    }
    if (v === null && !s.nullable) {
      continue;
    }
    setPath(out, s.key, v);
  }
  return out;
}

/** `contributes.configuration.properties` for package.json. */
export function configurationProperties(): Record<string, Record<string, unknown>> {
  const props: Record<string, Record<string, unknown>> = {};
  for (const s of SETTINGS) {
    const p: Record<string, unknown> = {
      type: s.nullable ? [s.type, 'null'] : s.type,
      default: s.default,
      markdownDescription: s.description,
    };
    if (s.type === 'array') {
      p['items'] = { type: 'string' };
    }
    if (s.enum) {
      p['enum'] = s.enum;
    }
    if (s.minimum !== undefined) {
      p['minimum'] = s.minimum;
    }
    // One server process serves every folder, so settings are per window, not per folder.
    p['scope'] = s.clientOnly && s.key.startsWith('server') ? 'machine-overridable' : 'window';
    props[`${SECTION}.${s.key}`] = p;
  }
  props[`${SECTION}.trace.server`] = {
    type: 'string',
    enum: ['off', 'messages', 'verbose'],
    default: 'off',
    markdownDescription: 'Log the LSP messages between VS Code and slm-ls to the "slm-ls" output channel.',
    scope: 'window',
  };
  return props;
}

/**
 * VS Code's `editor.quickSuggestions` as slm-ls needs it, contributed as a *default*
 * (`contributes.configurationDefaults`, written by scripts/gen-config.js): a value the user set
 * (user, workspace or language settings) still wins, key by key.
 *
 * Why: VS Code's own default (1.139) is `{ other: "offWhenInlineCompletions", comments: "off",
 * strings: "off" }`. With "offWhenInlineCompletions", after each keystroke the suggest model
 * (`SuggestModel._waitForInlineCompletionsAndTrigger` in VS Code) waits for the inline
 * completion being fetched; at 750 ms it calls `stop("automatic")` on the inline completions
 * model, which cancels the request, and opens the suggest widget instead. A local model that
 * needs longer than 750 ms (the default model on a 2-core machine: 0.8-1.1 s) then never shows
 * ghost text. "on" (VS Code's default before "offWhenInlineCompletions") triggers the suggest
 * widget at once and leaves the inline request alone. VS Code merges no object keys here (the
 * setting's schema is `anyOf`), so all three keys are given; comments and strings stay "off".
 */
export const QUICK_SUGGESTIONS_DEFAULT = { other: 'on', comments: 'off', strings: 'off' } as const;

/** VS Code's quick-suggest wait for inline completions before it cancels them, in ms. */
export const QUICK_SUGGEST_INLINE_WAIT_MS = 750;

/** `contributes.configurationDefaults` for package.json. */
export function configurationDefaults(): Record<string, unknown> {
  return { 'editor.quickSuggestions': { ...QUICK_SUGGESTIONS_DEFAULT } };
}

/**
 * Whether an effective `editor.quickSuggestions` value (as VS Code returns it for a document)
 * cancels inline suggestions slower than 750 ms in code (the `other` token type, where slm-ls
 * suggests; comments and strings are off by default).
 */
export function cancelsSlowInlineSuggestions(value: unknown): boolean {
  if (value === 'offWhenInlineCompletions') {
    return true;
  }
  if (value !== null && typeof value === 'object') {
    return (value as Record<string, unknown>)['other'] === 'offWhenInlineCompletions';
  }
  return false;
}
