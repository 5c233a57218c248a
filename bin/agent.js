#!/usr/bin/env node
// The installed entry point: runs the CLI bundle (npm run build makes dist/bundle/agent.cjs).
'use strict';
const { commandWord, loadBundle } = require('./bundle.js');

const { exports: cli, saveCache } = loadBundle(commandWord(process.argv), { argv: process.argv });
cli.main(process.argv).then((code) => {
  process.exitCode = code;
  saveCache(code);
});
