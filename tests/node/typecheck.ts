// A typed tour of the package, checked by `tsc --noEmit` (npm run typecheck), never run: if the
// declarations drift from the API, this stops compiling.
import express from 'express';
import { ErrorCode, isNetgetError, Netget } from 'netget';
import type {
  ChannelMessage,
  DiscoverOptions,
  FilterRequest,
  Instance,
  NetgetError,
  NetgetOptions,
  ServiceSummary,
  WatchEvent,
} from 'netget';
import { attach } from 'netget/express';
import type { Registration } from 'netget/express';

async function tour(): Promise<void> {
  const registry = new Netget({
    nodeType: 'registry',
    network: 'development',
    listen: '127.0.0.1:0',
    dataDir: './netget-data',
    sessionTimeout: '5s',
    filter: async (request: FilterRequest) =>
      request.kind !== 'register' || request.service !== 'blocked' || { allow: false, reason: 'no' },
  });
  const url: string = await registry.start();
  const maybeUrl: string | null = registry.url;

  const options: NetgetOptions = {
    nodeType: 'service',
    metadata: {
      name: 'DatabaseService',
      description: 'Provides database functionalities',
      address: 'http://127.0.0.1:5432',
      tags: ['v1'],
      version: '1.2.0',
    },
    network: 'development',
    registryNodes: [url],
    health: { http: 'http://127.0.0.1:5432/health', interval: '5s' },
    tls: { ca: 'ca.pem' },
  };
  const node = new Netget(options);
  const registered: Instance = await node.registerWithNetwork();
  const one: Instance | null = await node.discoverServiceNode('DatabaseService');
  const discover: DiscoverOptions = { tags: ['v1'], healthyOnly: true, strategy: 'round-robin', cached: false };
  const many: Instance[] = await node.discoverServiceNodes('DatabaseService', discover);
  const listed: ServiceSummary[] = await node.services();
  const unwatch: () => void = node.watch('DatabaseService', (event: WatchEvent) => {
    const kind: 'up' | 'down' | 'changed' = event.type;
    const status: 'passing' | 'warning' | 'critical' = event.instance.status;
    void kind;
    void status;
  });
  node.addRegistryNode('http://127.0.0.1:7701');
  node.removeRegistryNode('http://127.0.0.1:7701');
  const nodes: string[] = node.registryNodes;
  const unsubscribe = node.subscribe('chat', (message: ChannelMessage) => {
    const data: unknown = message.data;
    void data;
  });
  const delivered: number = await node.publish('chat', { text: 'hi' });
  const key: string = node.publicKey;
  const kind: 'registry' | 'service' | 'client' = node.nodeType;
  unwatch();
  unsubscribe();
  await node.deregister();
  await node.stop();
  await registry.stop();

  try {
    new Netget({ nodeType: 'client', registryNodes: ['http://127.0.0.1:1'] });
  } catch (err) {
    if (isNetgetError(err)) {
      const e: NetgetError = err;
      if (e.code === ErrorCode.UNREACHABLE || e.code === 'NETGET_INVALID_INPUT') console.log(e.message);
    }
  }

  const app = express();
  const registration: Registration = attach(app, { name: 'web', registryNodes: [url], tags: ['v1'] });
  app.listen(0);
  const instance: Instance = await registration.ready;
  const webNode: Netget | null = registration.node;
  await registration.close();

  void [maybeUrl, registered, one, many, listed, nodes, delivered, key, kind, instance, webNode];
}

void tour;
