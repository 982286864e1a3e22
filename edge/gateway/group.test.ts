import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { GatewayGroup, inboxFilter, inboxTopic, memberId, membersFilter } from './group.js';
import { levelsMatch, subscriptionLevels } from '../../exporters/mqtt/topics.js';

const devices = Array.from({ length: 3000 }, (_, i) => `dev-${String(i).padStart(4, '0')}`);

function groupOf(ids: readonly string[], clock = new FakeClock()): GatewayGroup[] {
  return ids.map((self) => {
    const g = new GatewayGroup(self, { clock, memberTimeoutMs: 60_000 });
    for (const other of ids) g.heard(other, true);
    return g;
  });
}

function owners(g: GatewayGroup): Map<string, string> {
  return new Map(devices.map((d) => [d, g.ownerOf('site', d)]));
}

describe('GatewayGroup', () => {
  it('gives every device exactly one owner, the same in every member’s view, in fair shares', () => {
    const members = groupOf(['gw-a', 'gw-b', 'gw-c']);
    const views = members.map(owners);
    expect(views[1]).toEqual(views[0]);
    expect(views[2]).toEqual(views[0]);
    for (const d of devices)
      expect(members.filter((m) => m.owns('site', d)).map((m) => m.self)).toEqual([
        views[0]!.get(d),
      ]);
    const shares = members.map((m) => devices.filter((d) => m.owns('site', d)).length);
    // A third each, give or take sampling noise (3,000 devices: ±5 % is over 4 standard deviations).
    for (const n of shares) expect(Math.abs(n - 1000)).toBeLessThan(150);
  });

  it('moves only the devices of a member that leaves, and a fair share to one that joins', () => {
    const [a] = groupOf(['gw-a', 'gw-b', 'gw-c']);
    const before = owners(a!);
    expect(a!.heard('gw-c', false)).toBe(true);
    const after = owners(a!);
    for (const d of devices) {
      if (before.get(d) !== 'gw-c') expect(after.get(d)).toBe(before.get(d));
      else expect(['gw-a', 'gw-b']).toContain(after.get(d));
    }
    expect(a!.heard('gw-d', true)).toBe(true);
    const joined = owners(a!);
    const moved = devices.filter((d) => joined.get(d) !== after.get(d));
    expect(moved.every((d) => joined.get(d) === 'gw-d')).toBe(true);
    expect(Math.abs(moved.length - 1000)).toBeLessThan(150);
  });

  it('reports changes only, never drops itself, and forgets members not heard within the timeout', async () => {
    const clock = new FakeClock();
    const g = new GatewayGroup('me', { clock, memberTimeoutMs: 60_000 });
    expect(g.members()).toEqual(['me']);
    expect(g.ownerOf('s', 'n')).toBe('me');
    expect(g.heard('me', false)).toBe(false);
    expect(g.heard('other', true)).toBe(true);
    expect(g.heard('other', true)).toBe(false);
    expect(g.members()).toEqual(['me', 'other']);
    await clock.advance(59_000);
    expect(g.expire()).toBe(false);
    g.heard('other', true);
    await clock.advance(59_000);
    expect(g.expire()).toBe(false);
    await clock.advance(2_000);
    expect(g.expire()).toBe(true);
    expect(g.members()).toEqual(['me']);
    expect(g.heard('gone', false)).toBe(false);
  });

  it('names members and inboxes with topic levels the fleet filters never match', () => {
    expect(memberId('gpulse-gateway-host/1+#')).toBe('gpulse-gateway-host-1--');
    const topic = inboxTopic('fleet', 'gw-a', { site: 's', node: 'n' }, 'telemetry');
    expect(topic).toBe('gpulse/gateway/v1/fleet/inbox/gw-a/s/n/telemetry');
    expect(levelsMatch(subscriptionLevels(inboxFilter('fleet', 'gw-a')), topic.split('/'))).toBe(
      true,
    );
    expect(levelsMatch(subscriptionLevels(inboxFilter('fleet', 'gw-b')), topic.split('/'))).toBe(
      false,
    );
    for (const filter of ['gpulse/v1/+/+/telemetry', 'gpulse/v1/+/+/status'])
      expect(levelsMatch(filter.split('/'), topic.split('/'))).toBe(false);
    expect(membersFilter('fleet')).toBe('gpulse/gateway/v1/fleet/member/+');
  });
});
