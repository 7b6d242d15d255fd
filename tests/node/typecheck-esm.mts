// The ESM entry point has the same named exports (checked by `tsc --noEmit`, never run).
import { ErrorCode, Netget } from 'netget';
import type { Instance } from 'netget';

export async function firstInstance(url: string): Promise<Instance | null> {
  const node = new Netget({ registryNodes: [url] });
  try {
    return await node.discoverServiceNode('web');
  } finally {
    await node.stop();
  }
}

export const unauthorized: 'NETGET_UNAUTHORIZED' = ErrorCode.UNAUTHORIZED;
