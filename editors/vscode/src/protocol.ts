// slm-ls's custom LSP methods, typed for vscode-jsonrpc.
import { RequestType0 } from 'vscode-languageserver-protocol';

/**
 * `slm-ls/stats`: no params (a typed request without params, so the JSON-RPC library does not
 * send `[null]`, which the server rejects).
 */
export const StatsRequest = new RequestType0<unknown, void>('slm-ls/stats');
