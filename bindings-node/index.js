'use strict';
// netget for Node: `const { Netget } = require('netget')`.
//
// A thin layer over the native addon (`native.js`, built from bindings-node/src): every option,
// check and decision is made by netget's Rust core, so this file only shapes the API — Promises
// for what the core does asynchronously, plain functions to stop watching — and ties a running
// registry to the event loop. Errors are `Error` objects with a stable `code` (see `ErrorCode`).

const { NativeNetget, errorCodes } = require('./load.js').loadNative();

/**
 * The stable codes of netget's errors (`err.code`), as every netget surface reports them:
 * `ErrorCode.INVALID_INPUT === 'NETGET_INVALID_INPUT'`, one key per code of the core's table
 * (`netget::error::CODES`; index.d.ts spells them out, and a test keeps the two equal).
 */
const ErrorCode = Object.freeze(
  Object.fromEntries(errorCodes().map((code) => [code.slice('NETGET_'.length), code])),
);

/** Whether `err` is an error reported by netget (it carries a `NETGET_*` code). */
function isNetgetError(err) {
  return err instanceof Error && typeof err.code === 'string' && err.code.startsWith('NETGET_');
}

/** A longest-possible timer interval: a handle that only keeps the event loop alive. */
const FOREVER = 0x7fffffff;

class Netget {
  /** The native node. */
  #native;
  /** While a registry listens, a ref'd handle keeps the process alive, as a Node server does. */
  #keepAlive = null;

  /**
   * @param {object} [options] `nodeType`, `network`, `metadata`, `registryNodes`, `listen`,
   *   `dataDir`, `health`, `token`, `tls`, `verify`, `trustedKeys`, `filter`, ... (index.d.ts)
   */
  constructor(options) {
    const plain = options !== null && typeof options === 'object' && !Array.isArray(options);
    // The filter is a function, not data: it travels beside the options.
    const { filter, ...rest } = plain ? options : {};
    this.#native = new NativeNetget(plain ? rest : options, filter);
  }

  /** `'registry'`, `'service'` or `'client'`. */
  get nodeType() {
    return this.#native.nodeType;
  }

  /** A registry's URL once started; a member's current registry (as ws://) while in session. */
  get url() {
    return this.#native.url;
  }

  /** The node's Ed25519 public key (base64); a registry's once started. */
  get publicKey() {
    return this.#native.publicKey;
  }

  /** A member's registry nodes, in order. */
  get registryNodes() {
    return this.#native.registryNodes;
  }

  /** Registries: listen; resolves with the URL. Members: resolves once in session. */
  async start() {
    const url = await this.#native.start();
    if (this.#native.nodeType === 'registry' && this.#keepAlive === null) {
      this.#keepAlive = setInterval(() => {}, FOREVER);
    }
    return url;
  }

  /** Registers this service node; resolves with the instance as the registry stored it. */
  async registerWithNetwork() {
    return this.#native.registerWithNetwork();
  }

  /** Removes this node's registration (the node stays connected). */
  async deregister() {
    return this.#native.deregister();
  }

  /**
   * One healthy instance of `name` (weighted random unless `options.strategy` says otherwise),
   * or `null`. Answered from the node's cache, without a round trip, once the service is cached.
   */
  async discoverServiceNode(name, options) {
    const hit = this.#native.discoverCached(name, options);
    return hit !== undefined ? hit : this.#native.discoverServiceNode(name, options);
  }

  /** Every matching instance of `name` (healthy ones unless `{ healthyOnly: false }`). */
  async discoverServiceNodes(name, options) {
    return this.#native.discoverServiceNodes(name, options);
  }

  /** The services of the network with instance counts. */
  async services() {
    return this.#native.services();
  }

  /**
   * Calls `callback` with every change to `name` (`{ type: 'up'|'down'|'changed', instance }`),
   * starting with `up` for each current instance. Returns a function that stops watching.
   * An open watch keeps the process alive; stop() ends every watch.
   */
  watch(name, callback) {
    return closer(this.#native.watch.bind(this.#native), name, callback);
  }

  /**
   * Calls `callback` with every message published on `channel` (`{ channel, data, from }`).
   * Returns a function that unsubscribes. An open subscription keeps the process alive;
   * stop() ends every subscription.
   */
  subscribe(channel, callback) {
    return closer(this.#native.subscribe.bind(this.#native), channel, callback);
  }

  /** Publishes `data` on `channel`; resolves with the number of subscribers it reached. */
  async publish(channel, data) {
    return this.#native.publish(channel, data);
  }

  /** Adds a registry node to fail over to. */
  addRegistryNode(url) {
    this.#native.addRegistryNode(url);
  }

  /** Removes a registry node (moving the session elsewhere if it was there). */
  removeRegistryNode(url) {
    this.#native.removeRegistryNode(url);
  }

  /** Deregisters, closes sessions, ends watches; a registry stops listening. Idempotent. */
  async stop() {
    try {
      await this.#native.stop();
    } finally {
      clearInterval(this.#keepAlive);
      this.#keepAlive = null;
    }
  }
}

/**
 * Opens a native stream delivering to `callback` and returns the function that closes it; no
 * callback runs after that function has been called (one may already be queued natively).
 */
function closer(open, target, callback) {
  let isOpen = true;
  const deliver =
    typeof callback === 'function'
      ? (item) => {
          if (isOpen) callback(item);
        }
      : callback; // the native side reports what it is
  const stream = open(target, deliver);
  return () => {
    isOpen = false;
    stream.close();
  };
}

module.exports = { Netget, ErrorCode, isNetgetError };
