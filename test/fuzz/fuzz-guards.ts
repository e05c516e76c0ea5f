/**
 * What the campaign watches besides the answers: the process (no unhandled rejection or
 * exception, no prototype pollution, a heap that returns near its start after GC) and the
 * event log (every acknowledged event really reached it).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { EventLog, LogRecord } from '../../src/ingest/event-log.js';

/** Built-in prototypes a pollution would land on. */
const PROTOTYPES: ReadonlyArray<readonly [string, object]> = [
  ['Object', Object.prototype], ['Array', Array.prototype], ['Function', Function.prototype], ['String', String.prototype],
  ['Number', Number.prototype], ['Boolean', Boolean.prototype], ['Map', Map.prototype], ['Set', Set.prototype],
  ['Promise', Promise.prototype], ['Buffer', Buffer.prototype], ['Uint8Array', Uint8Array.prototype], ['Error', Error.prototype],
];

export type PrototypeSnapshot = ReadonlyMap<string, ReadonlyMap<PropertyKey, unknown>>;

/** Own keys and their values (getters as descriptors) of every watched prototype. */
export function snapshotPrototypes(): PrototypeSnapshot {
  return new Map(PROTOTYPES.map(([name, proto]) => [name, new Map(Reflect.ownKeys(proto).map((k) => {
    const d = Object.getOwnPropertyDescriptor(proto, k)!;
    return [k, 'value' in d ? d.value : d.get];
  }))]));
}

/** Differences between two snapshots, plus the classic probes; empty when nothing was polluted. */
export function pollutionSince(before: PrototypeSnapshot): string[] {
  const found: string[] = [];
  const after = snapshotPrototypes();
  for (const [name, keys] of after) {
    const old = before.get(name)!;
    for (const [k, v] of keys) {
      if (!old.has(k)) found.push(`${name}.prototype gained ${String(k)}`);
      else if (old.get(k) !== v) found.push(`${name}.prototype.${String(k)} was replaced`);
    }
    for (const k of old.keys()) if (!keys.has(k)) found.push(`${name}.prototype lost ${String(k)}`);
  }
  const probe: Record<string, unknown> = {};
  for (const k of ['polluted', 'yes', 'x', 'y']) if (probe[k] !== undefined) found.push(`({}).${k} is ${String(probe[k])}`);
  if (Object.getPrototypeOf(probe) !== Object.prototype) found.push('({}) has a foreign prototype');
  return found;
}

/** A real GC, without requiring --expose-gc on the command line. */
export function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    // Several passes: weak references and finalisers free more on the second.
    for (let i = 0; i < 3; i++) gc();
  };
}

/**
 * Wraps an EventLog and remembers the `headers.id` of every record an append made durable
 * (the append resolved), per topic. Only ids are kept, so the ledger itself stays small.
 */
export class EventLogLedger {
  readonly durable = new Map<string, Set<string>>();
  appends = 0;

  wrap(log: EventLog): EventLog {
    return {
      get partitions() { return log.partitions; },
      append: async (topic: string, records: readonly LogRecord[]) => {
        await log.append(topic, records);
        this.appends++;
        let ids = this.durable.get(topic);
        if (!ids) this.durable.set(topic, ids = new Set());
        for (const r of records) ids.add(`${r.key}\u0000${r.headers?.id ?? ''}`);
      },
      consume: (options) => log.consume(options),
      close: () => log.close(),
    };
  }

  /** Whether an event of `site` with `id` is durable in `topic`. */
  has(topic: string, site: string, id: string): boolean {
    return this.durable.get(topic)?.has(`${site}\u0000${id}`) ?? false;
  }

  count(topic: string): number {
    return this.durable.get(topic)?.size ?? 0;
  }
}
