// ESM entry point of netget: the same named exports as the CommonJS one (index.js).
import netget from './index.js';

export const { Netget, ErrorCode, isNetgetError } = netget;
