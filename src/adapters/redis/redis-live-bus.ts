/**
 * LiveBus over Redis pub/sub: the cross-process fan-out of bucket-change notices.
 *
 * - One channel per site, `<prefix>live:<site>`; a notice is the JSON of BucketsChanged
 *   (which buckets to re-read, never values).
 * - One subscriber connection per bus (make one bus per process), opened on the first
 *   `subscribe`, and one command connection for `publish`, so a process that only publishes
 *   (an aggregator) holds no subscriber connection.
 * - Subscriptions are reference-counted per channel: SUBSCRIBE goes out when a channel's first
 *   listener arrives and UNSUBSCRIBE when its last one leaves. `subscribe` resolves once Redis
 *   acknowledged the SUBSCRIBE. Both go over the one connection in order, so whatever the
 *   interleaving of subscribes and unsubscribes, Redis ends in the state of the last one.
 * - After a reconnect the bus resubscribes every channel that has listeners (itself, not
 *   through ioredis's auto-resubscribe, so its own listener table is the one truth). Notices
 *   published while the connection was down are lost, so once the channels are back each
 *   listener gets one resync notice naming every minute bucket of the last `resyncWindowMs`:
 *   a live stream re-reads its whole window and converges, as the seam promises.
 * - Messages that are not a well-formed notice for their channel's site are ignored and
 *   counted (`malformedMessages`, and sluice_live_bus_malformed_total when a registry is given).
 * - A listener that throws is logged; the other listeners still get the notice.
 */
import { LIMITS } from '../../../protocol/schema.js';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../log.js';
import type { BucketsChanged, LiveBus } from '../../query/live-bus.js';
import { closeRedis, openRedis, type Redis, type RedisConnection } from './redis-connection.js';

export interface RedisLiveBusOptions {
  readonly connection: RedisConnection;
  /** Prepended to every channel, e.g. 'sluice:' gives 'sluice:live:<site>'. */
  readonly keyPrefix: string;
  /** Minute buckets named by the resync notice after a reconnect; default the longest live window. 0 turns resync off. */
  readonly resyncWindowMs?: number;
  /** A publish without a reply by then fails (the aggregator logs it and goes on); default 2 s. */
  readonly commandTimeoutMs?: number;
  readonly now?: () => number;
  readonly logger?: Logger;
  readonly registry?: Registry;
}

type Listener = (notice: BucketsChanged) => void;

interface Channel {
  readonly site: string;
  readonly listeners: Set<Listener>;
  /** The SUBSCRIBE issued when the first listener arrived. */
  ready: Promise<void>;
}

const MINUTE_MS = 60_000;
/** Far more buckets than any flush names; a bigger message is not ours. */
const MAX_BUCKETS = 100_000;

export class RedisLiveBus implements LiveBus {
  private readonly options: RedisLiveBusOptions;
  private readonly publisher: Redis;
  private subscriber: Redis | undefined;
  private readonly channels = new Map<string, Channel>();
  private readonly resyncWindowMs: number;
  private readonly now: () => number;
  private readonly malformedCounter: Counter | undefined;
  private malformed = 0;
  private resubscribes = 0;
  private closed = false;
  /** Set while the subscriber connection is down after having been up; settles on resubscribe. */
  private reconnecting: Deferred | undefined;

  constructor(options: RedisLiveBusOptions) {
    this.options = options;
    this.resyncWindowMs = options.resyncWindowMs ?? LIMITS.maxLiveWindowMinutes * MINUTE_MS;
    this.now = options.now ?? Date.now;
    this.publisher = openRedis(options.connection, {
      commandTimeout: options.commandTimeoutMs ?? 2_000,
      maxRetriesPerRequest: 2,
    }, options.logger, 'live-bus-publisher');
    if (options.registry) {
      const name = 'sluice_live_bus_malformed_total';
      this.malformedCounter = (options.registry.getSingleMetric(name) as Counter | undefined)
        ?? new Counter({ name, help: 'LiveBus messages ignored because they were not a well-formed notice for their channel.', registers: [options.registry] });
    }
  }

  /** Messages ignored as malformed since the bus was created. */
  get malformedMessages(): number {
    return this.malformed;
  }

  /** Times the subscriber connection came back and its channels were subscribed again. */
  get resubscriptions(): number {
    return this.resubscribes;
  }

  channelOf(site: string): string {
    return `${this.options.keyPrefix}live:${site}`;
  }

  async publish(notice: BucketsChanged): Promise<void> {
    if (this.closed) throw new Error('live bus closed');
    await this.publisher.publish(this.channelOf(notice.site), JSON.stringify({ site: notice.site, buckets: notice.buckets }));
  }

  async subscribe(site: string, listener: Listener): Promise<() => void> {
    if (this.closed) throw new Error('live bus closed');
    const sub = this.subscriberConnection();
    const name = this.channelOf(site);
    let channel = this.channels.get(name);
    if (!channel) {
      channel = { site, listeners: new Set(), ready: Promise.resolve() };
      this.channels.set(name, channel);
    }
    // Wrap so that subscribing the same function twice gives two independent subscriptions.
    const own: Listener = (n) => listener(n);
    channel.listeners.add(own);
    if (channel.listeners.size === 1) channel.ready = sub.subscribe(name).then(() => undefined);
    const joined = channel;
    let active = true;
    const unsubscribe = () => {
      if (!active) return;
      active = false;
      joined.listeners.delete(own);
      if (joined.listeners.size > 0 || this.channels.get(name) !== joined) return;
      this.channels.delete(name);
      if (this.closed) return;
      sub.unsubscribe(name).catch((e: unknown) => this.options.logger?.warn({ err: e, channel: name }, 'live bus unsubscribe failed'));
    };
    try {
      await joined.ready;
      // A channel subscribed before the connection dropped is live again only once resubscribed.
      while (this.reconnecting) await this.reconnecting.promise;
    } catch (e) {
      unsubscribe();
      throw e;
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    this.reconnecting?.reject(new Error('live bus closed'));
    this.reconnecting = undefined;
    await Promise.all([closeRedis(this.publisher), this.subscriber ? closeRedis(this.subscriber) : Promise.resolve()]);
  }

  private subscriberConnection(): Redis {
    if (this.subscriber) return this.subscriber;
    // A SUBSCRIBE waits through a reconnect rather than failing at once, but not forever; the
    // bus resubscribes itself (see the top), so ioredis must not.
    const sub = openRedis(this.options.connection, { maxRetriesPerRequest: 20 }, this.options.logger, 'live-bus-subscriber', {
      autoResubscribe: false,
    });
    let everReady = false;
    sub.on('close', () => {
      if (everReady && !this.closed) this.reconnecting ??= deferred();
    });
    sub.on('ready', () => {
      if (everReady) this.resubscribe(sub);
      everReady = true;
    });
    sub.on('message', (channel: string, message: string) => this.deliver(channel, message));
    this.subscriber = sub;
    return sub;
  }

  private resubscribe(sub: Redis): void {
    if (this.closed) return;
    const names = [...this.channels.keys()];
    const settle = () => {
      this.reconnecting?.resolve();
      this.reconnecting = undefined;
    };
    if (names.length === 0) {
      settle();
      return;
    }
    sub.subscribe(...names).then(() => {
      if (this.closed) return;
      settle();
      this.resubscribes++;
      this.options.logger?.info({ channels: names.length }, 'live bus resubscribed after reconnect');
      if (this.resyncWindowMs <= 0) return;
      const to = Math.floor(this.now() / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
      const buckets: number[] = [];
      for (let t = to - Math.ceil(this.resyncWindowMs / MINUTE_MS) * MINUTE_MS; t < to; t += MINUTE_MS) buckets.push(t);
      for (const name of names) {
        const channel = this.channels.get(name);
        if (channel) this.dispatch(channel, { site: channel.site, buckets });
      }
    }, (e: unknown) => {
      // The connection went away again; the next 'ready' tries again.
      this.options.logger?.warn({ err: e }, 'live bus resubscribe failed');
    });
  }

  private deliver(name: string, message: string): void {
    const channel = this.channels.get(name);
    if (!channel) return; // a message still in flight when its last listener left
    const notice = parseNotice(message, channel.site);
    if (!notice) {
      this.malformed++;
      this.malformedCounter?.inc();
      this.options.logger?.debug({ channel: name, bytes: message.length }, 'malformed live notice ignored');
      return;
    }
    this.dispatch(channel, notice);
  }

  private dispatch(channel: Channel, notice: BucketsChanged): void {
    for (const listener of [...channel.listeners]) {
      try {
        listener(notice);
      } catch (e) {
        this.options.logger?.error({ err: e, site: channel.site }, 'live bus listener threw');
      }
    }
  }
}

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // rejected only on close; nobody may be waiting
  return { promise, resolve, reject };
}

/** The notice in a message, or undefined unless it is exactly a notice for `site`. */
function parseNotice(message: string, site: string): BucketsChanged | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { site: s, buckets } = value as { site?: unknown; buckets?: unknown };
  if (s !== site || !Array.isArray(buckets) || buckets.length > MAX_BUCKETS) return undefined;
  for (const b of buckets) if (typeof b !== 'number' || !Number.isFinite(b)) return undefined;
  return { site, buckets: buckets as number[] };
}
