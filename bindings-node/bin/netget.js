#!/usr/bin/env node
'use strict';
// The `netget` command line (registry, register, discover, services, watch, keygen, ...), run by
// netget's Rust core inside this process: `npx netget --help`.

const { runCli } = require('../load.js').loadNative();

// runCli blocks until the command ends; a registry ends on SIGINT/SIGTERM.
process.exitCode = runCli(['netget', ...process.argv.slice(2)]);
