// TypeScript declarations of `netget/express` (the runtime is express.js).
import type { Server } from 'node:http';
import type { HealthCheck, Instance, Metadata, Netget, NetgetOptions } from './index';

/** Options of `attach()`: the service, the integration, and any option of `new Netget()`. */
export interface AttachOptions extends Omit<NetgetOptions, 'nodeType' | 'metadata' | 'health' | 'filter'> {
  /** The service name. */
  name: string;
  /** Where clients reach the app (default `http://127.0.0.1:<listening port>`). */
  address?: string;
  tags?: string[];
  version?: string;
  /** More fields of the instance's metadata. */
  metadata?: Metadata;
  /** The health route added to the app (default `'/health'`). */
  healthPath?: string;
  /** The registry's check (default: HTTP GET of the health route); `false` for none. */
  health?: HealthCheck | false;
  /** Signals that deregister and end the process (default `['SIGTERM', 'SIGINT']`); `false` for none. */
  signals?: NodeJS.Signals[] | false;
}

/** What `attach()` returns. */
export interface Registration {
  /** Resolves with the registered instance once the server listens and the registry acknowledged. */
  readonly ready: Promise<Instance>;
  /** The service's node once the server listens, else null. */
  readonly node: Netget | null;
  /** `app.listen(...)`, registering the server it returns. */
  listen(...args: unknown[]): Server;
  /** Registers an http(s) server of this app (listening or about to). */
  register<S extends Server>(server: S): S;
  /** Deregisters and stops the node; the server keeps running. */
  close(): Promise<void>;
}

/** The part of an Express app that `attach()` uses. */
export interface AppLike {
  get(...args: any[]): any;
  listen(...args: any[]): Server;
}

/** Registers the app's service once its server listens; see express.js for the details. */
export declare function attach(app: AppLike, options: AttachOptions): Registration;
