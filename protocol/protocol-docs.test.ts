/** Keeps protocol/README.md and the code's catalogs in step: a drift fails here, not in a client. */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { ERROR_CATALOG, RSOCKET_ERROR, type ErrorCode } from './errors.js';
import { ROUTES } from './routes.js';

const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');

const INTERACTION_WORDS = { fireAndForget: 'fire-and-forget', requestResponse: 'request/response', requestStream: 'request-stream' } as const;

describe('protocol README', () => {
  const errorRows = new Map<string, string[]>();
  for (const line of readme.split('\n')) {
    const m = /^\| `([A-Z_]+)` \|(.*)\|\s*$/.exec(line);
    if (m) errorRows.set(m[1]!, m[2]!.split('|').map((c) => c.trim()));
  }

  it('documents every error code with its RSocket error and retry hint', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOG)) {
      const row = errorRows.get(code);
      expect(row, `README row for ${code}`).to.not.equal(undefined);
      const hex = `0x${RSOCKET_ERROR[entry.rsocket].toString(16).padStart(3, '0')}`;
      expect(row![0], `${code} RSocket error`).to.equal(`${entry.rsocket} (${hex})`);
      expect(row![1], `${code} retryable`).to.equal(entry.retryable ? 'yes' : 'no');
    }
  });

  it('documents no error code the catalog does not have', () => {
    for (const code of errorRows.keys()) expect(ERROR_CATALOG, `catalog entry for ${code}`).to.have.property(code as ErrorCode);
  });

  it('documents every route with its interaction model and an example', () => {
    for (const [route, spec] of Object.entries(ROUTES)) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${route}\` |`));
      expect(row, `README table row for ${route}`).to.not.equal(undefined);
      expect(row).to.contain(`| ${INTERACTION_WORDS[spec.interaction]} |`);
      expect(readme, `a section for ${route}`).to.match(new RegExp(`^### \`${route.replace('.', '\\.')}\``, 'm'));
    }
    const documented = [...readme.matchAll(/^\| `([a-z]+\.[a-z]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).to.deep.equal(Object.keys(ROUTES).sort());
  });
});
