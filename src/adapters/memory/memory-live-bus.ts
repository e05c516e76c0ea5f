/** In-process LiveBus: notices are delivered asynchronously, as they would be over Redis. */
import type { BucketsChanged, LiveBus } from '../../query/live-bus.js';

export class MemoryLiveBus implements LiveBus {
  private readonly listeners = new Map<string, Set<(notice: BucketsChanged) => void>>();

  async publish(notice: BucketsChanged): Promise<void> {
    const set = this.listeners.get(notice.site);
    if (!set) return;
    for (const listener of [...set]) queueMicrotask(() => listener(notice));
  }

  async subscribe(site: string, listener: (notice: BucketsChanged) => void): Promise<() => void> {
    let set = this.listeners.get(site);
    if (!set) {
      set = new Set();
      this.listeners.set(site, set);
    }
    // Wrap so that subscribing the same function twice gives two independent subscriptions.
    const own = (n: BucketsChanged) => listener(n);
    set.add(own);
    return () => {
      set.delete(own);
      if (set.size === 0) this.listeners.delete(site);
    };
  }

  subscriberCount(): number {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n;
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
