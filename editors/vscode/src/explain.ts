// Explain: `workspace/executeCommand` `slm-ls.explain` with a work-done token; the server
// streams the answer as `$/progress` reports and returns the full Markdown as the result.
// Written against a small RPC interface so the same code runs on a LanguageClient (in VS Code)
// and on a raw JSON-RPC connection (the Node integration test).

export interface Disposable {
  dispose(): void;
}

export interface ExplainRpc {
  sendRequest(method: string, params: unknown): Promise<unknown>;
  /** Subscribe to `$/progress` values for `token`. */
  onProgress(token: string, handler: (value: { kind?: string; message?: string }) => void): Disposable;
}

export interface LspRange {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

export interface ExplainOutcome {
  ok: boolean;
  markdown: string;
  /** How many streamed reports arrived before the result. */
  reports: number;
}

/** Reports may carry the whole answer so far or only the newest piece; accept both. */
export function mergeReport(soFar: string, message: string): string {
  if (soFar === '' || message.startsWith(soFar)) {
    return message;
  }
  return soFar + message;
}

export function resultText(result: unknown): string | undefined {
  if (typeof result === 'string') {
    return result;
  }
  if (result && typeof result === 'object') {
    for (const k of ['markdown', 'text', 'value', 'contents', 'explanation']) {
      const v = (result as Record<string, unknown>)[k];
      if (typeof v === 'string') {
        return v;
      }
    }
    return '```json\n' + JSON.stringify(result, null, 2) + '\n```\n';
  }
  return undefined;
}

export function errorMarkdown(message: string): string {
  return [
    '**slm-ls could not explain this code.**',
    '',
    message,
    '',
    '_Explain uses a remote model: set `slm-ls.remote.model` (and `slm-ls.remote.provider`, ' +
      '`slm-ls.remote.endpoint`) in the settings. See the extension README, "Explain"._',
  ].join('\n');
}

let seq = 0;

export function newToken(): string {
  seq += 1;
  return `slm-ls/explain/vscode/${process.pid}/${seq}`;
}

/**
 * Run one explain request. `onText` gets the Markdown so far on every streamed report and the
 * final Markdown (done = true) at the end; errors become a Markdown message, never a throw.
 */
export async function runExplain(
  rpc: ExplainRpc,
  args: { uri: string; range: LspRange },
  onText: (markdown: string, done: boolean) => void,
): Promise<ExplainOutcome> {
  const token = newToken();
  let streamed = '';
  let reports = 0;
  let done = false;
  const sub = rpc.onProgress(token, (value) => {
    if (done || value.kind !== 'report' || typeof value.message !== 'string' || value.message === '') {
      return;
    }
    reports += 1;
    streamed = mergeReport(streamed, value.message);
    onText(streamed, false);
  });
  try {
    const result = await rpc.sendRequest('workspace/executeCommand', {
      command: 'slm-ls.explain',
      arguments: [args],
      workDoneToken: token,
    });
    done = true;
    const text = resultText(result) ?? streamed;
    const markdown = text === '' ? '_The model returned an empty answer._' : text;
    onText(markdown, true);
    return { ok: true, markdown, reports };
  } catch (e) {
    done = true;
    const msg = e instanceof Error ? e.message : String((e as { message?: unknown })?.message ?? e);
    const markdown = errorMarkdown(msg);
    onText(markdown, true);
    return { ok: false, markdown, reports };
  } finally {
    sub.dispose();
  }
}
