/** The kernel log collector as the registry sees it. */
import { defineCollector } from '../descriptor.js';

/** kmsg: Xid errors and GPU driver messages from the kernel log. */
export const kmsgCollector = defineCollector({
  name: 'kmsg',
  produces: ['xidTotals', 'xidErrors'],
  loadSchema: async () => (await import('./config.js')).kmsgConfigSchema,
  create: async (section) => (await import('./kmsg.js')).createKmsgCollector(section),
  loadMetrics: () => import('./kmsg.js'),
});
