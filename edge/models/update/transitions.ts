import type { UpdateState } from '../state.js';

/** What moves an update from one persisted state to the next. */
export const UPDATE_EVENTS = [
  'download',
  'assembled',
  'verified',
  'activated',
  'restarted',
  'healthy',
  'passed',
  'roll_back',
  'restored',
  'fail',
] as const;

/** One event of the update state machine. */
export type UpdateEvent = (typeof UPDATE_EVENTS)[number];

/** One legal transition: in state `from`, `event` leads to `to`, carried out by `action`. */
export interface Transition {
  readonly from: UpdateState;
  readonly event: UpdateEvent;
  readonly to: UpdateState;
  /** The exported function (module/function) that writes this transition and does its work. */
  readonly action: string;
}

/**
 * Every legal transition of an update. The updater writes a state only through this table
 * (UpdateContext.transition), so a path missing here fails loudly instead of leaving state.json
 * in a state a restart cannot resume from.
 */
export const TRANSITIONS: readonly Transition[] = [
  // A new manifest (or a retry of the same one after a failed or interrupted download).
  { from: 'idle', event: 'download', to: 'downloading', action: 'downloading/download' },
  { from: 'committed', event: 'download', to: 'downloading', action: 'downloading/download' },
  { from: 'rolled_back', event: 'download', to: 'downloading', action: 'downloading/download' },
  { from: 'failed', event: 'download', to: 'downloading', action: 'downloading/download' },
  { from: 'downloading', event: 'download', to: 'downloading', action: 'downloading/download' },
  { from: 'downloading', event: 'assembled', to: 'assembled', action: 'downloading/download' },
  { from: 'assembled', event: 'verified', to: 'verified', action: 'verifying/install' },
  { from: 'verified', event: 'activated', to: 'activated', action: 'activating/activate' },
  // A restart during activation or trial counts one more trial start and redoes the swap.
  { from: 'activated', event: 'restarted', to: 'activated', action: 'resuming/resume' },
  { from: 'trial', event: 'restarted', to: 'trial', action: 'resuming/resume' },
  { from: 'activated', event: 'healthy', to: 'trial', action: 'trial-window/healthAndTrial' },
  { from: 'trial', event: 'healthy', to: 'trial', action: 'trial-window/healthAndTrial' },
  { from: 'trial', event: 'passed', to: 'committed', action: 'committing/commit' },
  { from: 'activated', event: 'roll_back', to: 'rolling_back', action: 'rolling-back/rollback' },
  { from: 'trial', event: 'roll_back', to: 'rolling_back', action: 'rolling-back/rollback' },
  { from: 'rolling_back', event: 'restored', to: 'rolled_back', action: 'rolling-back/rollback' },
  // Failures before `current` moved: nothing to roll back, the next check starts again.
  { from: 'downloading', event: 'fail', to: 'failed', action: 'failing/fail' },
  { from: 'assembled', event: 'fail', to: 'failed', action: 'failing/fail' },
  { from: 'verified', event: 'fail', to: 'failed', action: 'failing/fail' },
];

/** A transition the table does not allow (a bug in the updater, or a state.json edited by hand). */
export class IllegalTransitionError extends Error {
  constructor(
    readonly from: UpdateState,
    readonly event: UpdateEvent,
  ) {
    const legal = legalEvents(from);
    super(
      `illegal model update transition: event "${event}" in state "${from}" (legal there: ${legal.length > 0 ? legal.join(', ') : 'none'}); state.json is left as it was — report this as a gpulse bug, or remove the "update" entry of state.json to start the update afresh`,
    );
  }
}

/** The events the table accepts in a state, in table order. */
export function legalEvents(from: UpdateState): UpdateEvent[] {
  return TRANSITIONS.filter((t) => t.from === from).map((t) => t.event);
}

/** The state `event` leads to from `from`; throws IllegalTransitionError when the table has no such row. */
export function nextState(from: UpdateState, event: UpdateEvent): UpdateState {
  const t = TRANSITIONS.find((r) => r.from === from && r.event === event);
  if (!t) throw new IllegalTransitionError(from, event);
  return t.to;
}
