// Finding the slm-ls binary: the `slm-ls.serverPath` setting, then a binary bundled in the
// extension (`bin/<platform>-<arch>/slm-ls`, or `bin/slm-ls`), then `slm-ls` on PATH.
import * as fs from 'fs';
import * as path from 'path';

export interface Resolved {
  command: string;
  source: 'setting' | 'bundled' | 'path';
}

export interface ResolveInput {
  configured: string;
  extensionPath: string;
  platform: NodeJS.Platform;
  arch: string;
  envPath: string;
  home: string;
  /** Injected for tests. */
  isExecutable?: (p: string) => boolean;
}

export class ServerNotFound extends Error {
  constructor(message: string, readonly tried: string[]) {
    super(message);
  }
}

function defaultIsExecutable(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) {
      return false;
    }
    if (process.platform === 'win32') {
      return true;
    }
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function binaryName(platform: NodeJS.Platform): string {
  return platform === 'win32' ? 'slm-ls.exe' : 'slm-ls';
}

function expandHome(p: string, home: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(home, p.slice(1)) : p;
}

/**
 * A .vsix may not keep the executable bit of a bundled binary: restore it (best effort).
 */
export function fixBundledPermissions(extensionPath: string, platform: NodeJS.Platform, arch: string): void {
  if (platform === 'win32') {
    return;
  }
  const exe = binaryName(platform);
  for (const p of [path.join(extensionPath, 'bin', `${platform}-${arch}`, exe), path.join(extensionPath, 'bin', exe)]) {
    try {
      if (fs.statSync(p).isFile()) {
        fs.chmodSync(p, 0o755);
      }
    } catch {
      // not bundled
    }
  }
}

export function resolveServer(input: ResolveInput): Resolved {
  const isExec = input.isExecutable ?? defaultIsExecutable;
  const exe = binaryName(input.platform);
  const tried: string[] = [];
  const configured = input.configured.trim();
  if (configured !== '') {
    const p = expandHome(configured, input.home);
    tried.push(p);
    if (isExec(p)) {
      return { command: p, source: 'setting' };
    }
    throw new ServerNotFound(
      `slm-ls: the server binary set in "slm-ls.serverPath" (${p}) does not exist or is not executable. ` +
        'Fix the path, or clear the setting to use the bundled binary or `slm-ls` on PATH.',
      tried,
    );
  }
  for (const rel of [path.join('bin', `${input.platform}-${input.arch}`, exe), path.join('bin', exe)]) {
    const p = path.join(input.extensionPath, rel);
    tried.push(p);
    if (isExec(p)) {
      return { command: p, source: 'bundled' };
    }
  }
  const sep = input.platform === 'win32' ? ';' : ':';
  for (const dir of input.envPath.split(sep).filter((d) => d !== '')) {
    const p = path.join(dir, exe);
    tried.push(p);
    if (isExec(p)) {
      return { command: p, source: 'path' };
    }
  }
  throw new ServerNotFound(
    'slm-ls: the server binary was not found (no "slm-ls.serverPath" setting, no bundled binary, not on PATH). ' +
      'Build it with `cargo build --release` in the slm-ls repository and set "slm-ls.serverPath" to ' +
      'target/release/slm-ls, or put it on PATH, then run "slm-ls: Restart Server".',
    tried,
  );
}
