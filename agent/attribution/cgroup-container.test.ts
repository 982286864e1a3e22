import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  containerFromCgroupFile,
  containerFromCgroupPath,
  containerFromMountinfo,
  parseCgroupFile,
  type CgroupContainer,
} from './cgroup-container.js';

const DIR = join(import.meta.dirname, '..', '..', 'collectors', 'docker', 'fixtures', 'cgroup');
const read = (name: string) => readFileSync(join(DIR, name), 'utf8');

const docker = (id: string, podUid?: string): CgroupContainer =>
  podUid ? { id, runtime: 'docker', podUid } : { id, runtime: 'docker' };
const unknown = (id: string, podUid?: string): CgroupContainer =>
  podUid ? { id, runtime: 'unknown', podUid } : { id, runtime: 'unknown' };
const containerd = (id: string, podUid: string): CgroupContainer => ({
  id,
  runtime: 'containerd',
  podUid,
});
const crio = (id: string, podUid: string): CgroupContainer => ({ id, runtime: 'cri-o', podUid });
const podman = (id: string): CgroupContainer => ({ id, runtime: 'podman' });

describe('parseCgroupFile', () => {
  it('keeps colons inside the path and the empty controller list of the unified line', () => {
    const lines = parseCgroupFile(
      '11:perf_event:/kubepods-besteffort-pod01.slice:cri-containerd:abc\n0::/\ngarbage\n5:cpu,cpuacct:/x\n',
    );
    expect(lines).toEqual([
      {
        hierarchyId: 11,
        controllers: ['perf_event'],
        path: '/kubepods-besteffort-pod01.slice:cri-containerd:abc',
      },
      { hierarchyId: 0, controllers: [], path: '/' },
      { hierarchyId: 5, controllers: ['cpu', 'cpuacct'], path: '/x' },
    ]);
  });
});

describe('/proc/<pid>/cgroup files (every file in fixtures/cgroup)', () => {
  const cases: readonly [string, CgroupContainer | undefined][] = [
    [
      'proc-pid-cgroup__v1-hybrid__host-root-pid1__amazon-linux-2__elastic-agent-system-metrics.txt',
      undefined,
    ],
    [
      'proc-pid-cgroup__v1-hybrid__kubepods-systemd-driver-burstable__cri-containerd-scope__amazon-linux-2__elastic-agent-system-metrics.txt',
      containerd(
        '1d3d308a7d48a27814a68bf33a44acf4441c9c02463ca0bc1cdfdc8c0b4a8496',
        '7a96c459-d529-44ae-9f99-90d3798d6426',
      ),
    ],
    [
      'proc-pid-cgroup__v1-hybrid__systemd-service-with-rdma__ubuntu-18.04__elastic-agent-system-metrics.txt',
      undefined,
    ],
    [
      'proc-pid-cgroup__v1__docker-cgroupfs-driver-docker-id__elastic-agent-system-metrics.txt',
      docker('b29faf21b7eff959f64b4192c34d5d67a707fe8561e9eaa608cb27693fba4242'),
    ],
    // The authors edited the id to "123": not a container id, so no container.
    ['proc-pid-cgroup__v1__docker-id-123-edited__elastic-agent-system-metrics.txt', undefined],
    // Composite file: its lines come from different hosts; the memory line decides.
    [
      'proc-pid-cgroup__v1__kubepods-cgroupfs-besteffort-guaranteed-double-kubepods-systemd-docker-scope__composite__container-info.txt',
      unknown(
        '34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376',
        '74c13223-5a00-11e9-b385-42010a80018d',
      ),
    ],
    // Read inside a cgroup namespace: a session scope, no container.
    [
      'proc-pid-cgroup__v2__cgroupns-relative-dotdot-user-slice-session-scope__elastic-agent-system-metrics.txt',
      undefined,
    ],
    [
      'proc-pid-cgroup__v2__system-slice-docker-id-scope__elastic-agent-system-metrics.txt',
      docker('1c8fa019edd4b9d4b2856f4932c55929c5c118c808ed5faee9a135ca6e84b039'),
    ],
  ];
  it.each(cases)('%s', (file, expected) => {
    expect(containerFromCgroupFile(read(file))).toEqual(expected);
  });

  it('reads each line of the composite file as its own host would', () => {
    const lines = parseCgroupFile(
      read(
        'proc-pid-cgroup__v1__kubepods-cgroupfs-besteffort-guaranteed-double-kubepods-systemd-docker-scope__composite__container-info.txt',
      ),
    );
    expect(lines.slice(0, 3).map((l) => containerFromCgroupPath(l.path))).toEqual([
      unknown(
        '244a65edefdffe31685c42317c9054e71dc1193048cf9459e2a4dd35cbc1dba4',
        '0e886e9a-3879-45f9-b44d-86ef9df03224',
      ),
      unknown(
        '7fe41c8a2d1da09420117894f11dd91f6c3a44dfeb7d125dc594bd53468861df',
        '5eadac96-ab58-11ea-b82b-0242ac110009',
      ),
      docker(
        'b15a5bdedd2e7645c3be271364324321b908314e4c77857bbfd32a041148c07f',
        '22949dce-fd8b-11ea-8ede-98f2b32c645c',
      ),
    ]);
  });
});

/** Data lines of an excerpt file grouped by their `# source:` annotation. */
function snippets(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const line of text.split('\n')) {
    const src = /^# source: (\S+)/.exec(line);
    if (src?.[1]) {
      current = src[1];
      // Two snippets share a source: keep them apart.
      while (out.has(current)) current += "'";
      out.set(current, []);
    } else if (!line.startsWith('#') && line.trim() !== '' && current) {
      out.get(current)?.push(line);
    }
  }
  return out;
}

/** A data line of the excerpt file: a /proc line, a cgroup directory path or the NRI log line. */
function fromExcerptLine(line: string): CgroupContainer | undefined {
  const abs = /absolutePath=(\S+)/.exec(line);
  if (abs?.[1]) return containerFromCgroupPath(abs[1]);
  const proc = parseCgroupFile(line)[0];
  return containerFromCgroupPath(proc ? proc.path : line);
}

describe('GitHub issue excerpts (proc-pid-cgroup__github-issue-excerpts.txt)', () => {
  const groups = snippets(read('proc-pid-cgroup__github-issue-excerpts.txt'));
  const D5 = docker('5dace3de0735f73d2b5048f12d41a71741a02e49668de921fdae62f7e65dc498');
  const ee4 = containerd(
    'ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459',
    '0125ec2f-b64a-4868-8f5b-94b56cbab864',
  );
  const runc = crio(
    '5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c',
    'a5c1f8d5-1919-434d-add7-4afaafdaef89',
  );
  const k8s = unknown(
    '0c34bcd7d02f321d0df7aa6ea703285b02abebc9096c5128c14091fc43ea1f3b',
    '0d33f94b-ab1a-11e6-9e1a-68f7281d8004',
  );
  const expected: Record<string, (CgroupContainer | undefined)[]> = {
    // Docker's id on some controllers only; pids/hugetlb/net_*/name=systemd stay at "/".
    'moby/moby#33352': [
      undefined,
      undefined,
      undefined,
      D5,
      undefined,
      D5,
      D5,
      D5,
      D5,
      D5,
      D5,
      D5,
      undefined,
    ],
    'open-telemetry/opentelemetry-java#4507': [ee4, ee4, ee4, ee4, ee4, ee4],
    'elastic/apm-agent-nodejs#3550': [
      containerd(
        '0f99ad5f45163ed14ab8eaf92ed34bb4a631d007f8755a7d79be614bcb0df0ef',
        'ff49d0be-16b7-4a49-bb9e-8ec1f1f4e27f',
      ),
    ],
    'opencontainers/runc#4620': [runc, runc, undefined],
    // crio-conmon is CRI-O's monitor, not the workload.
    'sustainable-computing-io/kepler#153': [undefined],
    // Only containerd.service visible: nothing to attribute.
    "sustainable-computing-io/kepler#153'": [undefined],
    'kubernetes/kubernetes#36807': [k8s, k8s],
    'kubernetes/kubernetes#106514': [
      containerd(
        'aaefb9d8feed2d453b543f6d928cede7a4dbefa6a0ae7c9b990dd234c56e93b9',
        '2fc932ce-fdcc-454b-97bd-aadfdeb4c340',
      ),
      // Shell-escaped colon form; a static pod's 32-hex config hash as the pod id.
      containerd(
        '79fedb3bd23ca77c9d9ccb41909038316f713df22b54b7d942b71d3812e7c74e',
        '36b6d6be73b1065af369b3985edafa09',
      ),
    ],
    // A terminal and the podman CLI's own scope: no container.
    'podman-container-tools/podman#20910': [undefined, undefined],
    'podman-container-tools/podman#9219': [
      podman('5e22f237b52c26e8845f98ae4e6bf8cdb8fe220ff9d2a904be308d311b4a043a'),
    ],
    'containerd/nri#227': [
      containerd(
        'd7dfb4a21fe1703a8537e60d5af248af729315d187b24a538102d14874c8117d',
        '1e597579-417e-482f-bf65-5fe170c3aebd',
      ),
    ],
    'microsoft/WSL#41492': [undefined, undefined, undefined, undefined],
  };

  it('covers every snippet of the file', () => {
    expect([...groups.keys()].sort()).toEqual(Object.keys(expected).sort());
  });
  for (const [source, want] of Object.entries(expected)) {
    it(source, () => {
      expect((groups.get(source) ?? []).map(fromExcerptLine)).toEqual(want);
    });
  }

  it('resolves the moby snippet as a whole file through its memory line', () => {
    expect(containerFromCgroupFile((groups.get('moby/moby#33352') ?? []).join('\n'))).toEqual(D5);
  });

  it('reads the NRI relative path (colon form) the same as the absolute one', () => {
    const line = groups.get('containerd/nri#227')?.[0] ?? '';
    const rel = /relativePath="([^"]+)"/.exec(line)?.[1] ?? '';
    expect(containerFromCgroupPath(rel)).toEqual(fromExcerptLine(line));
  });
});

describe('elastic/apm cgroup_parsing.json', () => {
  const spec = JSON.parse(
    read(
      'cgroup-lines__crio-scope-openshift-docker-scope-ecs-gnome-vte-spawn__with-expected-ids__elastic-apm-spec.json',
    ),
  ) as Record<string, { groupLine: string; containerId: string | null; podId: string | null }>;

  it.each(['testUnderscores', 'testOpenshiftForm', 'testUbuntuCGroup'])(
    '%s gives the spec container and pod ids',
    (name) => {
      const c = spec[name]!;
      const got = containerFromCgroupFile(c.groupLine);
      expect(got?.id ?? null).toBe(c.containerId);
      expect(got?.podUid ?? null).toBe(c.podId);
    },
  );

  it('testUnderscores and testOpenshiftForm name their engines', () => {
    expect(containerFromCgroupFile(spec.testUnderscores!.groupLine)?.runtime).toBe('cri-o');
    expect(containerFromCgroupFile(spec.testOpenshiftForm!.groupLine)?.runtime).toBe('docker');
  });

  it('testAwsEcsCGroup: a Fargate task id is no engine container id, so no container (the spec wants one)', () => {
    expect(spec.testAwsEcsCGroup!.containerId).toBe('03752a671e744971a862edcee6195646-4015103728');
    expect(containerFromCgroupFile(spec.testAwsEcsCGroup!.groupLine)).toBeUndefined();
  });
});

describe('New Relic cross-agent docker_container_id cases', () => {
  const dir = 'newrelic-docker_container_id';
  const cases = JSON.parse(read(`${dir}/cases.json`)) as {
    filename: string;
    containerId: string | null;
  }[];
  // New Relic reads the cpu controller only; the memory controller names the container too.
  const deviations: Record<string, string> = {
    'no_cpu_subsystem.txt': 'f37a7e4d17017e7bf774656b19ca4360c6cdc4951c86700a464101d0d9ce97ee',
  };

  it('has a case for every file', () => {
    const files = readdirSync(join(DIR, dir)).filter((f) => f.endsWith('.txt'));
    expect(files.sort()).toEqual(cases.map((c) => c.filename).sort());
  });
  it.each(cases)('$filename', ({ filename, containerId }) => {
    const got = containerFromCgroupFile(read(`${dir}/${filename}`));
    expect(got?.id ?? null).toBe(deviations[filename] ?? containerId);
  });

  it('names Docker only where the path says docker', () => {
    const runtime = (f: string) => containerFromCgroupFile(read(`${dir}/${f}`))?.runtime;
    expect(runtime('docker-1.3.txt')).toBe('docker');
    expect(runtime('docker-1.1.2-native-driver-systemd.txt')).toBe('docker');
    expect(runtime('docker-custom-prefix.txt')).toBe('unknown');
    expect(runtime('docker-gcp.txt')).toBe('unknown');
    expect(runtime('docker-1.1.2-lxc-driver.txt')).toBe('unknown');
  });
});

describe('containerFromMountinfo', () => {
  const dir = 'newrelic-docker_container_id_v2-mountinfo';
  const cases = JSON.parse(read(`${dir}/cases.json`)) as {
    filename: string;
    containerId: string | null;
  }[];

  it('has a case for every New Relic v2 file', () => {
    const files = readdirSync(join(DIR, dir)).filter((f) => f.endsWith('.txt'));
    expect(files.sort()).toEqual(cases.map((c) => c.filename).sort());
  });
  it.each(cases)('New Relic v2 $filename', ({ filename, containerId }) => {
    expect(containerFromMountinfo(read(`${dir}/${filename}`))?.id ?? null).toBe(containerId);
  });

  it('elastic/apm mounts_parsing.json', () => {
    const spec = JSON.parse(
      read('mountinfo-lines__docker-overlay-container-id__with-expected-id__elastic-apm-spec.json'),
    ) as { lines: string[]; containerId: string };
    expect(containerFromMountinfo(spec.lines.join('\n'))).toEqual(docker(spec.containerId));
  });

  it('a cgroup v1 mount root names the container when no engine file is bound', () => {
    expect(
      containerFromMountinfo(
        read(
          'proc-self-mountinfo__v1-and-v2-mounts__docker-fixture__elastic-agent-system-metrics.txt',
        ),
      ),
    ).toEqual(docker('3fc95ce32f84e9346c5fbd3bce38045e478aa5b067603955555cbff8445ba74f'));
  });

  it('a cgroup namespace root and an overlay layer id are no container id', () => {
    expect(
      containerFromMountinfo(
        read('proc-self-mountinfo__v2__docker2-fixture__elastic-agent-system-metrics.txt'),
      ),
    ).toBeUndefined();
  });

  it('Podman binds userdata/hostname from overlay-containers', () => {
    const id = 'ff516f4bd3d417bd855370f0e0f34d7d6c3797d0028c6a1a00fcef4f996e17b1';
    const line = `812 790 0:45 /containers/storage/overlay-containers/${id}/userdata/hostname /etc/hostname rw,nosuid,nodev,relatime - tmpfs tmpfs rw`;
    expect(containerFromMountinfo(line)).toEqual(podman(id));
  });
});

describe('containerFromCgroupPath edge cases', () => {
  const id = 'd091340e343d52765b99c385c9c8588717dcdedc0515dfc9c872284abae8bf5c';
  it('Podman with the cgroupfs manager (as run here) and its conmon scope', () => {
    expect(containerFromCgroupPath(`/libpod_parent/libpod-${id}`)).toEqual(podman(id));
    expect(containerFromCgroupPath(`/libpod_parent/libpod-conmon-${id}`)).toBeUndefined();
  });
  it('nested containers resolve to the innermost one', () => {
    const inner = 'a'.repeat(64);
    expect(containerFromCgroupPath(`/docker/${id}/docker/${inner}`)).toEqual(docker(inner));
  });
  it('uppercase or 63/65 characters are no id', () => {
    expect(containerFromCgroupPath(`/docker/${id.toUpperCase()}`)).toBeUndefined();
    expect(containerFromCgroupPath(`/docker/${id.slice(1)}`)).toBeUndefined();
    expect(containerFromCgroupPath(`/docker/${id}0`)).toBeUndefined();
  });
});
