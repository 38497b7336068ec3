#!/usr/bin/env node
// Writes package.json's contributes.configuration.properties and contributes.configurationDefaults
// from src/settings.ts (compiled). `--check` exits 1 when package.json is out of date (used by the
// tests).
const fs = require('fs');
const path = require('path');
const { configurationProperties, configurationDefaults } = require('../out/src/settings');

const file = path.join(__dirname, '..', 'package.json');
const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
const want = configurationProperties();
const wantDefaults = configurationDefaults();
const have = pkg.contributes.configuration.properties;
const haveDefaults = pkg.contributes.configurationDefaults;
if (process.argv.includes('--check')) {
  if (JSON.stringify(want) !== JSON.stringify(have) || JSON.stringify(wantDefaults) !== JSON.stringify(haveDefaults)) {
    console.error('package.json contributes.configuration(Defaults) is out of date: run `npm run gen-config`');
    process.exit(1);
  }
  process.exit(0);
}
pkg.contributes.configuration.properties = want;
pkg.contributes.configurationDefaults = wantDefaults;
fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + '\n');
console.log(`wrote ${Object.keys(want).length} settings and ${Object.keys(wantDefaults).length} editor default(s) to package.json`);
