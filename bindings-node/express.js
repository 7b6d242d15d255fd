'use strict';
// netget for Express apps, in two lines:
//
//   const { attach } = require('netget/express');
//   attach(app, { name: 'orders', registryNodes: ['http://127.0.0.1:7700'] });
//   app.listen(3000);
//
// attach(app, options) adds `GET /health` (200, JSON) to the app and, once the server is
// listening, registers the service with the real port: address `http://127.0.0.1:<port>` unless
// `address` is given, with an HTTP health check on that route unless `health` says otherwise.
// The registration is removed when the server closes (`server.close()`) and on SIGTERM/SIGINT,
// after which the process ends as that signal would end it (unless the app has its own listener
// for the signal; then the app decides).
//
// `app.listen(...)` is what most apps call; for a server made some other way (https, a port
// already bound), call `registration.register(server)`. The returned registration has:
//   ready     a Promise of the registered instance (registration errors are also printed)
//   node      the service's Netget node once listening (discover, watch, publish with it)
//   listen    app.listen, registering the server it returns
//   register  registers an http(s) server of this app
//   close     deregisters and stops the node (the server keeps running)
//
// Options: `name` (the service, required), `address`, `tags`, `version`, `metadata` (extra
// fields), `healthPath` ('/health'), `health` (a health check object, or false for none),
// `signals` (['SIGTERM', 'SIGINT'], or false), and any option of `new Netget()` (`network`,
// `registryNodes`, `token`, `tls`, `dataDir`, ...).

const { Netget } = require('./index.js');

/** How long deregistering may delay a signal's exit. */
const STOP_TIMEOUT_MS = 5000;

function attach(app, options = {}) {
  const {
    name,
    address,
    tags,
    version,
    metadata,
    healthPath = '/health',
    health,
    signals = ['SIGTERM', 'SIGINT'],
    ...nodeOptions
  } = options;

  app.get(healthPath, (_req, res) => {
    res.json({ status: 'passing', service: name ?? null });
  });

  let node = null;
  let server = null;
  let stopping = null;
  let settle;
  const ready = new Promise((resolve, reject) => {
    settle = { resolve, reject };
  });
  // An app that never awaits `ready` must not die of an unhandled rejection: the failure is
  // printed instead (awaiting `ready` still rejects).
  ready.catch(() => {});

  function onListening() {
    if (stopping) return;
    const bound = server.address();
    const where =
      address ?? (bound && typeof bound === 'object' ? `http://127.0.0.1:${bound.port}` : undefined);
    try {
      node = new Netget({
        ...nodeOptions,
        nodeType: 'service',
        metadata: { ...metadata, name, address: where, tags, version },
        health: health === false ? undefined : (health ?? { http: `${where}${healthPath}` }),
      });
    } catch (err) {
      fail(err);
      return;
    }
    node.registerWithNetwork().then(settle.resolve, fail);
  }

  function fail(err) {
    console.error(`netget: registering ${name ?? 'the service'} failed: ${err.message}`);
    settle.reject(err);
  }

  /** Deregisters and stops the node; idempotent. */
  function close() {
    if (!stopping) {
      for (const signal of signals || []) process.removeListener(signal, onSignal);
      stopping = node ? node.stop() : Promise.resolve();
    }
    return stopping;
  }

  function onSignal(signal) {
    const timeout = new Promise((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS).unref());
    Promise.race([close().catch(() => {}), timeout]).finally(() => {
      if (server) server.close();
      // With no other listener, end as the signal would have ended the process.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }

  function register(httpServer) {
    if (server) throw new Error('netget/express: this app is already registered with a server');
    server = httpServer;
    if (server.listening) onListening();
    else server.once('listening', onListening);
    // Deregister as soon as closing starts, so clients stop being sent here while it drains.
    const serverClose = server.close;
    server.close = function (...args) {
      close();
      return serverClose.apply(this, args);
    };
    server.once('close', close);
    for (const signal of signals || []) process.once(signal, onSignal);
    return server;
  }

  const appListen = app.listen;
  function listen(...args) {
    return register(appListen.apply(app, args));
  }
  app.listen = listen;

  return {
    ready,
    get node() {
      return node;
    },
    listen,
    register,
    close,
  };
}

module.exports = { attach };
