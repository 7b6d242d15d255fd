/*! netget.js: the netget browser handshaker (protocol netget/1, see PROTOCOL.md). MIT. No dependencies.
 *
 * Classic script (connects on load):
 *   <script src="http://REGISTRY:7700/netget.js" data-network="development"></script>
 *   data-endpoint="URL"   another registry than the one the file came from (http(s):// or ws(s)://)
 *   data-token="..."      a join token (token networks; also passed to the registry's filter)
 *   data-autoconnect="false"   do not connect on load; call netget.connect() yourself
 * ES module: `import 'http://REGISTRY:7700/netget.js'; const { netget } = globalThis;`
 *   The file has no `export`: it always installs globalThis.netget. As a module it connects on load
 *   only when its <script type="module" src> tag carries data-network / data-endpoint; after an
 *   `import` call netget.connect({network}) (the endpoint defaults to the file's own registry).
 *
 * window.netget: ready (Promise of the first welcome; rejects, with .code, if the first attempt
 * fails; the script keeps retrying), connect({endpoint, network, token}), close(), discover(name,
 * {tags, healthyOnly}), services(), watch(name, cb) / watchNetwork(cb) / subscribe(channel, cb)
 * (each returns a function that stops it, whose .ready settles with the first answer),
 * publish(channel, data) (resolves with `delivered`), request(type, fields), on('open'|'close'|
 * 'error', cb) (returns an off function), state, session (the welcome), publicKey.
 * Errors are Error objects with .code (NETGET_*). Reconnects with backoff (250 ms doubling to 10 s,
 * jittered) and restores watches and subscriptions; an in-flight publish is not re-sent. A session
 * that held no watch or subscription is reopened only when the page next calls (state 'idle').
 * Identity: a fresh Ed25519 key per page load, kept in memory only (WebCrypto, non-extractable;
 * where WebCrypto lacks Ed25519, e.g. plain-http pages not on localhost, a built-in signer).
 */
(() => {
  'use strict';
  const G = globalThis;
  if (G.netget && G.netget.protocol) return;
  const PROTO = 'netget/1';
  const TIMEOUT = 30000;
  const doc = G.document;

  // Where this file came from: its <script> element (classic or module), else the call stack.
  let el = doc && doc.currentScript;
  let src = el && el.src;
  if (!src) {
    const m = /((?:https?|file):\/\/[^\s()'"@]+?):\d+:\d+/.exec(new Error().stack || '');
    src = m ? m[1] : '';
    el = src && doc ? [...doc.scripts].find((s) => s.src === src) : null;
  }
  const attrs = (el && el.dataset) || {};

  const fail = (code, message) => Object.assign(new Error(message), { name: 'NetgetError', code });
  const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
  const ignore = () => {};
  const call = (cb, v) => {
    try {
      cb(v);
    } catch (e) {
      setTimeout(() => {
        throw e;
      });
    }
  };
  const deferred = () => {
    const d = {};
    d.promise = new Promise((res, rej) => Object.assign(d, { res, rej }));
    d.promise.catch(ignore);
    return d;
  };

  // ws(s)://host/v1/ws from http(s)://host[/netget.js], ws(s)://host[/v1/ws] or a bare path.
  const wsURL = (endpoint) => {
    const u = new URL(endpoint || src || '/', src || G.location.href);
    u.protocol = u.protocol.replace(/^http/, 'ws');
    if (!/\/v1\/ws$/.test(u.pathname)) u.pathname = u.pathname.replace(/\/?[^/]*\.js$|\/$/, '') + '/v1/ws';
    u.search = u.hash = '';
    return u.href;
  };

  // ---- Ed25519 (RFC 8032) signing for browsers whose WebCrypto lacks it. Slow but tiny. ----
  const ed = (() => {
    const N = BigInt;
    const M64 = (1n << 64n) - 1n;
    const root = (n, k) => {
      let x = 1n << N(Math.ceil(n.toString(2).length / Number(k)) + 1);
      for (;;) {
        const y = ((k - 1n) * x + n / x ** (k - 1n)) / k;
        if (y >= x) return x;
        x = y;
      }
    };
    const primes = [];
    for (let n = 2n; primes.length < 80; n++) if (primes.every((p) => n % p)) primes.push(n);
    const K = primes.map((p) => root(p << 192n, 3n) & M64);
    const H0 = primes.slice(0, 8).map((p) => root(p << 128n, 2n) & M64);
    const rotr = (x, n) => ((x >> n) | (x << (64n - n))) & M64;
    const sha512 = (msg) => {
      const len = msg.length;
      const b = new Uint8Array(((len + 17 + 127) >> 7) << 7);
      b.set(msg);
      b[len] = 0x80;
      new DataView(b.buffer).setUint32(b.length - 4, len * 8);
      const h = [...H0];
      const w = [];
      for (let o = 0; o < b.length; o += 128) {
        for (let i = 0; i < 16; i++) {
          let v = 0n;
          for (let j = 0; j < 8; j++) v = (v << 8n) | N(b[o + i * 8 + j]);
          w[i] = v;
        }
        for (let i = 16; i < 80; i++) {
          const a = w[i - 15];
          const c = w[i - 2];
          const s0 = rotr(a, 1n) ^ rotr(a, 8n) ^ (a >> 7n);
          const s1 = rotr(c, 19n) ^ rotr(c, 61n) ^ (c >> 6n);
          w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M64;
        }
        let [A, B, C, D, E, F, g, H] = h;
        for (let i = 0; i < 80; i++) {
          const t1 = (H + (rotr(E, 14n) ^ rotr(E, 18n) ^ rotr(E, 41n)) + ((E & F) ^ (~E & M64 & g)) + K[i] + w[i]) & M64;
          const t2 = ((rotr(A, 28n) ^ rotr(A, 34n) ^ rotr(A, 39n)) + ((A & B) ^ (A & C) ^ (B & C))) & M64;
          [H, g, F, E, D, C, B, A] = [g, F, E, (D + t1) & M64, C, B, A, (t1 + t2) & M64];
        }
        [A, B, C, D, E, F, g, H].forEach((v, i) => (h[i] = (h[i] + v) & M64));
      }
      const out = new Uint8Array(64);
      h.forEach((v, i) => {
        for (let j = 0; j < 8; j++) out[i * 8 + j] = Number((v >> N(56 - j * 8)) & 255n);
      });
      return out;
    };
    const P = (1n << 255n) - 19n;
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const mod = (a, m = P) => ((a % m) + m) % m;
    const inv = (x) => {
      let r = 1n;
      for (let e = P - 2n, b = mod(x); e; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
      return r;
    };
    const D = mod(-121665n * inv(121666n));
    const gx = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
    const gy = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;
    // Extended coordinates; this addition is complete on edwards25519, so it doubles too.
    const add = ([X1, Y1, Z1, T1], [X2, Y2, Z2, T2]) => {
      const a = mod((Y1 - X1) * (Y2 - X2));
      const b = mod((Y1 + X1) * (Y2 + X2));
      const c = mod(2n * T1 * T2 * D);
      const d = mod(2n * Z1 * Z2);
      const [e, f, g, h] = [b - a, d - c, d + c, b + a];
      return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
    };
    const mulBase = (n) => {
      let r = [0n, 1n, 1n, 0n];
      for (let q = [gx, gy, 1n, mod(gx * gy)]; n; n >>= 1n, q = add(q, q)) if (n & 1n) r = add(r, q);
      const z = inv(r[2]);
      let y = mod(r[1] * z) | ((mod(r[0] * z) & 1n) << 255n);
      const out = new Uint8Array(32);
      for (let i = 0; i < 32; i++, y >>= 8n) out[i] = Number(y & 255n);
      return out;
    };
    const num = (bytes) => bytes.reduceRight((v, x) => (v << 8n) | N(x), 0n);
    const cat = (...parts) => {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((o, p) => (out.set(p, o), o + p.length), 0);
      return out;
    };
    return (seed) => {
      const h = sha512(seed);
      h[0] &= 248;
      h[31] = (h[31] & 127) | 64;
      const a = num(h.subarray(0, 32));
      const pub = mulBase(a);
      const sign = (msg) => {
        const r = mod(num(sha512(cat(h.subarray(32), msg))), L);
        const R = mulBase(r);
        let s = mod(r + mod(num(sha512(cat(R, pub, msg))), L) * a, L);
        const S = new Uint8Array(32);
        for (let i = 0; i < 32; i++, s >>= 8n) S[i] = Number(s & 255n);
        return cat(R, S);
      };
      return { pub, sign };
    };
  })();

  let keyP = null;
  const keys = () =>
    (keyP ||= (async () => {
      try {
        const k = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
        const pub = b64(await crypto.subtle.exportKey('raw', k.publicKey));
        return { pub, kind: 'webcrypto', sign: async (d) => b64(await crypto.subtle.sign('Ed25519', k.privateKey, d)) };
      } catch (e) {
        const k = ed(crypto.getRandomValues(new Uint8Array(32)));
        return { pub: b64(k.pub), kind: 'js', sign: async (d) => b64(k.sign(d)) };
      }
    })());

  // ---- Connection state ----
  let opts = null; // {url, endpoint, network, token}
  let ws = null; // the socket of the current attempt or session
  let session = null; // the welcome, while in session
  let state = 'closed'; // closed | connecting | open | waiting (to retry) | idle | stopped
  let attempt = 0;
  let retryTimer = 0;
  let lastHeard = 0;
  let hadSession = false;
  let nextId = 1;
  let waiters = [];
  const ready = deferred();
  waiters.push(ready);
  const pending = new Map(); // id -> request
  let queue = []; // requests waiting for a session
  const watches = new Map(); // service -> {cbs, view, ready}
  const subs = new Map(); // channel -> {cbs, ready}
  let net = null; // {cbs, view, ready}
  const listeners = { open: new Set(), close: new Set(), error: new Set() };
  const emit = (type, v) => listeners[type].forEach((cb) => call(cb, v));

  const setWaiters = (ok, v) => {
    const w = waiters;
    waiters = [];
    w.forEach((d) => (ok ? d.res(v) : d.rej(v)));
  };

  function open() {
    clearTimeout(retryTimer);
    const o = opts;
    let sock;
    let error = null;
    state = 'connecting';
    try {
      sock = ws = new WebSocket(o.url);
    } catch (e) {
      state = 'stopped';
      return lost(ws, 0, '', fail('NETGET_INVALID_INPUT', `bad endpoint ${o.url}: ${e.message}`));
    }
    const guard = setTimeout(() => lost(sock, 4000, 'timeout', fail('NETGET_TIMEOUT', `no welcome from ${o.url} in 15 s`)), 15000);
    sock.onmessage = async (ev) => {
      if (sock !== ws) return;
      lastHeard = Date.now();
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (session) return dispatch(m);
      if (m.type === 'challenge') {
        if (m.protocol !== PROTO) {
          return lost(sock, 1000, '', fail('NETGET_UNSUPPORTED_VERSION', `the registry speaks ${m.protocol}, not ${PROTO}`));
        }
        const k = await keys();
        api.publicKey = k.pub;
        const bytes = new TextEncoder().encode(`${PROTO}\nhello\n${m.registryId}\n${o.network}\n${m.nonce}`);
        const hello = { type: 'hello', protocol: PROTO, network: o.network, publicKey: k.pub, nonce: m.nonce, signature: await k.sign(bytes), nodeType: 'client' };
        if (o.token) hello.token = o.token;
        if (sock === ws) sock.send(JSON.stringify(hello));
      } else if (m.type === 'welcome') {
        clearTimeout(guard);
        welcome(m);
      } else if (m.type === 'error' && m.error) {
        error = fail(m.error.code, m.error.message);
      }
    };
    sock.onclose = (ev) => {
      clearTimeout(guard);
      lost(sock, ev.code, ev.reason, error);
    };
  }

  function welcome(m) {
    session = m;
    hadSession = true;
    state = 'open';
    attempt = 0;
    setWaiters(true, m);
    emit('open', m);
    // Restore what this page watches and subscribes to, then send what waited for a session.
    for (const [name, w] of watches) startWatch(name, w);
    for (const [channel, s] of subs) startSub(channel, s);
    if (net) startNet(net);
    const q = queue;
    queue = [];
    q.forEach(send);
  }

  // The end of an attempt or a session, whether the socket closed or we gave up on it.
  function lost(sock, code, reason, error, replaced) {
    if (sock !== ws) return;
    ws = null;
    clearTimeout(retryTimer);
    if (sock && sock.readyState < 2) sock.close(1000);
    const was = session;
    session = null;
    for (const p of pending.values()) {
      if (p.retry) queue.push(p);
      else p.rej(fail('NETGET_CLOSED', `the connection closed before ${p.msg.type} was answered`));
    }
    pending.clear();
    if (!was && !replaced) {
      error ||= fail('NETGET_UNREACHABLE', `could not open a session with ${opts.url} (registry down, or this page's origin refused)`);
      setWaiters(false, error);
      emit('error', error);
    }
    if (replaced || state === 'stopped') {
      // nothing to schedule
    } else if (hadSession && !watches.size && !subs.size && !net && !queue.length) {
      // Once a session was had, one that would hold nothing (e.g. closed as idle, 4001) is
      // reopened only when the page needs it.
      state = 'idle';
    } else {
      const delay = Math.min(10000, 250 * 2 ** attempt++) * (0.5 + Math.random() / 2);
      state = 'waiting';
      retryTimer = setTimeout(open, delay);
    }
    if (was) emit('close', { code, reason, retrying: state === 'waiting' });
  }

  // Browsers cannot see the registry's WebSocket pings: while something is watched, an
  // application ping after 15 s of silence checks the connection (and a dead one is dropped).
  setInterval(() => {
    if (!session || Date.now() - lastHeard < 15000 || !(watches.size || subs.size || net)) return;
    const sock = ws;
    lastHeard = Date.now();
    request('ping', {}, { retry: false, timeout: 5000 }).catch((e) => e.code === 'NETGET_TIMEOUT' && lost(sock, 4000, 'silent', null));
  }, 5000);

  function ensure() {
    if (opts && (state === 'idle' || state === 'closed')) open();
  }

  // ---- Requests ----
  function request(type, fields = {}, { retry = true, timeout = TIMEOUT } = {}) {
    return new Promise((res, rej) => {
      if (state === 'stopped') return rej(fail('NETGET_CLOSED', 'netget.close() was called; call netget.connect() again'));
      const p = { msg: { type, ...fields }, retry, res, rej };
      p.timer = setTimeout(() => {
        pending.delete(p.id);
        queue = queue.filter((q) => q !== p);
        p.rej(fail('NETGET_TIMEOUT', `${type} got no answer in ${timeout / 1000} s`));
      }, timeout);
      const done = (f) => (v) => {
        clearTimeout(p.timer);
        f(v);
      };
      p.res = done(res);
      p.rej = done(rej);
      if (session) send(p);
      else {
        queue.push(p);
        ensure();
      }
    });
  }

  function send(p) {
    p.id = p.msg.id = nextId++;
    pending.set(p.id, p);
    ws.send(JSON.stringify(p.msg));
  }

  function dispatch(m) {
    if (m.type === 'result' || m.type === 'pong' || m.type === 'error') {
      const p = m.id != null && pending.get(m.id);
      const e = m.error && fail(m.error.code, m.error.message);
      if (!p) return e && emit('error', e);
      pending.delete(m.id);
      return e ? p.rej(e) : p.res(m.data || {});
    }
    if (m.type === 'event') {
      const w = watches.get(m.name);
      const { type, instance } = m.event;
      if (w && w.view) apply(w.view, w.cbs, type, instance.id, instance, {});
      if (net && net.view) apply(net.view, net.cbs, type, `${m.name}\n${instance.id}`, instance, { name: m.name });
    } else if (m.type === 'snapshot') {
      const w = watches.get(m.name);
      if (w && w.view) resetWatch(w, m.instances);
    } else if (m.type === 'networkSnapshot') {
      if (net && net.view) resetNet(m.instances);
    } else if (m.type === 'message') {
      const s = subs.get(m.channel);
      if (s) s.cbs.forEach((cb) => call(cb, { channel: m.channel, data: m.data, from: m.from }));
    }
  }

  // Events are applied as "insert or replace by id" / "remove if present", so repeats (after a
  // snapshot, or from a service watch and a network watch at once) reach callbacks once.
  function apply(view, cbs, type, key, instance, extra) {
    const old = view.get(key);
    if (type === 'down') {
      if (!old) return;
      view.delete(key);
    } else {
      if (old && JSON.stringify(old) === JSON.stringify(instance)) return;
      view.set(key, instance);
      if (type === 'up' && old) type = 'changed';
      if (type === 'changed' && !old) type = 'up';
    }
    cbs.forEach((cb) => call(cb, { type, ...extra, instance }));
  }

  function resetWatch(w, list) {
    const old = w.view || new Map();
    w.view = new Map();
    for (const i of list) {
      if (old.has(i.id)) w.view.set(i.id, old.get(i.id));
      apply(w.view, w.cbs, 'up', i.id, i, {});
      old.delete(i.id);
    }
    for (const i of old.values()) w.cbs.forEach((cb) => call(cb, { type: 'down', instance: i }));
  }
  const keyOf = (i) => `${i.name}\n${i.id}`;
  function resetNet(list) {
    net.view = new Map(list.map((i) => [keyOf(i), i]));
    net.cbs.forEach((cb) => call(cb, { type: 'snapshot', instances: list }));
  }

  // A failed (re)start: a refusal is final for that watch; a lost connection retries by itself.
  const retriable = (e) => e.code === 'NETGET_CLOSED' || e.code === 'NETGET_TIMEOUT';
  function refused(e, d, drop) {
    if (retriable(e)) return;
    drop();
    d.rej(e);
    emit('error', e);
  }

  function startWatch(name, w) {
    request('watch', { name }, { retry: false }).then(
      (d) => {
        if (watches.get(name) !== w) return;
        if (!w.view) w.view = new Map();
        resetWatch(w, d.instances);
        w.ready.res([...w.view.values()]);
      },
      (e) => refused(e, w.ready, () => watches.get(name) === w && watches.delete(name)),
    );
  }
  function startSub(channel, s) {
    request('subscribe', { channel }, { retry: false }).then(
      () => s.ready.res(),
      (e) => refused(e, s.ready, () => subs.get(channel) === s && subs.delete(channel)),
    );
  }
  function startNet(n) {
    request('watchNetwork', {}, { retry: false }).then(
      (d) => {
        if (net !== n) return;
        resetNet(d.instances);
        n.ready.res(d.instances);
      },
      (e) => refused(e, n.ready, () => net === n && (net = null)),
    );
  }

  // One registry subscription per name, shared by every callback of the page.
  function share(map, key, cb, start, stop, greet) {
    let entry = map.get(key);
    if (entry) {
      if (greet) Promise.resolve().then(() => entry.cbs.has(cb) && greet(entry, cb));
    } else {
      entry = { cbs: new Set(), view: null, ready: deferred() };
      map.set(key, entry);
      if (session) start(key, entry);
      else ensure();
    }
    entry.cbs.add(cb);
    const off = () => {
      if (entry.cbs.delete(cb) && !entry.cbs.size && map.get(key) === entry) {
        map.delete(key);
        if (session) stop(key).catch(ignore);
      }
    };
    off.ready = entry.ready.promise;
    return off;
  }

  const netMap = {
    get: () => net,
    set: (_, v) => (net = v),
    delete: () => (net = null),
  };

  const api = {
    protocol: PROTO,
    ready: ready.promise,
    publicKey: null,
    get state() {
      return state;
    },
    get session() {
      return session;
    },
    get endpoint() {
      return opts && opts.url;
    },
    connect(o = {}) {
      const prev = opts || {};
      opts = {
        endpoint: o.endpoint || prev.endpoint || attrs.endpoint,
        network: o.network || prev.network || attrs.network || 'development',
        token: o.token !== undefined ? o.token : prev.token !== undefined ? prev.token : attrs.token,
      };
      opts.url = wsURL(opts.endpoint);
      attempt = 0;
      state = 'closed';
      if (ws) lost(ws, 1000, 'reconnecting', null, true);
      const d = deferred();
      waiters.push(d);
      open();
      return d.promise;
    },
    close() {
      state = 'stopped';
      clearTimeout(retryTimer);
      if (ws) lost(ws, 1000, 'closed', fail('NETGET_CLOSED', 'netget.close() was called'));
      queue.forEach((p) => p.rej(fail('NETGET_CLOSED', 'netget.close() was called')));
      queue = [];
    },
    request: (type, fields) => request(type, fields, { retry: false }),
    ping: () => request('ping'),
    discover: (name, o = {}) =>
      request('discover', { name, healthyOnly: o.healthyOnly !== false, tags: o.tags || [] }).then((d) => d.instances),
    services: () => request('services').then((d) => d.services),
    publish: (channel, data) =>
      request('publish', { channel, data: data === undefined ? null : data }, { retry: false }).then((d) => d.delivered),
    watch: (name, cb) =>
      share(watches, name, cb, startWatch, (n) => request('unwatch', { name: n }, { retry: false }), (w, c) =>
        w.view && w.view.forEach((instance) => call(c, { type: 'up', instance })),
      ),
    watchNetwork: (cb) =>
      share(netMap, 0, cb, (_, n) => startNet(n), () => request('unwatchNetwork', {}, { retry: false }), (n, c) =>
        n.view && call(c, { type: 'snapshot', instances: [...n.view.values()] }),
      ),
    subscribe: (channel, cb) =>
      share(subs, channel, cb, startSub, (c) => request('unsubscribe', { channel: c }, { retry: false })),
    on(type, cb) {
      listeners[type].add(cb);
      return () => listeners[type].delete(cb);
    },
  };
  G.netget = api;
  if (el && attrs.autoconnect !== 'false' && (el === (doc && doc.currentScript) || attrs.network || attrs.endpoint)) api.connect();
})();
