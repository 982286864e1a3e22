/**
 * The sockets looked for, in order, when `collectors.cri.socket` is unset: containerd's, then
 * CRI-O's. Apart from config.ts so that the collector does not bring zod into the daemon.
 */
export const DEFAULT_CRI_SOCKETS = [
  '/run/containerd/containerd.sock',
  '/var/run/crio/crio.sock',
] as const;
