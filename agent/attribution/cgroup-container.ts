import type { ContainerRuntime } from '../core/facts.js';

/** One line of /proc/<pid>/cgroup: `hierarchy-id:controller,list:path` (v2: `0::path`). */
export interface CgroupLine {
  readonly hierarchyId: number;
  /** Empty for the cgroup v2 (unified) line; `name=systemd` style entries kept as written. */
  readonly controllers: readonly string[];
  readonly path: string;
}

/** A container found in a cgroup path. */
export interface CgroupContainer {
  /** Full 64-hex container id, as the engine's API knows it. */
  readonly id: string;
  readonly runtime: ContainerRuntime;
  /** Kubernetes pod UID (dashed form) when the path goes through a pod cgroup. */
  readonly podUid?: string;
}

const ID = '[0-9a-f]{64}';
// Leaf names engines give a container's cgroup. Anchored on the whole segment so that monitor
// scopes (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) and ids of the wrong length never match.
const SEGMENT_RULES: readonly { readonly re: RegExp; readonly runtime: ContainerRuntime }[] = [
  { re: new RegExp(`^docker-(${ID})\\.scope$`), runtime: 'docker' },
  { re: new RegExp(`^cri-containerd-(${ID})\\.scope$`), runtime: 'containerd' },
  { re: new RegExp(`^crio-(${ID})\\.scope$`), runtime: 'cri-o' },
  { re: new RegExp(`^libpod-(${ID})(?:\\.scope)?$`), runtime: 'podman' },
];
// systemd cgroup driver of containerd/CRI-O/dockershim written as `<slice>:<runtime>:<id>` (cgroup v1,
// e.g. `kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>`); `\:` is how a shell escapes it.
const COLON_RULE = new RegExp(`^.*\\\\?:(cri-containerd|crio|docker)\\\\?:(${ID})$`);
const COLON_RUNTIME: Readonly<Record<string, ContainerRuntime>> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
};
const BARE_ID = new RegExp(`^${ID}$`);
// Pod cgroups: `pod<uid>` (cgroupfs driver) or `kubepods-<qos>-pod<uid_with_underscores>.slice`
// (systemd driver); static pods use a 32-hex config hash instead of a UUID.
const POD_RE =
  /(?:^|-)pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?$/;

/** Splits /proc/<pid>/cgroup text into lines; malformed lines are skipped. */
export function parseCgroupFile(text: string): CgroupLine[] {
  const out: CgroupLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // The path itself may contain colons (containerd's `slice:cri-containerd:id`): split twice only.
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const hierarchyId = Number(line.slice(0, first));
    const path = line.slice(second + 1);
    if (!Number.isInteger(hierarchyId) || !path.startsWith('/')) continue;
    const list = line.slice(first + 1, second);
    out.push({ hierarchyId, controllers: list === '' ? [] : list.split(','), path });
  }
  return out;
}

/**
 * The container a cgroup path belongs to, or undefined for host processes, pod-level cgroups,
 * monitors (conmon) and ids that are not 64 hex characters. The innermost match wins, so a
 * process in a sub-cgroup of a container (rootless Podman's `.../libpod-<id>.scope/container`)
 * and nested containers resolve to the container that directly holds the process.
 */
export function containerFromCgroupPath(path: string): CgroupContainer | undefined {
  const segments = path.split('/').filter((s) => s.length > 0);
  for (let i = segments.length - 1; i >= 0; i--) {
    const found = matchSegment(segments[i] ?? '', segments[i - 1]);
    if (!found) continue;
    const podUid = findPodUid(segments.slice(0, i + 1));
    return podUid ? { ...found, podUid } : found;
  }
  return undefined;
}

function matchSegment(
  segment: string,
  parent: string | undefined,
): { id: string; runtime: ContainerRuntime } | undefined {
  for (const rule of SEGMENT_RULES) {
    const m = rule.re.exec(segment);
    if (m?.[1]) return { id: m[1], runtime: rule.runtime };
  }
  const colon = COLON_RULE.exec(segment);
  if (colon?.[1] && colon[2])
    return { id: colon[2], runtime: COLON_RUNTIME[colon[1]] ?? 'unknown' };
  if (BARE_ID.test(segment)) {
    // cgroupfs drivers name the leaf by the bare id; only Docker's own parent says which engine.
    return { id: segment, runtime: parent === 'docker' ? 'docker' : 'unknown' };
  }
  return undefined;
}

function findPodUid(segments: readonly string[]): string | undefined {
  for (let i = segments.length - 1; i >= 0; i--) {
    // In the colon form the pod slice is the part before the first colon.
    const m = POD_RE.exec((segments[i] ?? '').split(/\\?:/)[0] ?? '');
    if (m?.[1]) return m[1].replaceAll('_', '-');
  }
  return undefined;
}

/**
 * The container of a process from its /proc/<pid>/cgroup text. The unified (v2) line is preferred
 * when it names a container, then the v1 memory controller (whose files hold the OOM counter),
 * then the first v1 line that names one: controllers can disagree (Docker on some hosts leaves
 * name=systemd and pids at "/").
 */
export function containerFromCgroupFile(text: string): CgroupContainer | undefined {
  const lines = parseCgroupFile(text);
  const unified = lines.find((l) => l.hierarchyId === 0 && l.controllers.length === 0);
  const fromUnified = unified && containerFromCgroupPath(unified.path);
  if (fromUnified) return fromUnified;
  const memory = lines.find((l) => l.controllers.includes('memory'));
  const fromMemory = memory && containerFromCgroupPath(memory.path);
  if (fromMemory) return fromMemory;
  for (const l of lines) {
    const found = containerFromCgroupPath(l.path);
    if (found) return found;
  }
  return undefined;
}

// Files Docker and Podman bind into every container; the source path carries the container id.
const ENGINE_FILE_RE = new RegExp(
  `/(containers|overlay-containers)/(${ID})/(?:userdata/)?(?:hostname|hosts|resolv\\.conf)$`,
);
const ENGINE_FILE_TARGETS = new Set(['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']);

/**
 * The container of a process from its /proc/<pid>/mountinfo, for when its cgroup path names none
 * (cgroup v2 with a private cgroup namespace shows `0::/`): the engine's bind-mounted
 * /etc/hostname (Docker `.../containers/<id>/hostname`, Podman `.../overlay-containers/<id>/userdata/hostname`),
 * else the root of a cgroup mount.
 */
export function containerFromMountinfo(text: string): CgroupContainer | undefined {
  let fromCgroupMount: CgroupContainer | undefined;
  for (const line of text.split('\n')) {
    const [head, tail] = line.split(' - ');
    const fields = (head ?? '').split(' ');
    const root = fields[3];
    const target = fields[4];
    if (!root || !target) continue;
    if (ENGINE_FILE_TARGETS.has(target)) {
      const m = ENGINE_FILE_RE.exec(root);
      if (m?.[2]) return { id: m[2], runtime: m[1] === 'overlay-containers' ? 'podman' : 'docker' };
    }
    const fstype = (tail ?? '').split(' ')[0];
    if (!fromCgroupMount && (fstype === 'cgroup' || fstype === 'cgroup2')) {
      fromCgroupMount = containerFromCgroupPath(root);
    }
  }
  return fromCgroupMount;
}
