/**
 * A bounded, approximately least-recently-used map for per-process caches that must never grow
 * with traffic (parsed user agents, recently seen event ids).
 *
 * Two generations of Maps: entries go into the current one; when it holds capacity/2 entries
 * it becomes the previous one and the old previous is dropped whole; a hit in the previous
 * generation moves the entry back into the current one. So the cache never holds more than
 * `capacity` entries and always keeps at least the ⌊capacity/2⌋ (and at least one) most
 * recently used ones.
 * This design, rather than one Map evicting its first key per insert, is deliberate: V8
 * leaves deleted Map slots in place until a rehash, so evicting from the front of a large Map
 * makes every later `keys().next()` skip a growing run of holes (measured: the dedup cache
 * alone halved ingest throughput).
 *
 * A capacity of 0 disables the cache.
 */
export class LruCache<K, V> {
  private current = new Map<K, V>();
  private previous = new Map<K, V>();
  private readonly generationSize: number;

  constructor(readonly capacity: number) {
    this.generationSize = Math.max(1, Math.floor(capacity / 2));
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  /** Reads and marks the entry as recently used. */
  get(key: K): V | undefined {
    const value = this.current.get(key);
    if (value !== undefined) return value;
    const old = this.previous.get(key);
    if (old !== undefined) {
      this.previous.delete(key);
      this.insert(key, old);
    }
    return old;
  }

  /** Reads without touching recency: a horizon of first sightings, as dedup wants. */
  peek(key: K): V | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  /**
   * Stores `value` unless the key is present; returns the present value (recency untouched) or
   * undefined when it stored. One lookup fewer than peek-then-set on the dedup hot path.
   */
  putIfAbsent(key: K, value: V): V | undefined {
    const present = this.current.get(key) ?? this.previous.get(key);
    if (present === undefined && this.capacity > 0) this.insert(key, value);
    return present;
  }

  set(key: K, value: V): void {
    if (this.capacity <= 0) return;
    if (this.current.has(key)) {
      this.current.set(key, value);
      return;
    }
    this.previous.delete(key);
    this.insert(key, value);
  }

  delete(key: K): boolean {
    const inCurrent = this.current.delete(key);
    return this.previous.delete(key) || inCurrent;
  }

  clear(): void {
    this.current = new Map();
    this.previous = new Map();
  }

  private insert(key: K, value: V): void {
    this.current.set(key, value);
    if (this.current.size >= this.generationSize) {
      this.previous = this.current;
      this.current = new Map();
    }
  }
}

/**
 * The same bounded, generational cache keyed by a pair of strings, as nested Maps: a lookup
 * hashes the two strings it is given rather than a joined key built for it (which is one more
 * string to allocate and hash per lookup), and the inner maps stay small. `capacity` bounds the
 * pairs held, with the same guarantees as LruCache.
 */
export class PairLruCache<V> {
  private current = new Map<string, Map<string, V>>();
  private previous = new Map<string, Map<string, V>>();
  private currentSize = 0;
  private previousSize = 0;
  private readonly generationSize: number;

  constructor(readonly capacity: number) {
    this.generationSize = Math.max(1, Math.floor(capacity / 2));
  }

  get size(): number {
    return this.currentSize + this.previousSize;
  }

  /** Reads and marks the entry as recently used. */
  get(a: string, b: string): V | undefined {
    const value = this.current.get(a)?.get(b);
    if (value !== undefined) return value;
    const inner = this.previous.get(a);
    const old = inner?.get(b);
    if (old !== undefined) {
      inner!.delete(b);
      this.previousSize--;
      this.insert(a, b, old);
    }
    return old;
  }

  set(a: string, b: string, value: V): void {
    if (this.capacity <= 0) return;
    const inner = this.current.get(a);
    if (inner?.has(b)) {
      inner.set(b, value);
      return;
    }
    const old = this.previous.get(a);
    if (old?.delete(b)) this.previousSize--;
    this.insert(a, b, value);
  }

  clear(): void {
    this.current = new Map();
    this.previous = new Map();
    this.currentSize = 0;
    this.previousSize = 0;
  }

  private insert(a: string, b: string, value: V): void {
    let inner = this.current.get(a);
    if (inner === undefined) {
      inner = new Map();
      this.current.set(a, inner);
    }
    inner.set(b, value);
    if (++this.currentSize >= this.generationSize) {
      this.previous = this.current;
      this.previousSize = this.currentSize;
      this.current = new Map();
      this.currentSize = 0;
    }
  }
}
