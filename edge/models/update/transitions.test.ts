import { describe, expect, it } from 'vitest';
import { useUpdateFixture } from '../../../test/helpers/models/update-fixture.js';
import { TERMINAL_STATES, UPDATE_STATES, type UpdateState } from '../state.js';
import * as activating from './activating.js';
import * as checking from './checking.js';
import * as committing from './committing.js';
import * as downloading from './downloading.js';
import * as failing from './failing.js';
import * as resuming from './resuming.js';
import * as rollingBack from './rolling-back.js';
import * as trialWindow from './trial-window.js';
import * as verifying from './verifying.js';
import {
  IllegalTransitionError,
  legalEvents,
  nextState,
  TRANSITIONS,
  UPDATE_EVENTS,
  type UpdateEvent,
} from './transitions.js';

const legal = (from: UpdateState, event: UpdateEvent) =>
  TRANSITIONS.find((t) => t.from === from && t.event === event);

const ALL_PAIRS = UPDATE_STATES.flatMap((from) => UPDATE_EVENTS.map((event) => ({ from, event })));
const ILLEGAL = ALL_PAIRS.filter(({ from, event }) => !legal(from, event));

describe('update transition table', () => {
  it('has one row per (state, event) and only known states and events', () => {
    const keys = TRANSITIONS.map((t) => `${t.from}/${t.event}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const t of TRANSITIONS) {
      expect(UPDATE_STATES).toContain(t.from);
      expect(UPDATE_STATES).toContain(t.to);
      expect(UPDATE_EVENTS).toContain(t.event);
    }
    expect(TRANSITIONS).toHaveLength(19);
    expect(ILLEGAL).toHaveLength(UPDATE_STATES.length * UPDATE_EVENTS.length - 19);
  });

  it('reaches every state from idle, and a finished state from every state', () => {
    const reach = (from: UpdateState): Set<UpdateState> => {
      const seen = new Set<UpdateState>([from]);
      for (let grew = true; grew;) {
        grew = false;
        for (const t of TRANSITIONS)
          if (seen.has(t.from) && !seen.has(t.to)) {
            seen.add(t.to);
            grew = true;
          }
      }
      return seen;
    };
    expect([...reach('idle')].sort()).toEqual([...UPDATE_STATES].sort());
    for (const s of UPDATE_STATES)
      expect([...reach(s)].some((r) => r !== s && TERMINAL_STATES.has(r)) || s === 'idle').toBe(
        true,
      );
  });

  it('never moves `current` back without a rollback: only trial commits, only rolling_back ends rolled_back', () => {
    expect(TRANSITIONS.filter((t) => t.to === 'committed').map((t) => t.from)).toEqual(['trial']);
    expect(TRANSITIONS.filter((t) => t.to === 'rolled_back').map((t) => t.from)).toEqual([
      'rolling_back',
    ]);
    // After `current` moved (activated, trial) a failure is a rollback, never a plain failure.
    expect(legalEvents('activated')).not.toContain('fail');
    expect(legalEvents('trial')).not.toContain('fail');
    expect(legalEvents('rolling_back')).toEqual(['restored']);
  });

  it('names an exported function of the state modules as the action of every row', () => {
    const modules: Record<string, Record<string, unknown>> = {
      activating,
      checking,
      committing,
      downloading,
      failing,
      resuming,
      'rolling-back': rollingBack,
      'trial-window': trialWindow,
      verifying,
    };
    for (const t of TRANSITIONS) {
      const [mod = '', fn = ''] = t.action.split('/');
      expect(typeof modules[mod]?.[fn], t.action).toBe('function');
    }
  });

  it.each(ILLEGAL)('refuses $event in $from with an error naming both', ({ from, event }) => {
    let err: unknown;
    try {
      nextState(from, event);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IllegalTransitionError);
    const message = (err as Error).message;
    expect(message).toContain(`event "${event}" in state "${from}"`);
    const allowed = legalEvents(from);
    expect(message).toContain(allowed.length > 0 ? allowed.join(', ') : 'none');
  });
});

describe('UpdateContext.transition writes only what the table allows', () => {
  const t = useUpdateFixture([['1.0.0', 1]], { once: true });

  it.each(TRANSITIONS.map((row) => ({ ...row })))(
    '$from --$event--> $to',
    async ({ from, event, to }) => {
      const { f } = t;
      const [r] = t.r;
      const ctx = await f.context(from === 'idle' ? {} : { update: f.record(from, r) });
      await f.clock.advance(61_000);
      const written = await ctx.transition(event, f.record(from, r, { bytes_total: 123 }));
      const at = new Date(f.clock.now()).toISOString();
      expect(written).toMatchObject({ state: to, updated_at: at, bytes_total: 123 });
      expect((await f.saved()).update).toMatchObject({ state: to, updated_at: at });
      expect(f.states).toEqual([to]);
      expect(f.progress.at(-1)).toMatchObject({ state: to, version: '1.0.0', updated_at: at });
    },
  );

  it.each(ILLEGAL.filter((p) => p.from !== 'idle'))(
    'refuses $event in $from and leaves state.json as it was',
    async ({ from, event }) => {
      const { f } = t;
      const [r] = t.r;
      const ctx = await f.context({ update: f.record(from, r) });
      const before = await f.saved();
      await expect(ctx.transition(event, f.record(from, r))).rejects.toThrow(
        IllegalTransitionError,
      );
      expect(await f.saved()).toEqual(before);
      expect(ctx.state.update?.state).toBe(from);
      expect(f.states).toEqual([]);
    },
  );
});
