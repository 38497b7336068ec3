// The status bar's model: what the server is doing, from `slm-ls/stats` answers and the
// latency of the last inline completion. Pure, so it is unit-tested without VS Code.

export type ServerState = 'starting' | 'loading' | 'ready' | 'error' | 'stopped' | 'notFound';

export interface StatusModel {
  state: ServerState;
  enabled: boolean;
  model?: string;
  percent?: number;
  error?: string;
  lastLatencyMs?: number;
}

export function initialStatus(): StatusModel {
  return { state: 'starting', enabled: true };
}

/** Fold an `slm-ls/stats` result into the model. */
export function withStats(prev: StatusModel, stats: unknown): StatusModel {
  const next: StatusModel = { ...prev };
  const model = (stats as { model?: { name?: unknown; error?: unknown } } | null)?.model;
  if (model && typeof model.name === 'string') {
    next.state = 'ready';
    next.model = model.name;
    delete next.percent;
    delete next.error;
    return next;
  }
  const err = model && typeof model.error === 'string' ? model.error : undefined;
  if (err === undefined) {
    return next;
  }
  const loading = /still loading \((\d+)%\)/.exec(err);
  if (loading) {
    next.state = 'loading';
    next.percent = Number(loading[1]);
  } else if (/not loaded yet/.test(err)) {
    next.state = 'loading';
    next.percent = 0;
  } else {
    next.state = 'error';
    next.error = err.replace(/^slm-ls: /, '');
  }
  return next;
}

export function withLatency(prev: StatusModel, ms: number): StatusModel {
  return { ...prev, lastLatencyMs: Math.round(ms) };
}

/** Is the state one that changes by itself (worth polling)? */
export function isTransient(m: StatusModel): boolean {
  return m.state === 'starting' || m.state === 'loading';
}

export interface Rendered {
  text: string;
  tooltip: string;
  /** 'error' | 'warning' | undefined: the item's background. */
  severity?: 'error' | 'warning';
}

export function render(m: StatusModel): Rendered {
  const name = m.model ?? 'model';
  switch (m.state) {
    case 'starting':
      return { text: '$(loading~spin) slm-ls', tooltip: 'slm-ls: starting the server' };
    case 'loading':
      return {
        text: `$(loading~spin) slm-ls ${m.percent ?? 0}%`,
        tooltip: `slm-ls: loading the model (${m.percent ?? 0}%)`,
      };
    case 'stopped':
      return { text: '$(debug-stop) slm-ls', tooltip: 'slm-ls: the server is not running. Click for options.', severity: 'warning' };
    case 'notFound':
      return {
        text: '$(error) slm-ls',
        tooltip: `slm-ls: server binary not found. ${m.error ?? ''}`.trim(),
        severity: 'error',
      };
    case 'error':
      return { text: '$(error) slm-ls', tooltip: `slm-ls: ${m.error ?? 'error'}`, severity: 'error' };
    case 'ready': {
      if (!m.enabled) {
        return { text: '$(circle-slash) slm-ls', tooltip: `slm-ls: completions off (${name}). Click to turn on.` };
      }
      const lat = m.lastLatencyMs !== undefined ? ` ${m.lastLatencyMs} ms` : '';
      return {
        text: `$(sparkle) ${name}${lat}`,
        tooltip: `slm-ls: ready, model ${name}` + (m.lastLatencyMs !== undefined ? `, last suggestion in ${m.lastLatencyMs} ms` : ''),
      };
    }
  }
}

/** `slm-ls/stats` as a Markdown document. */
export function statsMarkdown(stats: unknown, client: Record<string, unknown>): string {
  const lines = ['# slm-ls stats', '', '| key | value |', '|---|---|'];
  const walk = (prefix: string, v: unknown): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) {
        walk(prefix ? `${prefix}.${k}` : k, x);
      }
    } else {
      lines.push(`| \`${prefix}\` | ${String(JSON.stringify(v)).replace(/\|/g, '\\|')} |`);
    }
  };
  walk('', stats);
  walk('client', client);
  return lines.join('\n') + '\n';
}
