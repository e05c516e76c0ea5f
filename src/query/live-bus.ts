/**
 * LiveBus: fan-out of "this site's bucket changed" notices from aggregators to every gateway
 * process. Real implementation: Redis pub/sub (adapters/redis); embedded: adapters/memory.
 *
 * Contract (test/contract/live-bus.contract.ts): a notice published after `subscribe` resolved
 * reaches every subscriber of that site, at most once each; other sites' notices never do.
 * Delivery is best effort: a subscriber that misses a notice still converges, because a notice
 * only says which buckets to re-read, never the values themselves.
 */
export interface BucketsChanged {
  readonly site: string;
  readonly buckets: readonly number[];
}

export interface LiveBus {
  publish(notice: BucketsChanged): Promise<void>;
  /** Resolves once the subscription is active; call the returned function to end it. */
  subscribe(site: string, listener: (notice: BucketsChanged) => void): Promise<() => void>;
  close(): Promise<void>;
}
