/**
 * `sluice <noun> <verb>`: the admin command line. It is a client like any other: it connects
 * to a running gateway over RSocket with an admin key and calls the `admin.*` routes, so it
 * works the same against the embedded default and a cluster, and every rule (scopes, tenancy)
 * is enforced by the server, not here. Output is JSON on stdout; errors go to stderr with the
 * catalog code and a non-zero exit status.
 */
import { parseArgs } from 'node:util';
import { SluiceClient, SluiceClientError } from '../client/sluice-client.js';

export const ADMIN_HELP = `Usage: sluice <command> [options] --server tcp://host:port --key ADMIN_KEY

Admin commands (the key may also come from SLUICE_ADMIN_KEY, the server from SLUICE_SERVER):
  org create --name NAME [--id ID]
  org list
  site create --org ORG --id SITE [--domain D]... [--time-zone TZ] [--origin URL]...
  site update --id SITE [--time-zone TZ] [--domain D]... [--origin URL]... [--goals JSON]
  site list --org ORG
  user create --org ORG --email EMAIL --role SITE=ROLE...
  user list --org ORG
  key create --org ORG|- --scope ingest:SITE|read:SITE,SITE|site:SITE,SITE|admin [--label L] [--expires ISO] [--user USER]
  key list --org ORG|-
  key revoke --id KEY
  key rotate --id KEY
  visitor erase --site SITE (--visitor ID | --ip IP --user-agent UA) --from ISO --to ISO
"--org -" names the deployment itself (deployment-wide admin keys).
`;

interface Route {
  readonly route: string;
  readonly body: (o: Options) => unknown;
}

type Options = Record<string, string | string[] | undefined>;

class UsageError extends Error {}

const one = (o: Options, name: string): string => {
  const v = o[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
};
const opt = (o: Options, name: string): string | undefined => (typeof o[name] === 'string' ? o[name] : undefined);
const many = (o: Options, name: string): string[] | undefined => (Array.isArray(o[name]) ? o[name] : undefined);
const orgOrDeployment = (o: Options): string | null => (one(o, 'org') === '-' ? null : one(o, 'org'));

function parseScope(text: string, org: string | null): unknown {
  if (text === 'admin') return { kind: 'admin', orgId: org };
  const [kind, rest] = [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)];
  if (kind === 'ingest' && rest) return { kind: 'ingest', site: rest };
  if ((kind === 'read' || kind === 'site') && rest) return { kind, sites: rest.split(',').filter(Boolean) };
  throw new UsageError(`--scope must be ingest:SITE, read:SITE[,SITE…], site:SITE[,SITE…] or admin, not "${text}"`);
}

function withOptional(body: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) body[k] = v;
  return body;
}

const COMMANDS: Readonly<Record<string, Route>> = {
  'org create': { route: 'admin.org.create', body: (o) => withOptional({ name: one(o, 'name') }, { id: opt(o, 'id') }) },
  'org list': { route: 'admin.org.list', body: () => ({}) },
  'site create': {
    route: 'admin.site.create',
    body: (o) => withOptional({ orgId: one(o, 'org'), id: one(o, 'id') }, { domains: many(o, 'domain'), timeZone: opt(o, 'time-zone'), allowedOrigins: many(o, 'origin') }),
  },
  'site update': {
    route: 'admin.site.update',
    body: (o) => withOptional({ id: one(o, 'id') }, {
      domains: many(o, 'domain'), timeZone: opt(o, 'time-zone'), allowedOrigins: many(o, 'origin'),
      goals: opt(o, 'goals') === undefined ? undefined : JSON.parse(opt(o, 'goals')!) as unknown,
    }),
  },
  'site list': { route: 'admin.site.list', body: (o) => ({ orgId: one(o, 'org') }) },
  'user create': {
    route: 'admin.user.create',
    body: (o) => ({
      orgId: one(o, 'org'), email: one(o, 'email'),
      roles: Object.fromEntries((many(o, 'role') ?? []).map((r) => {
        const eq = r.indexOf('=');
        if (eq < 1) throw new UsageError(`--role must be SITE=ROLE, not "${r}"`);
        return [r.slice(0, eq), r.slice(eq + 1)];
      })),
    }),
  },
  'user list': { route: 'admin.user.list', body: (o) => ({ orgId: one(o, 'org') }) },
  'key create': {
    route: 'admin.key.create',
    body: (o) => {
      const orgId = orgOrDeployment(o);
      const expires = opt(o, 'expires');
      const expiresAt = expires === undefined ? undefined : Date.parse(expires);
      if (expiresAt !== undefined && !Number.isFinite(expiresAt)) throw new UsageError(`--expires is not a date: "${expires}"`);
      return withOptional({ orgId, scope: parseScope(one(o, 'scope'), orgId) }, { label: opt(o, 'label'), expiresAt, userId: opt(o, 'user') });
    },
  },
  'key list': { route: 'admin.key.list', body: (o) => ({ orgId: orgOrDeployment(o) }) },
  'key revoke': { route: 'admin.key.revoke', body: (o) => ({ id: one(o, 'id') }) },
  'key rotate': { route: 'admin.key.rotate', body: (o) => ({ id: one(o, 'id') }) },
  'visitor erase': {
    route: 'admin.visitor.erase',
    body: (o) => {
      const time = (name: string) => {
        const ms = Date.parse(one(o, name));
        if (!Number.isFinite(ms)) throw new UsageError(`--${name} is not a date: "${one(o, name)}"`);
        return ms;
      };
      const visitor = opt(o, 'visitor');
      const who = visitor !== undefined ? { visitor } : { ip: one(o, 'ip'), userAgent: one(o, 'user-agent') };
      return { site: one(o, 'site'), ...who, from: time('from'), to: time('to') };
    },
  },
};

export function isAdminCommand(argv: readonly string[]): boolean {
  return argv.length >= 2 && `${argv[0]} ${argv[1]}` in COMMANDS;
}

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** Runs one admin command; resolves to the process exit status. */
export async function runAdminCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const command = COMMANDS[`${argv[0]} ${argv[1]}`];
  if (!command) {
    io.err(ADMIN_HELP);
    return 2;
  }
  let body: unknown;
  let server: string;
  let key: string;
  try {
    const { values } = parseArgs({
      args: [...argv.slice(2)],
      options: {
        server: { type: 'string' }, key: { type: 'string' }, name: { type: 'string' }, id: { type: 'string' }, org: { type: 'string' },
        domain: { type: 'string', multiple: true }, origin: { type: 'string', multiple: true }, 'time-zone': { type: 'string' },
        goals: { type: 'string' }, email: { type: 'string' }, role: { type: 'string', multiple: true }, scope: { type: 'string' },
        label: { type: 'string' }, expires: { type: 'string' }, user: { type: 'string' },
        site: { type: 'string' }, visitor: { type: 'string' }, ip: { type: 'string' }, 'user-agent': { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
      },
      strict: true,
    });
    body = command.body(values);
    server = values.server ?? io.env.SLUICE_SERVER ?? 'tcp://127.0.0.1:7878';
    key = values.key ?? io.env.SLUICE_ADMIN_KEY ?? '';
    if (key === '') throw new UsageError('an admin key is required: --key or SLUICE_ADMIN_KEY');
  } catch (e) {
    io.err(`sluice: ${e instanceof Error ? e.message : String(e)}\n\n${ADMIN_HELP}`);
    return 2;
  }
  let client: SluiceClient | undefined;
  try {
    client = await SluiceClient.connect({ url: server, apiKey: key });
    const result = await client.request<unknown>(command.route, body);
    io.out(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof SluiceClientError) io.err(`sluice: ${e.code}: ${e.message}\n`);
    else io.err(`sluice: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    client?.close();
  }
}
