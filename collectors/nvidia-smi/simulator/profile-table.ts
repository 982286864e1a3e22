/**
 * The simulated discrete-GPU machines by `--profile` name: plain data, so `gpulse simulate` can
 * check a profile name before it starts without loading the capture parsers behind profiles.ts.
 */

/** How a profile is built from the fixtures. */
export interface ProfileDefinition {
  /** Full capture (captures/…) whose idle and load states, help texts and -q text are used. */
  readonly capture: string;
  readonly gpuCount: number;
  /** VirtualClient CSV giving per-GPU bus ids and board spread for a multi-GPU box. */
  readonly identities?: string;
}

const H100 = 'captures/linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01__nvidia-gpu-exporter.txt';

/** The profiles GPULSE_SIM_PROFILE can name. */
export const PROFILES: Readonly<Record<string, ProfileDefinition>> = {
  'h100-8x': {
    capture: H100,
    gpuCount: 8,
    identities: 'csv/h100-80gb-hbm3-x8__535.161.07__query-gpu__virtualclient.csv',
  },
  h100: { capture: H100, gpuCount: 1 },
  'h100-mig': {
    capture: 'captures/linux-x86_64__nvidia-h100-mig__590.48.01__nvidia-gpu-exporter.txt',
    gpuCount: 1,
  },
  h200: {
    capture: 'captures/linux-x86_64__nvidia-h200__590.48.01__nvidia-gpu-exporter.txt',
    gpuCount: 1,
  },
  'h200-mig': {
    capture: 'captures/linux-x86_64__nvidia-h200-mig__590.48.01__nvidia-gpu-exporter.txt',
    gpuCount: 1,
  },
  'rtx-4080-super': {
    capture:
      'captures/linux-x86_64__nvidia-geforce-rtx-4080-super__595.71.05__nvidia-gpu-exporter.txt',
    gpuCount: 1,
  },
  'rtx-2080-super': {
    capture:
      'captures/linux-x86_64__nvidia-geforce-rtx-2080-super__610.57.04__nvidia-gpu-exporter.txt',
    gpuCount: 1,
  },
  'rtx-2080-super-windows': {
    capture:
      'captures/windows-x86_64__nvidia-geforce-rtx-2080-super__610.62__nvidia-gpu-exporter.txt',
    gpuCount: 1,
  },
};

/** Default profile. */
export const DEFAULT_PROFILE = 'h100-8x';
