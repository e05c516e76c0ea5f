/** The Kubernetes manifests may only name configuration keys that exist: no silent drift. */
import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import { configKeys } from '../src/config.js';

describe('k8s manifests', () => {
  const known = new Set(configKeys().map((k) => k.env));
  const dir = new URL('../k8s/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

  it('exist for both roles and the shared configuration', () => {
    expect(files).to.include.members(['gateway.yaml', 'aggregate.yaml', 'config.yaml']);
  });

  it('name only real SLUICE_* configuration keys', () => {
    for (const file of files) {
      const text = readFileSync(new URL(file, dir), 'utf8');
      const names = [...text.matchAll(/\b(SLUICE_[A-Z0-9_]+)\b/g)].map((m) => m[1]!);
      for (const name of names) expect(known.has(name), `${file}: ${name} is not a configuration key`).to.equal(true);
    }
  });
});
