/**
 * What one connection's key may do, site by site, remembered for the connection's life.
 *
 * Most scopes decide alone and at once (`Accounts.decide`: static keys, ingest, read and site
 * keys, deployment admins). An organisation admin's key needs each site's organisation from the
 * store: those answers are cached here for `ttlMs`, so a connection asks the store about a site
 * at most once per `ttlMs`, and the per-event ingest path can check synchronously once `ensure`
 * has fetched what a batch names.
 *
 * A key's scope never changes (a revoked key's connections are closed instead), and a site never
 * changes organisation, so a cached answer can only become stale by expiry of the key itself,
 * which `decide` checks on every call.
 */
import type { Action, Principal } from './accounts.js';
import { Accounts } from './accounts.js';

export interface ConnectionAuthorityOptions {
  readonly principal: Principal;
  /** The full check (the store when needed): Accounts.allows or an Authenticator's allows. */
  readonly allows: (principal: Principal, action: Action, site: string) => Promise<boolean>;
  readonly ttlMs: number;
  /** Answers remembered per connection; past it the oldest goes (a client naming endless sites only costs itself lookups). */
  readonly maxEntries?: number;
  readonly now?: () => number;
}

interface Entry {
  readonly allowed: boolean;
  readonly atMs: number;
}

export class ConnectionAuthority {
  readonly principal: Principal;
  private readonly cache = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly now: () => number;
  private readonly maxEntries: number;

  constructor(private readonly options: ConnectionAuthorityOptions) {
    this.principal = options.principal;
    this.now = options.now ?? Date.now;
    this.maxEntries = options.maxEntries ?? 4_096;
  }

  /** False when the scope alone decides every site (all but organisation admin keys): `ensure` never waits then. */
  get asksStore(): boolean {
    return this.principal.scope.kind === 'admin' && this.principal.scope.orgId !== null;
  }

  /** Whether the key's kind allows the action at all (FORBIDDEN when not). */
  kindAllows(action: Action): boolean {
    return Accounts.kindAllows(this.principal.scope, action);
  }

  /**
   * The answer known now, without waiting: the scope's own, else the cached one whatever its
   * age (call `ensure` first to refresh), else undefined.
   */
  known(action: Action, site: string): boolean | undefined {
    const decided = Accounts.decide(this.principal, action, site, this.now());
    if (decided !== undefined) return decided;
    return this.cache.get(keyOf(action, site))?.allowed;
  }

  /** Whether the key may do `action` on `site`; from the cache while fresh. */
  allows(action: Action, site: string): Promise<boolean> {
    const now = this.now();
    const decided = Accounts.decide(this.principal, action, site, now);
    if (decided !== undefined) return Promise.resolve(decided);
    const key = keyOf(action, site);
    const cached = this.cache.get(key);
    if (cached && now - cached.atMs < this.options.ttlMs) return Promise.resolve(cached.allowed);
    return this.fetch(key, action, site);
  }

  /**
   * Undefined when every site's answer is known and fresh (check with `known`); otherwise a
   * promise that settles once they are (rejecting when the store fails).
   */
  ensure(action: Action, sites: Iterable<string>): Promise<void> | undefined {
    const now = this.now();
    let pending: Array<Promise<boolean>> | undefined;
    for (const site of sites) {
      if (Accounts.decide(this.principal, action, site, now) !== undefined) continue;
      const key = keyOf(action, site);
      const cached = this.cache.get(key);
      if (cached && now - cached.atMs < this.options.ttlMs) continue;
      (pending ??= []).push(this.fetch(key, action, site));
    }
    return pending && Promise.all(pending).then(() => undefined);
  }

  private fetch(key: string, action: Action, site: string): Promise<boolean> {
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.options.allows(this.principal, action, site).then((allowed) => {
      this.cache.delete(key);
      if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, { allowed, atMs: this.now() });
      return allowed;
    }).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }
}

const keyOf = (action: Action, site: string): string => `${action}\0${site}`;
