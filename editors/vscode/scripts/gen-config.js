#!/usr/bin/env node
// Writes package.json's contributes.configuration.properties from src/settings.ts (compiled).
// `--check` exits 1 when package.json is out of date (used by the tests).
const fs = require('fs');
const path = require('path');
const { configurationProperties } = require('../out/src/settings');

const file = path.join(__dirname, '..', 'package.json');
const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
const want = configurationProperties();
const have = pkg.contributes.configuration.properties;
if (process.argv.includes('--check')) {
  if (JSON.stringify(want) !== JSON.stringify(have)) {
    console.error('package.json contributes.configuration is out of date: run `npm run gen-config`');
    process.exit(1);
  }
  process.exit(0);
}
pkg.contributes.configuration.properties = want;
fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + '\n');
console.log(`wrote ${Object.keys(want).length} settings to package.json`);
