import { describe, expect, it } from 'vitest';
import { compareVersions, cudaSupport, normaliseCuda } from './cuda-drivers.js';

describe('CUDA toolkit → driver table', () => {
  it('compares driver versions numerically, not as text', () => {
    expect(compareVersions('570.26', '570.124.06')).toBe(-1);
    expect(compareVersions('580.65.06', '580.65.6')).toBe(0);
    expect(compareVersions('13.1', '12.9')).toBe(1);
    expect(compareVersions('12.10', '12.9')).toBe(1);
  });

  it('reads CUDA versions as MAJOR.MINOR', () => {
    expect(normaliseCuda('12.4')).toBe('12.4');
    expect(normaliseCuda('12.4.1')).toBe('12.4');
    expect(normaliseCuda('cuda12.04')).toBe('12.4');
    expect(normaliseCuda('twelve')).toBeUndefined();
    expect(normaliseCuda('12')).toBeUndefined();
  });

  it('trusts the CUDA version the driver reports', () => {
    expect(cudaSupport('12.4', '590.48.01', '13.1')).toMatchObject({
      level: 'full',
      minimumDriver: '550.54.14',
    });
    expect(cudaSupport('13.1', '590.48.01', '13.1').level).toBe('full');
    // Newer than the table: still judged by the reported version.
    expect(cudaSupport('13.5', '590.48.01', '13.1')).toMatchObject({
      level: 'minor-compat',
      minimumDriver: undefined,
      minorCompatDriver: '580.65.06',
    });
  });

  it('allows minor version compatibility within a major only', () => {
    // A 535 driver reports CUDA 12.2: CUDA 12.4 apps run without PTX JIT, CUDA 13.0 apps do not.
    expect(cudaSupport('12.4', '535.104.05', '12.2').level).toBe('minor-compat');
    expect(cudaSupport('13.0', '535.104.05', '12.2')).toMatchObject({
      level: 'none',
      minimumDriver: '580.65.06',
    });
    // Below the major's first driver there is no compatibility at all.
    expect(cudaSupport('11.8', '450.36.06', '11.0').level).toBe('none');
  });

  it('falls back to the table for drivers that report no CUDA version', () => {
    expect(cudaSupport('11.4', '470.82.01').level).toBe('full');
    expect(cudaSupport('11.6', '470.82.01').level).toBe('minor-compat');
    expect(cudaSupport('12.7', '470.82.01').level).toBe('unknown');
  });
});
