import { describe, expect, it } from 'vitest';
import { subjectAltNames } from './tls-server.js';

describe('subjectAltNames', () => {
  it('reads the names Node prints, quoted ones included', () => {
    expect(
      subjectAltNames(
        'DNS:prometheus.monitoring.svc, URI:spiffe://cluster/ns/monitoring/sa/prometheus, email:ops@example.com, IP Address:10.0.0.7',
      ),
    ).toEqual([
      'prometheus.monitoring.svc',
      'spiffe://cluster/ns/monitoring/sa/prometheus',
      'ops@example.com',
      '10.0.0.7',
    ]);
    expect(subjectAltNames('DNS:"a, b", DNS:c')).toEqual(['a, b', 'c']);
    expect(subjectAltNames('othername:<unsupported>, DNS:d')).toEqual(['d']);
    expect(subjectAltNames(undefined)).toEqual([]);
  });

  it('spells IPv6 addresses one way', () => {
    expect(subjectAltNames('IP Address:0:0:0:0:0:0:0:1, IP Address:FE80:0:0:0:0:0:0:1')).toEqual([
      '::1',
      'fe80::1',
    ]);
  });
});
