// slm-ls for VS Code: starts the server with vscode-languageclient, which shows its
// `textDocument/inlineCompletion` answers as ghost text (a standard feature of
// vscode-languageclient 10, LSP 3.18). This file is the VS Code glue; the logic lives in
// settings.ts, serverPath.ts, status.ts and explain.ts (unit- and integration-tested in Node).
import { spawn } from 'child_process';
import * as os from 'os';
import * as vscode from 'vscode';
import {
  CompletionRequest,
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  MessageType,
  RevealOutputChannelOn,
  ServerOptions,
  ShowMessageNotification,
  ShowMessageParams,
  State,
  WorkDoneProgress,
} from 'vscode-languageclient/node';

import { ExplainRpc, runExplain } from './explain';
import { DOWNLOAD_MODEL, lastLine, offersModelFetch, rewriteFetchAdvice } from './modelFetch';
import { StatsRequest } from './protocol';
import { fixBundledPermissions, resolveServer, ServerNotFound } from './serverPath';
import { buildServerSettings, cancelsSlowInlineSuggestions, QUICK_SUGGEST_INLINE_WAIT_MS, SECTION } from './settings';
import { initialStatus, isTransient, render, statsMarkdown, StatusModel, withLatency, withStats } from './status';

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let statusItem: vscode.StatusBarItem;
let status: StatusModel = initialStatus();
let pollTimer: NodeJS.Timeout | undefined;
let enabled = true;
let extensionPath = '';
/** The server binary in use (for `models fetch`), once found. */
let serverCommand: string | undefined;
let fetching: Promise<void> | undefined;
let toldAboutQuickSuggestions = false;

function cfg(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

/** What the user set (any scope) for `slm-ls.<key>`, or undefined. */
function userValue(key: string): unknown {
  const i = cfg().inspect(key);
  if (!i) {
    return undefined;
  }
  return i.workspaceFolderValue ?? i.workspaceValue ?? i.globalValue;
}

function serverSettings(): Record<string, unknown> {
  const s = buildServerSettings(userValue);
  if (!enabled) {
    const completion = (s['completion'] as Record<string, unknown> | undefined) ?? {};
    completion['enabled'] = false;
    s['completion'] = completion;
  }
  return s;
}

function setStatus(next: StatusModel): void {
  status = { ...next, enabled };
  if (status.error && offersModelFetch(status.error)) {
    status.error = rewriteFetchAdvice(status.error, serverCommand);
  }
  const r = render(status);
  statusItem.text = r.text;
  statusItem.tooltip = r.tooltip;
  statusItem.backgroundColor =
    r.severity === 'error'
      ? new vscode.ThemeColor('statusBarItem.errorBackground')
      : r.severity === 'warning'
        ? new vscode.ThemeColor('statusBarItem.warningBackground')
        : undefined;
  statusItem.show();
}

async function refreshStatus(): Promise<unknown> {
  if (!client || client.state !== State.Running) {
    return undefined;
  }
  try {
    const stats = await client.sendRequest(StatsRequest);
    setStatus(withStats(status, stats));
    return stats;
  } catch (e) {
    output.appendLine(`slm-ls/stats failed: ${String(e)}`);
    return undefined;
  }
}

/** Poll `slm-ls/stats` while the model loads (the load progress also shows as a notification). */
function pollWhileLoading(): void {
  if (pollTimer) {
    clearTimeout(pollTimer);
  }
  const tick = async (): Promise<void> => {
    await refreshStatus();
    if (isTransient(status) && client) {
      pollTimer = setTimeout(() => void tick(), 500);
    } else {
      pollTimer = undefined;
    }
  };
  pollTimer = setTimeout(() => void tick(), 200);
}

/** A side panel that shows Markdown (rendered by VS Code's built-in Markdown extension). */
class MarkdownPanel {
  private panel: vscode.WebviewPanel | undefined;
  private pending: string | undefined;
  private rendering = false;

  constructor(private readonly viewType: string) {}

  show(title: string, markdown: string): void {
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel(this.viewType, title, {
        viewColumn: vscode.ViewColumn.Beside,
        preserveFocus: true,
      }, { enableScripts: false });
      this.panel.onDidDispose(() => (this.panel = undefined));
    } else {
      this.panel.title = title;
      this.panel.reveal(vscode.ViewColumn.Beside, true);
    }
    this.update(markdown);
  }

  /** Coalesces updates: while one render runs, only the newest text waits. */
  update(markdown: string): void {
    this.pending = markdown;
    if (!this.rendering) {
      void this.flush();
    }
  }

  /**
   * Renders with VS Code's built-in Markdown extension, which activates on its first use: a
   * second or more on a slow machine, longer than a streamed answer takes. Meanwhile the newest
   * text shows as plain text, so the first answer of a session streams too (found by the
   * code-server end-to-end test: the panel used to stay blank, then show the whole answer).
   */
  private async flush(): Promise<void> {
    this.rendering = true;
    while (this.pending !== undefined && this.panel) {
      const md = this.pending;
      this.pending = undefined;
      const rendered = renderMarkdown(md);
      let body = await Promise.race([rendered, delay(150)]);
      let shownPlain: string | undefined;
      while (body === undefined && this.panel) {
        const newest = this.pending ?? md;
        if (newest !== shownPlain) {
          this.setBody(plainText(newest));
          shownPlain = newest;
        }
        body = await Promise.race([rendered, delay(100)]);
      }
      // A newer text already showing (unrendered) is not replaced by an older rendering.
      if (body !== undefined && (this.pending === undefined || shownPlain === undefined)) {
        this.setBody(body);
      }
    }
    this.rendering = false;
  }

  private setBody(body: string): void {
    if (!this.panel) {
      return;
    }
    const csp = `default-src 'none'; style-src ${this.panel.webview.cspSource} 'unsafe-inline'; img-src ${this.panel.webview.cspSource} https: data:;`;
    this.panel.webview.html = `<!DOCTYPE html><html><head><meta charset="utf-8">` +
      `<meta http-equiv="Content-Security-Policy" content="${csp}">` +
      `<style>body{font-family:var(--vscode-font-family);font-size:var(--vscode-font-size);line-height:1.5;padding:0 1em}` +
      `code,pre{font-family:var(--vscode-editor-font-family)}pre{background:var(--vscode-textCodeBlock-background);padding:.5em;overflow:auto}</style>` +
      `</head><body>${body}</body></html>`;
  }
}

function plainText(md: string): string {
  return `<pre style="white-space:pre-wrap;background:none">${md.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</pre>`;
}

async function renderMarkdown(md: string): Promise<string> {
  try {
    return String(await vscode.commands.executeCommand('markdown.api.render', md));
  } catch {
    return plainText(md);
  }
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

const explainPanel = new MarkdownPanel('slm-ls.explain');
const statsPanel = new MarkdownPanel('slm-ls.stats');

function rpc(c: LanguageClient): ExplainRpc {
  return {
    sendRequest: (method, params) => c.sendRequest(method, params),
    onProgress: (token, handler) => c.onProgress(WorkDoneProgress.type, token, (v) => handler(v as { kind?: string; message?: string })),
  };
}

async function explain(uri: string, range: { start: { line: number; character: number }; end: { line: number; character: number } }, title: string): Promise<void> {
  if (!client || client.state !== State.Running) {
    void vscode.window.showWarningMessage('slm-ls is not running.');
    return;
  }
  explainPanel.show(title, '_Asking the explain model…_');
  await runExplain(rpc(client), { uri, range }, (md) => explainPanel.update(md));
}

async function explainSelection(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || !client) {
    return;
  }
  const sel = editor.selection;
  const c2p = client.code2ProtocolConverter;
  const name = vscode.workspace.asRelativePath(editor.document.uri);
  // A selection of whole lines ends at column 0 of the line after the last.
  const last = sel.end.character === 0 && sel.end.line > sel.start.line ? sel.end.line : sel.end.line + 1;
  const lines = sel.isEmpty ? `${sel.active.line + 1}` : `${sel.start.line + 1}-${last}`;
  await explain(c2p.asUri(editor.document.uri), c2p.asRange(sel), `Explain ${name}:${lines}`);
}

async function showStats(): Promise<void> {
  const stats = await refreshStatus();
  if (stats === undefined) {
    void vscode.window.showWarningMessage('slm-ls is not running.');
    return;
  }
  statsPanel.show('slm-ls stats', statsMarkdown(stats, { enabled, lastLatencyMs: status.lastLatencyMs ?? null }));
}

function toggle(): void {
  enabled = !enabled;
  setStatus(status);
  sendSettings();
  void vscode.window.setStatusBarMessage(`slm-ls: completions ${enabled ? 'on' : 'off'}`, 2000);
}

function sendSettings(): void {
  if (client && client.state === State.Running) {
    void client.sendNotification(DidChangeConfigurationNotification.type, { settings: serverSettings() });
  }
}

async function showMenu(): Promise<void> {
  const items: (vscode.QuickPickItem & { run: () => unknown })[] = [
    ...(status.state === 'error' && status.error && /Download Model/.test(status.error)
      ? [{ label: '$(cloud-download) Download the default model', run: downloadModel }]
      : []),
    { label: enabled ? '$(circle-slash) Turn completions off' : '$(check) Turn completions on', run: toggle },
    { label: '$(graph) Show stats', run: showStats },
    { label: '$(output) Open log', run: () => output.show(true) },
    { label: '$(debug-restart) Restart server', run: restart },
    { label: '$(gear) Settings', run: () => vscode.commands.executeCommand('workbench.action.openSettings', `@ext:slm-ls.slm-ls`) },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: render(status).tooltip });
  await pick?.run();
}

async function startClient(): Promise<void> {
  let command: string;
  fixBundledPermissions(extensionPath, process.platform, process.arch);
  try {
    const r = resolveServer({
      configured: cfg().get<string>('serverPath', ''),
      extensionPath,
      platform: process.platform,
      arch: process.arch,
      envPath: process.env['PATH'] ?? '',
      home: os.homedir(),
    });
    command = r.command;
    serverCommand = command;
    output.appendLine(`slm-ls: using ${r.command} (${r.source})`);
  } catch (e) {
    const msg = e instanceof ServerNotFound ? e.message : String(e);
    output.appendLine(msg);
    setStatus({ ...status, state: 'notFound', error: msg });
    const choice = await vscode.window.showErrorMessage(msg, 'Open Settings', 'Open Log');
    if (choice === 'Open Settings') {
      void vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.serverPath`);
    } else if (choice === 'Open Log') {
      output.show(true);
    }
    return;
  }

  const serverOptions: ServerOptions = {
    command,
    args: cfg().get<string[]>('serverArgs', []),
    options: { env: { ...process.env } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    initializationOptions: serverSettings(),
    outputChannel: output,
    // The client's default (Error) pops up "Request textDocument/inlineCompletion failed." with
    // "Go to output" for every failed request: a notification per keystroke while the model
    // loads or when there is none. Failures stay in the log; the status bar item shows the
    // state, and the server's own window/showMessage (e.g. "the model did not load", with a
    // "Download Model" button: see showServerMessage) is still shown once.
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!enabled || !cfg().get<boolean>('inlineCompletion.enabled', true)) {
          return null;
        }
        const t0 = Date.now();
        let result: Awaited<ReturnType<typeof next>>;
        try {
          result = await next(document, position, context, token);
        } catch {
          // Already logged by the client; an inline suggestion that cannot be had is no suggestion.
          noteSlowCancel(document, token, Date.now() - t0);
          return null;
        }
        noteSlowCancel(document, token, Date.now() - t0);
        if (!token.isCancellationRequested && result) {
          setStatus(withLatency(status, Date.now() - t0));
        }
        return result;
      },
      // The server's own code actions / commands for explain land in the streaming panel too.
      executeCommand: async (cmd, args, next) => {
        const a = args[0] as { uri?: string; range?: { start: { line: number; character: number }; end: { line: number; character: number } } } | undefined;
        if (cmd === 'slm-ls.explain' && a?.uri && a.range) {
          await explain(a.uri, a.range, 'Explain');
          return undefined;
        }
        return next(cmd, args);
      },
    },
  };
  client = new LanguageClient('slm-ls', 'slm-ls', serverOptions, clientOptions);
  // Registered before start, so it replaces the client's own window/showMessage handler.
  client.onNotification(ShowMessageNotification.type, (m) => void showServerMessage(m));
  // The server also offers `textDocument/completion` (for editors without inline completion,
  // e.g. Helix). In VS Code it must not be registered, found by the code-server end-to-end test:
  // - the suggest widget showed the ghost text's text again, and took Tab and Escape;
  // - every trigger character (space, `.`, `(`) cost a second model run;
  // - it opened the suggest widget on those characters, whose quick-suggest path (default
  //   `offWhenInlineCompletions`) cancels an inline completion still pending after 750 ms.
  //   (VS Code's built-in word-based provider does that too: see the README, "No ghost text".)
  // Ghost text is the UI here, so the completion feature is never initialized.
  client.getFeature(CompletionRequest.method).initialize = () => undefined;
  client.onDidChangeState((e) => {
    if (e.newState === State.Stopped) {
      setStatus({ ...status, state: 'stopped' });
    } else if (e.newState === State.Starting) {
      setStatus({ ...status, state: 'starting' });
    }
  });
  setStatus({ ...status, state: 'starting' });
  try {
    await client.start();
  } catch (e) {
    setStatus({ ...status, state: 'error', error: `the server did not start: ${String(e)}` });
    return;
  }
  pollWhileLoading();
}

async function restart(): Promise<void> {
  if (client) {
    const c = client;
    client = undefined;
    try {
      await c.stop();
    } catch (e) {
      output.appendLine(`stopping slm-ls: ${String(e)}`);
    }
  }
  status = initialStatus();
  await startClient();
}

/**
 * The server's window/showMessage, shown as the client would, except that "the model did not
 * load ... run `slm-ls models fetch`" gets a button that does it (no `slm-ls` on PATH needed).
 */
async function showServerMessage(m: ShowMessageParams): Promise<void> {
  if (offersModelFetch(m.message)) {
    const choice = await vscode.window.showErrorMessage(rewriteFetchAdvice(m.message, serverCommand), DOWNLOAD_MODEL, 'Set Model Path');
    if (choice === DOWNLOAD_MODEL) {
      await downloadModel();
    } else if (choice === 'Set Model Path') {
      void vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.model.path`);
    }
    return;
  }
  switch (m.type) {
    case MessageType.Error:
      void vscode.window.showErrorMessage(m.message);
      break;
    case MessageType.Warning:
      void vscode.window.showWarningMessage(m.message);
      break;
    default:
      void vscode.window.showInformationMessage(m.message);
  }
}

/**
 * `<server binary> models fetch` (the default model) with a progress notification and the
 * binary's output in the log; then the server restarts and loads it.
 */
function downloadModel(): Promise<void> {
  fetching ??= doDownloadModel().finally(() => (fetching = undefined));
  return fetching;
}

async function doDownloadModel(): Promise<void> {
  const command = serverCommand;
  if (!command) {
    void vscode.window.showErrorMessage('slm-ls: the server binary was not found, so the model cannot be downloaded.');
    return;
  }
  output.appendLine(`slm-ls: running ${command} models fetch`);
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'slm-ls: downloading the default model', cancellable: true },
    (progress, token) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        let err = '';
        const child = spawn(command, ['models', 'fetch'], { env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'] });
        const onData = (d: Buffer): void => {
          const text = d.toString();
          err += text;
          output.append(text);
          const line = lastLine(text);
          if (line) {
            progress.report({ message: line });
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        token.onCancellationRequested(() => child.kill());
        child.on('error', (e) => resolve({ code: -1, err: `${err}\n${String(e)}` }));
        child.on('close', (code) => resolve({ code: token.isCancellationRequested ? null : code, err }));
      }),
  );
  if (result.code === null) {
    output.appendLine('slm-ls: model download cancelled');
    return;
  }
  if (result.code !== 0) {
    const choice = await vscode.window.showErrorMessage(`slm-ls: the model download failed: ${lastLine(result.err)}`, 'Open Log');
    if (choice === 'Open Log') {
      output.show(true);
    }
    return;
  }
  output.appendLine('slm-ls: model downloaded; restarting the server');
  void vscode.window.setStatusBarMessage('slm-ls: model downloaded, loading it', 5000);
  await restart();
}

/**
 * A suggestion VS Code cancelled at its quick-suggest wait (750 ms) while the user keeps
 * "offWhenInlineCompletions" (set explicitly: the extension's default is "on"): said once in the
 * log, since it is why no ghost text shows.
 */
function noteSlowCancel(document: vscode.TextDocument, token: vscode.CancellationToken, ms: number): void {
  if (toldAboutQuickSuggestions || !token.isCancellationRequested || ms < QUICK_SUGGEST_INLINE_WAIT_MS - 50) {
    return;
  }
  const qs = vscode.workspace.getConfiguration('editor', document).get('quickSuggestions');
  if (cancelsSlowInlineSuggestions(qs)) {
    toldAboutQuickSuggestions = true;
    output.warn(
      `A suggestion was cancelled after ${ms} ms. Your "editor.quickSuggestions" setting is "offWhenInlineCompletions", ` +
        `with which VS Code cancels every inline suggestion slower than ${QUICK_SUGGEST_INLINE_WAIT_MS} ms. Set its "other" ` +
        'to "on" (the slm-ls default) to see slower suggestions, or make them faster (slm-ls.completion.maxTokens).',
    );
  }
}

class ExplainCodeActions implements vscode.CodeActionProvider {
  static readonly kinds = [vscode.CodeActionKind.QuickFix];
  provideCodeActions(_doc: vscode.TextDocument, range: vscode.Range | vscode.Selection): vscode.CodeAction[] {
    if (range.isEmpty) {
      return [];
    }
    // The server may offer its own "Explain" action (routed to the same panel by the middleware).
    if (client?.initializeResult?.capabilities.codeActionProvider) {
      return [];
    }
    const a = new vscode.CodeAction(`Explain with ${status.model ?? 'slm-ls'}`, vscode.CodeActionKind.QuickFix);
    a.command = { command: 'slm-ls.explainSelection', title: 'Explain selection' };
    return [a];
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionPath = context.extensionPath;
  output = vscode.window.createOutputChannel('slm-ls', { log: true });
  statusItem = vscode.window.createStatusBarItem('slm-ls.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'slm-ls';
  statusItem.command = 'slm-ls.showMenu';
  setStatus(status);
  context.subscriptions.push(
    output,
    statusItem,
    vscode.commands.registerCommand('slm-ls.explainSelection', explainSelection),
    vscode.commands.registerCommand('slm-ls.toggle', toggle),
    vscode.commands.registerCommand('slm-ls.showStats', showStats),
    vscode.commands.registerCommand('slm-ls.showMenu', showMenu),
    vscode.commands.registerCommand('slm-ls.openLog', () => output.show(true)),
    vscode.commands.registerCommand('slm-ls.restart', restart),
    vscode.commands.registerCommand('slm-ls.downloadModel', downloadModel),
    vscode.languages.registerCodeActionsProvider({ scheme: 'file' }, new ExplainCodeActions(), {
      providedCodeActionKinds: ExplainCodeActions.kinds,
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration(SECTION)) {
        return;
      }
      if (e.affectsConfiguration(`${SECTION}.serverPath`) || e.affectsConfiguration(`${SECTION}.serverArgs`)) {
        void restart();
        return;
      }
      sendSettings();
      pollWhileLoading(); // a new model.path reloads the model
    }),
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  if (pollTimer) {
    clearTimeout(pollTimer);
  }
  if (client) {
    await client.stop();
  }
}
