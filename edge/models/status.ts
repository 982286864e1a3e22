import { readFile } from 'node:fs/promises';
import { ModelPaths, readStateAny, type ModelState } from './state.js';
import { currentTarget, downloadLine, fmtBytes, type UpdateProgress } from './updater.js';
import { readLinkIfExists } from './durable-fs.js';

/** What `gpulse model status` shows. */
export interface ModelStatus {
  readonly dir: string;
  readonly current_link?: string;
  readonly previous_link?: string;
  readonly state?: ModelState;
  readonly progress?: UpdateProgress;
}

/** Reads the status of a model root (never modifies it). */
export async function readModelStatus(dir: string): Promise<ModelStatus> {
  const paths = new ModelPaths(dir);
  const progress = await readFile(paths.progress, 'utf8')
    .then((t) => JSON.parse(t) as UpdateProgress)
    .catch(() => undefined);
  return {
    dir,
    current_link: await currentTarget(dir),
    previous_link: await readLinkIfExists(paths.previous),
    state: await readStateAny(paths),
    progress,
  };
}

/** Human-readable status lines. */
export function formatStatus(s: ModelStatus): string {
  const st = s.state;
  if (!st) return `${s.dir}: no model installed here yet (no state.json)\n`;
  const lines = [`model ${st.model} at ${s.dir}`];
  const ref = (r: { version: string; release: number; at?: string } | undefined) =>
    r ? `${r.version} (release ${r.release})${r.at ? `, since ${r.at}` : ''}` : 'none';
  lines.push(`  current     ${ref(st.current)}${s.current_link ? ` -> ${s.current_link}` : ''}`);
  lines.push(`  previous    ${ref(st.previous)}`);
  lines.push(`  highest     release ${st.highest_release}`);
  const u = st.update;
  if (u) {
    let line = `  update      ${u.state} ${u.version} (release ${u.release})`;
    const p = s.progress;
    if (u.state === 'downloading' && p && p.version === u.version) line += `: ${downloadLine(p)}`;
    else if (u.bytes_total > 0)
      line += `: downloaded ${fmtBytes(u.bytes_downloaded)}, reused ${fmtBytes(u.bytes_reused)} of ${fmtBytes(u.bytes_total)}`;
    if (u.reason) line += ` — ${u.reason}`;
    lines.push(line);
    lines.push(`              started ${u.started_at}, last change ${u.updated_at}`);
  }
  for (const q of st.quarantined)
    lines.push(`  quarantined ${q.version} (release ${q.release}) at ${q.at}: ${q.reason}`);
  return `${lines.join('\n')}\n`;
}
