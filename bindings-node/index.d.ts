// TypeScript declarations of the npm package `netget` (the runtime is index.js).

/** A duration as netget writes it: `'500ms'`, `'5s'`, `'1.5s'`, `'1m'`, `'2h'`. */
export type Duration = string;

/** Health of an instance. `critical` instances are left out of discovery unless asked for. */
export type Status = 'passing' | 'warning' | 'critical';

/** An active health check the registry runs against an instance. */
export interface HealthCheck {
  /** URL to GET; 2xx is passing. */
  http?: string;
  /** `host:port` to connect to. */
  tcp?: string;
  /** Time between probes. */
  interval?: Duration;
  /** Time one probe may take. */
  timeout?: Duration;
  /** Remove the instance after it has been critical this long. */
  deregisterCriticalAfter?: Duration;
  /** Consecutive successful probes before a non-passing instance is passing again (default 1). */
  successBeforePassing?: number;
  /** Consecutive failed probes before a passing instance turns warning or critical (default 2). */
  failuresBeforeCritical?: number;
}

/** The last health check of an instance. */
export interface CheckRecord {
  /** The probe's result for a person (`HTTP 200 OK`, `connection refused`, `no heartbeat`). */
  output: string;
  /** Milliseconds since the Unix epoch. */
  at: number;
}

/** One registered instance of a service, as every netget surface returns it. */
export interface Instance {
  /** `metadata.id` when given, otherwise derived from the node's key and the service. */
  id: string;
  /** The service name. */
  name: string;
  network: string;
  /** Where clients reach it. */
  address: string;
  /** The rest of the node's metadata (free-form JSON). */
  metadata: Record<string, unknown>;
  tags: string[];
  version?: string;
  /** Relative weight for weighted discovery (default 1). */
  weight: number;
  status: Status;
  /** Milliseconds since the Unix epoch when it was first registered. */
  registeredAt: number;
  /** Id of the registry that owns it. */
  registry: string;
  health?: HealthCheck;
  /** The last health check (active probe or missed TTL), if any. */
  lastCheck?: CheckRecord;
  /** The registering node's public key (session registrations). */
  publicKey?: string;
  /** The node's signature over the instance. */
  signature?: string;
  signedAt?: number;
}

/** A change to a watched service. */
export interface WatchEvent {
  type: 'up' | 'down' | 'changed';
  /** The instance as it is now (for `down`, as it was last). */
  instance: Instance;
}

/** A message on a channel. */
export interface ChannelMessage {
  channel: string;
  /** What was published: any JSON value. */
  data: unknown;
  /** The publisher's public key. */
  from?: string;
}

/** A service of a network with its instance counts. */
export interface ServiceSummary {
  name: string;
  instances: number;
  /** Instances that are not critical. */
  healthy: number;
  passing: number;
  warning: number;
  critical: number;
}

/** What a registry's filter is asked about. */
export interface FilterRequest {
  kind: 'handshake' | 'register' | 'publish';
  network: string;
  /** The node's public key (sessions). */
  publicKey: string | null;
  /** The browser origin, if any. */
  origin: string | null;
  /** The caller's address (`ip:port`). */
  remoteAddr: string;
  /** The token presented, if any. */
  token: string | null;
  /** `service`, `client`, ... (handshakes). */
  nodeType: string | null;
  /** Service name (registrations). */
  service: string | null;
  /** Instance id (registrations). */
  instanceId: string | null;
  /** Address (registrations). */
  address: string | null;
  /** Instance metadata (registrations). */
  metadata: Record<string, unknown>;
  /** Channel (publications). */
  channel: string | null;
  /** Published data (publications). */
  data: unknown;
}

/** A filter's answer: allow, or deny with a reason (it reaches the caller in `NETGET_DENIED`). */
export type FilterAnswer = boolean | { allow: boolean; reason?: string };

/**
 * A registry's conditional filter: sees each handshake, registration and publication. Sync or
 * async. Throwing (or rejecting) denies, with the error's message as the reason.
 */
export type Filter = (request: FilterRequest) => FilterAnswer | Promise<FilterAnswer>;

/** The service a node describes: `name` and `address` are needed to register. */
export interface Metadata {
  name?: string;
  description?: string;
  /** Where clients reach this node, e.g. `'http://127.0.0.1:8080'`. */
  address?: string;
  tags?: string[];
  version?: string;
  /** Fixed instance id (default: derived from the node's key and the service). */
  id?: string;
  /** Relative weight for weighted discovery (default 1). */
  weight?: number;
  /** Anything else is kept as the instance's metadata. */
  [key: string]: unknown;
}

/** Options of `new Netget(...)`. camelCase; the snake_case spellings are accepted too. */
export interface NetgetOptions {
  /** Default: `'service'` when `metadata.name` is set, otherwise `'client'`. */
  nodeType?: 'service' | 'client' | 'registry';
  /** Network to join (members) or to serve as open (registries). Default `'development'`. */
  network?: string;
  metadata?: Metadata;
  /** Registries to use (`http(s)://` or `ws(s)://`; several = failover: the node starts at a
   * random one and, losing it, moves to a random other one). Default `http://127.0.0.1:7700`.
   * For a registry node: the peer registries whose cluster it joins. */
  registryNodes?: string[];
  /** Use `registryNodes` in the order given (start at the first, fail over to the next): for
   * registries that are not one cluster. Default `false`. */
  inOrder?: boolean;
  /** An active check for the registry to run on this service. */
  health?: HealthCheck;
  /** Join token, for networks whose policy needs one. */
  token?: string;
  /** Trust this CA (PEM file) for https/wss registries. */
  tls?: { ca?: string };
  /** Check every instance's signature. */
  verify?: boolean;
  /** Per service, the public keys trusted to sign its instances. */
  trustedKeys?: Record<string, string[]>;
  /** The node's key, as `netget keygen` writes it. */
  key?: string;
  /** A key file. */
  keyFile?: string;
  /**
   * Members: where the node's key is kept (default: the user's data dir, `$XDG_DATA_HOME/netget`
   * or `~/.local/share/netget`). Registries: the registry's data (default `./netget-data`).
   */
  dataDir?: string;
  /** Bound on every call to a registry. Default `'10s'`. */
  requestTimeout?: Duration;
  /** Registries: address to listen on (`'127.0.0.1:0'` picks a free port). */
  listen?: string;
  /** Registries: a `netget.toml` to start from. */
  config?: string;
  /** Registries: networks served as open (besides `network`). */
  networks?: string[];
  /** Registries: silence after which a session's instances are removed. Default `'5s'`. */
  sessionTimeout?: Duration;
  /** Registries: browser origins allowed. */
  cors?: string[];
  /** Registries: TLS certificate (PEM file); goes with `tlsKey`. */
  tlsCert?: string;
  /** Registries: TLS key (PEM file). */
  tlsKey?: string;
  /** Registries: the conditional filter. */
  filter?: Filter;
}

/** Options of discovery calls. */
export interface DiscoverOptions {
  /** Only instances carrying every one of these tags. */
  tags?: string[];
  /** Leave out critical instances (default `true`). */
  healthyOnly?: boolean;
  /** How `discoverServiceNode` picks one (default `'weighted'`). */
  strategy?: 'weighted' | 'random' | 'round-robin';
  /** Answer from the node's watch-fed cache (default `true`); `false` asks the registry. */
  cached?: boolean;
}

/** The stable codes of netget's errors. */
export declare const ErrorCode: {
  readonly INVALID_INPUT: 'NETGET_INVALID_INPUT';
  readonly MALFORMED_JSON: 'NETGET_MALFORMED_JSON';
  readonly UNKNOWN_MESSAGE: 'NETGET_UNKNOWN_MESSAGE';
  readonly TOO_LARGE: 'NETGET_TOO_LARGE';
  readonly UNAUTHORIZED: 'NETGET_UNAUTHORIZED';
  readonly CHALLENGE_REPLAYED: 'NETGET_CHALLENGE_REPLAYED';
  readonly CHALLENGE_EXPIRED: 'NETGET_CHALLENGE_EXPIRED';
  readonly FORBIDDEN: 'NETGET_FORBIDDEN';
  readonly DENIED: 'NETGET_DENIED';
  readonly NOT_FOUND: 'NETGET_NOT_FOUND';
  readonly UNKNOWN_NETWORK: 'NETGET_UNKNOWN_NETWORK';
  readonly UNSUPPORTED_VERSION: 'NETGET_UNSUPPORTED_VERSION';
  readonly PROTOCOL: 'NETGET_PROTOCOL';
  readonly RATE_LIMITED: 'NETGET_RATE_LIMITED';
  readonly UNREACHABLE: 'NETGET_UNREACHABLE';
  readonly TIMEOUT: 'NETGET_TIMEOUT';
  readonly CLOSED: 'NETGET_CLOSED';
  readonly IO: 'NETGET_IO';
  readonly INTERNAL: 'NETGET_INTERNAL';
};

/** One of netget's error codes. */
export type NetgetErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What every netget method throws or rejects with: an `Error` with a stable `code`. */
export interface NetgetError extends Error {
  code: NetgetErrorCode;
}

/** Whether `err` is an error reported by netget. */
export declare function isNetgetError(err: unknown): err is NetgetError;

/** A netget node: a registry, a service, or a client that only discovers. */
export declare class Netget {
  constructor(options?: NetgetOptions);
  /** The node's type, as given or inferred. */
  readonly nodeType: 'registry' | 'service' | 'client';
  /** A registry's URL once started; a member's current registry (ws://) while in session; else null. */
  readonly url: string | null;
  /** The node's Ed25519 public key (base64); a registry's once started. */
  readonly publicKey: string;
  /** A member's registry nodes, in order. */
  readonly registryNodes: string[];
  /**
   * Registries: listen, resolving with the URL (a started registry keeps the process alive
   * until `stop()`). Members: resolve once in session with a registry.
   */
  start(): Promise<string>;
  /** Registers this service node; resolves with the instance as the registry stored it. */
  registerWithNetwork(): Promise<Instance>;
  /** Removes this node's registration (the node stays connected). */
  deregister(): Promise<void>;
  /** One healthy instance (weighted random by default), or null. */
  discoverServiceNode(name: string, options?: DiscoverOptions): Promise<Instance | null>;
  /** Every matching instance. */
  discoverServiceNodes(name: string, options?: DiscoverOptions): Promise<Instance[]>;
  /** The services of the network with instance counts. */
  services(): Promise<ServiceSummary[]>;
  /** Calls `callback` on every change to `name`; returns the function that stops watching. */
  watch(name: string, callback: (event: WatchEvent) => void): () => void;
  /** Calls `callback` on every message on `channel`; returns the function that unsubscribes. */
  subscribe(channel: string, callback: (message: ChannelMessage) => void): () => void;
  /** Publishes on `channel`; resolves with the number of subscribers reached. */
  publish(channel: string, data?: unknown): Promise<number>;
  /** Adds a registry node to fail over to. */
  addRegistryNode(url: string): void;
  /** Removes a registry node. */
  removeRegistryNode(url: string): void;
  /** Deregisters, closes sessions and ends watches; a registry stops listening. Idempotent. */
  stop(): Promise<void>;
}
