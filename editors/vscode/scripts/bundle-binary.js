#!/usr/bin/env node
// Copies the slm-ls release binary into bin/<platform>-<arch>/ so `vsce package` ships it
// (the extension looks there before PATH). Debug info is stripped when `strip` is available.
// Source: $SLM_LS_BIN, else ../../target/release/slm-ls (build it with ./setup.sh first).
const cp = require('child_process');
const fs = require('fs');
const path = require('path');

const exe = process.platform === 'win32' ? 'slm-ls.exe' : 'slm-ls';
const src = process.env.SLM_LS_BIN || path.join(__dirname, '..', '..', '..', 'target', 'release', exe);
if (!fs.existsSync(src)) {
  console.error(`no slm-ls binary at ${src}: run ./setup.sh (or cargo build --release) in the repository, or set SLM_LS_BIN`);
  process.exit(1);
}
const dir = path.join(__dirname, '..', 'bin', `${process.platform}-${process.arch}`);
fs.mkdirSync(dir, { recursive: true });
const dest = path.join(dir, exe);
fs.copyFileSync(src, dest);
fs.chmodSync(dest, 0o755);
const strip = cp.spawnSync('strip', ['--strip-debug', dest], { stdio: 'inherit' });
if (strip.error || strip.status !== 0) {
  console.warn('strip not available or failed; bundling the binary with its debug info');
}
console.log(`bundled ${src} -> ${dest} (${(fs.statSync(dest).size / 1e6).toFixed(1)} MB)`);
