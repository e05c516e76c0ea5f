/**
 * Tells a gateway process which keys were revoked, by polling the AccountStore, so that open
 * connections of a revoked key close within `pollMs` (plus one store read) on every process —
 * including ones that did not serve the revoke request. Each poll asks for revocations since
 * the previous poll's start minus `overlapMs`, so a revocation written with a slightly skewed
 * clock is still seen; seeing one twice is harmless (closing is idempotent).
 */
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { AccountStore } from './account-store.js';

export interface RevocationWatcherOptions {
  readonly store: Pick<AccountStore, 'revocationsSince'>;
  readonly pollMs: number;
  readonly overlapMs?: number;
  readonly onRevoked: (keyIds: readonly string[]) => void;
  readonly now?: () => number;
  readonly logger?: Logger;
}

export class RevocationWatcher {
  private timer: NodeJS.Timeout | undefined;
  private sinceMs: number;
  private polling: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: RevocationWatcherOptions) {
    this.now = options.now ?? Date.now;
    this.sinceMs = this.now();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.options.pollMs);
    this.timer.unref();
  }

  /** One poll now; concurrent calls share it. */
  poll(): Promise<void> {
    this.polling ??= (async () => {
      const startedMs = this.now();
      try {
        const ids = await this.options.store.revocationsSince(this.sinceMs - (this.options.overlapMs ?? 5_000));
        this.sinceMs = startedMs;
        if (ids.length > 0) this.options.onRevoked(ids);
      } catch (e) {
        (this.options.logger ?? silentLogger()).warn({ err: e }, 'revocation poll failed; retrying at the next interval');
      } finally {
        this.polling = undefined;
      }
    })();
    return this.polling;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
