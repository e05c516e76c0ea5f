/**
 * The `sluice` admin command line end to end, as an operator uses it: a `sluice` process started
 * with no key configured creates a deployment admin key on first start and shows it once in its
 * log; with it, `sluice org create`, `site create`, `key create` and `key revoke` (each its own
 * process) manage the running server over RSocket, and what they make works at once: the new
 * key sends events, and once revoked its open connection is closed and it is refused.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { ApiKeyInfo, Organisation, Site } from '../../protocol/admin-schema.js';
import type { TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { waitFor } from '../support/wait-for.js';
import { closeCode, outcome } from './tenancy-fixture.js';

interface CliResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function sluice(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const [status] = await once(child, 'exit') as [number];
  return { status, stdout, stderr };
}

describe('the sluice admin command line against a running server', function () {
  this.timeout(120_000);
  let server: ChildProcess | undefined;
  const lines: string[] = [];

  after(async () => {
    if (server && server.exitCode === null) {
      const exit = once(server, 'exit');
      server.kill('SIGTERM');
      await exit;
    }
  });

  it('bootstraps an admin key on first start, then creates an organisation, a site and a key, and revokes it', async () => {
    server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { ...process.env, SLUICE_GATEWAY_TCP_PORT: '0', SLUICE_GATEWAY_WS_PORT: '0', SLUICE_GATEWAY_HTTP_PORT: '0', SLUICE_GATEWAY_API_KEYS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    const collect = (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
    };
    server.stdout!.on('data', collect);
    server.stderr!.on('data', collect);
    const started = await waitFor(() => lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } })
      .find((l) => typeof l?.msg === 'string' && l.msg.startsWith('Sluice started')), { what: 'the start-up line', deadlineMs: 60_000 });
    const keyLines = lines.filter((l) => /slk_[A-Za-z0-9_-]{20,}/.test(l));
    expect(keyLines, 'the bootstrap key is shown exactly once').to.have.length(1);
    const adminKey = /slk_[A-Za-z0-9_-]{20,}/.exec(keyLines[0]!)![0];
    const env = { SLUICE_SERVER: `tcp://127.0.0.1:${started.tcp as number}` };
    const json = <T>(r: CliResult): T => {
      expect(r.status, r.stderr).to.equal(0);
      return JSON.parse(r.stdout) as T;
    };

    const org = json<Organisation>(await sluice(['org', 'create', '--name', 'Acme', '--id', 'acme', '--key', adminKey], env));
    expect(org).to.include({ id: 'acme', name: 'Acme' });
    const site = json<Site>(await sluice(['site', 'create', '--org', 'acme', '--id', 'shop.acme.example', '--time-zone', 'Asia/Kolkata', '--origin', 'https://shop.acme.example'],
      { ...env, SLUICE_ADMIN_KEY: adminKey }));
    expect(site).to.include({ id: 'shop.acme.example', orgId: 'acme', timeZone: 'Asia/Kolkata' });
    expect(site.publicId).to.match(/^pub_/);
    const created = json<{ secret: string; key: ApiKeyInfo }>(await sluice(['key', 'create', '--org', 'acme', '--scope', 'ingest:shop.acme.example', '--label', 'shop tracker', '--key', adminKey], env));
    expect(created.key.scope).to.deep.equal({ kind: 'ingest', site: 'shop.acme.example' });
    expect(created.secret).to.match(/^slk_/);
    const listed = json<{ keys: ApiKeyInfo[] }>(await sluice(['key', 'list', '--org', 'acme', '--key', adminKey], env));
    expect(listed.keys.map((k) => k.id)).to.deep.equal([created.key.id]);
    expect(JSON.stringify(listed)).to.not.contain(created.secret);

    // The new key works at once, and is refused what its scope does not allow.
    const tracker = await SluiceClient.connect({ url: env.SLUICE_SERVER, apiKey: created.secret });
    const now = Date.now();
    expect((await tracker.sendBatch([{ type: 'pageview', site: 'shop.acme.example', url: 'https://shop.acme.example/', timestamp: now }])).accepted).to.equal(1);
    expect(await outcome(tracker.request('query.totals', { site: 'shop.acme.example', from: now - 60_000, to: now + 60_000 }))).to.equal('FORBIDDEN');
    const admin = await SluiceClient.connect({ url: env.SLUICE_SERVER, apiKey: adminKey });
    await waitFor(async () => (await admin.request<TotalsResponse>('query.totals', { site: 'shop.acme.example', from: now - 60_000, to: now + 60_000 })).totals.pageviews === 1,
      { what: 'the tracker\'s pageview', deadlineMs: 20_000 });

    const closed = closeCode(tracker);
    const revoked = json<ApiKeyInfo>(await sluice(['key', 'revoke', '--id', created.key.id, '--key', adminKey], env));
    expect(revoked.revokedAt).to.be.a('number');
    expect(await closed).to.equal('AUTH_REVOKED');
    const again = await SluiceClient.connect({ url: env.SLUICE_SERVER, apiKey: created.secret });
    expect(await outcome(again.sendBatch([{ type: 'pageview', site: 'shop.acme.example', url: 'https://shop.acme.example/' }]))).to.equal('AUTH_REVOKED');
    again.close();
    admin.close();
  });

  it('reports refusals with the catalog code and a non-zero status, and usage errors with status 2', async () => {
    const started = lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } }).find((l) => typeof l?.msg === 'string' && l.msg.startsWith('Sluice started'));
    expect(started, 'the server of the previous test').to.not.equal(undefined);
    const env = { SLUICE_SERVER: `tcp://127.0.0.1:${started!.tcp as number}` };
    const wrong = await sluice(['org', 'list', '--key', 'slk_wrong-key-for-the-cli-test'], env);
    expect(wrong.status).to.equal(1);
    expect(wrong.stderr).to.contain('AUTH_INVALID');
    const usage = await sluice(['key', 'create', '--org', 'acme', '--scope', 'everything', '--key', 'slk_x'], env);
    expect(usage.status).to.equal(2);
    expect(usage.stderr).to.contain('--scope');
  });
});
