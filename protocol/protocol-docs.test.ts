/**
 * Keeps the protocol documents and the code's catalogs in step: a drift fails here, not in a
 * client. The documents are README.md and every other protocol/*.md (ops.md documents the ops
 * routes): a route or an error code may be documented in any one of them, and must be in one.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { ERROR_CATALOG, RSOCKET_ERROR, type ErrorCode } from './errors.js';
import { ROUTES } from './routes.js';

const dir = new URL('./', import.meta.url);
const documents = ['README.md', ...readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md').sort()]
  .map((name) => ({ name, text: readFileSync(new URL(name, dir), 'utf8') }));
const lines = documents.flatMap((d) => d.text.split('\n'));
const allText = documents.map((d) => d.text).join('\n');

const INTERACTION_WORDS = { fireAndForget: 'fire-and-forget', requestResponse: 'request/response', requestStream: 'request-stream' } as const;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A route table row: `| \`name\` | interaction | …`; route names are dotted lower-case words. */
const ROUTE_ROW = /^\| `([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)` \|/;

describe('protocol documents', () => {
  const errorRows = new Map<string, string[]>();
  for (const line of lines) {
    const m = /^\| `([A-Z_]+)` \|(.*)\|\s*$/.exec(line);
    if (m) errorRows.set(m[1]!, m[2]!.split('|').map((c) => c.trim()));
  }

  it('reads README.md first and every other protocol/*.md', () => {
    expect(documents[0]!.name).to.equal('README.md');
    expect(documents.map((d) => d.name)).to.deep.equal(['README.md', ...readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md').sort()]);
  });

  it('documents every error code with its RSocket error and retry hint', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOG)) {
      const row = errorRows.get(code);
      expect(row, `a documented row for ${code}`).to.not.equal(undefined);
      const hex = `0x${RSOCKET_ERROR[entry.rsocket].toString(16).padStart(3, '0')}`;
      expect(row![0], `${code} RSocket error`).to.equal(`${entry.rsocket} (${hex})`);
      expect(row![1], `${code} retryable`).to.equal(entry.retryable ? 'yes' : 'no');
    }
  });

  it('documents no error code the catalog does not have', () => {
    for (const code of errorRows.keys()) expect(ERROR_CATALOG, `catalog entry for ${code}`).to.have.property(code as ErrorCode);
  });

  it('documents every route with its interaction model and a section of its own', () => {
    for (const [route, spec] of Object.entries(ROUTES)) {
      const row = lines.find((l) => l.startsWith(`| \`${route}\` |`));
      expect(row, `a route table row for ${route}`).to.not.equal(undefined);
      expect(row).to.contain(`| ${INTERACTION_WORDS[spec.interaction]} |`);
      expect(allText, `a section for ${route}`).to.match(new RegExp(`^#{3,4} \`${escape(route)}\``, 'm'));
    }
  });

  it('documents no route the tables do not have, and each once', () => {
    const documented = lines.map((l) => ROUTE_ROW.exec(l)?.[1]).filter((r): r is string => r !== undefined);
    expect([...documented].sort()).to.deep.equal(Object.keys(ROUTES).sort());
  });
});
