// A private containerd (Debian's, with its CRI plugin) driven through the CRI API as a kubelet
// would: the typed wrapper of containerd-daemon.mjs, which the benches share, with the programs
// found as the test suites find them.
import {
  startContainerd as startDaemon,
  TEST_IMAGE,
  type PodMeta,
  type TestContainer,
  type TestContainerd,
} from './containerd-daemon.mjs';
import { findTool, runningAsRoot, toolsInstalled, tools, type Precondition } from './tools.js';

export { TEST_IMAGE, type PodMeta, type TestContainer, type TestContainerd };

/** What a containerd suite needs: the programs (with their Debian packages) and root. */
export const CONTAINERD_PRECONDITIONS: readonly Precondition[] = [
  toolsInstalled(tools('containerd', 'ctr', 'runc', 'busybox', 'tar')),
  runningAsRoot('run containerd and its containers'),
];

function busyboxPath(): string {
  const busybox = findTool('busybox');
  if (!busybox) throw new Error('busybox not installed (Debian: busybox-static)');
  return busybox;
}

/**
 * Starts a private containerd with TEST_IMAGE imported; with `cri: false`, one whose CRI plugin
 * is disabled (as Docker's is), serving no CRI and holding no image. Stopped by `stop()`, never
 * by name.
 */
export function startContainerd(options: { readonly cri?: boolean } = {}): Promise<TestContainerd> {
  const cri = options.cri ?? true;
  return startDaemon({
    cri,
    busybox: cri ? busyboxPath() : undefined,
    containerd: findTool('containerd'),
    ctr: findTool('ctr'),
  });
}
