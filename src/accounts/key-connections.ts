/**
 * The open connections of each key, in one gateway process: the per-key connection limit, and
 * closing a key's connections when it is revoked (RevocationWatcher, or a revoke served here)
 * or when it expires.
 *
 * - `admit` counts a connection against its key, or refuses it (CONNECTION_LIMIT) when the key
 *   holds `maxPerKey` already. Unlimited keys (deployment admins, and a site's public id, which
 *   every visitor's browser shares) are tracked but never refused. The count drops when the
 *   connection closes, however it closes.
 * - A key with an expiry gets a timer: at expiry its connections close with AUTH_EXPIRED.
 * - `revoke(ids)` closes every connection of those keys with AUTH_REVOKED; idempotent.
 */
import type { ErrorCode } from '../../protocol/errors.js';
import type { Principal } from './accounts.js';

/** What this needs of a connection: to close it with a reason, and to hear that it closed. */
export interface ClosableConnection {
  fail(code: ErrorCode, message: string): void;
  onClose(callback: () => void): void;
}

export interface KeyConnectionsOptions {
  /** 0: no limit. */
  readonly maxPerKey: number;
  /** Keys the limit does not apply to. */
  readonly unlimited?: (p: Principal) => boolean;
  readonly now?: () => number;
  /** Fired when a connection is refused for the limit (for a metric). */
  readonly onRefused?: () => void;
  /** Fired for each open connection closed because its key expired or was revoked (for a metric). */
  readonly onClosed?: (code: 'AUTH_EXPIRED' | 'AUTH_REVOKED') => void;
}

/** setTimeout's largest delay; a later expiry re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class KeyConnections {
  private readonly byKey = new Map<string, Set<ClosableConnection>>();
  private readonly now: () => number;

  constructor(private readonly options: KeyConnectionsOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Count the connection against its key; false (and nothing counted) when over the limit. */
  admit(conn: ClosableConnection, p: Principal): boolean {
    let set = this.byKey.get(p.keyId);
    const limited = this.options.maxPerKey > 0 && !(this.options.unlimited?.(p) ?? false);
    if (limited && set !== undefined && set.size >= this.options.maxPerKey) {
      this.options.onRefused?.();
      return false;
    }
    if (!set) this.byKey.set(p.keyId, (set = new Set()));
    set.add(conn);
    let timer: NodeJS.Timeout | undefined;
    const arm = (expiresAt: number) => {
      const left = expiresAt - this.now();
      if (left <= 0) {
        this.options.onClosed?.('AUTH_EXPIRED');
        conn.fail('AUTH_EXPIRED', 'the API key expired');
        return;
      }
      timer = setTimeout(() => arm(expiresAt), Math.min(left, MAX_TIMER_MS));
      timer.unref();
    };
    conn.onClose(() => {
      clearTimeout(timer);
      const s = this.byKey.get(p.keyId);
      if (!s) return;
      s.delete(conn);
      if (s.size === 0) this.byKey.delete(p.keyId);
    });
    if (p.expiresAt !== null) arm(p.expiresAt);
    return true;
  }

  /** Close every connection of these keys with AUTH_REVOKED. */
  revoke(keyIds: Iterable<string>): number {
    let closed = 0;
    for (const id of keyIds) {
      const set = this.byKey.get(id);
      if (!set) continue;
      for (const conn of [...set]) {
        this.options.onClosed?.('AUTH_REVOKED');
        conn.fail('AUTH_REVOKED', 'the API key was revoked');
        closed++;
      }
    }
    return closed;
  }

  count(keyId: string): number {
    return this.byKey.get(keyId)?.size ?? 0;
  }
}
