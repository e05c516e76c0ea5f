/**
 * The event tap: a consumer group of its own beside the aggregator, handing every accepted
 * event to the raw archive (for reprocessing and filtered queries) and to the current-visitors
 * tracker. It commits a batch's offsets only after both sinks resolved, so an event is archived
 * at least once; the archive is idempotent by (site, ts, id), so redelivery stores one copy.
 * Each event is archived with its position in the log (partition, offset), which a late mark
 * names (raw-archive.ts, "Late marks").
 * Bots are archived (reprocessing must see what arrived) but are not current visitors.
 *
 * With `lateTopic`, a second consumer (group `${groupId}-late`) reads the late lane, where the
 * aggregator appends the records it judged late beyond the allowed lateness, unchanged, with
 * headers naming where they came from (source-topic, source-partition, source-offset) and why
 * (reason); each such record of the tapped topic becomes a late mark in the archive, so the raw
 * path does not count what the rollups did not. The late lane is at-least-once and marks are
 * idempotent; offsets are committed after the marks are written. A mark lands a little after
 * its event was archived (the aggregator appends late records at its next flush): until then a
 * filtered query counts that event. Records of other topics or reasons, and records this code
 * cannot read, are counted (`late_ignored`, `late_unreadable`) and skipped.
 */
import { Counter, type Registry } from 'prom-client';
import type { ConsumedRecord, EventLog, GroupConsumer, PartitionBatch } from '../ingest/event-log.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { decodeEventRecord } from '../ingest/event-record.js';
import { silentLogger, type Logger } from '../log.js';
import type { CurrentVisitors, VisitorSeen } from '../query/current-visitors.js';
import type { LateMark, LogPosition, RawArchive } from './raw-archive.js';

export interface EventTapDeps {
  readonly log: EventLog;
  readonly topic: string;
  /** The aggregator's late lane (config eventLog.lateTopic). Without it late events are not marked, and filtered queries count them. */
  readonly lateTopic?: string;
  readonly groupId: string;
  readonly archive: RawArchive;
  readonly currentVisitors: CurrentVisitors;
  readonly registry: Registry;
  readonly logger?: Logger;
}

type Outcome = 'archived' | 'undecodable' | 'late_marked' | 'late_ignored' | 'late_unreadable';

/** The late record's `reason` header for events late beyond the allowed lateness (aggregator.ts laneRecord). */
const LATE_REASON = 'late';

export class EventTap {
  private consumer: GroupConsumer | undefined;
  private lateConsumer: GroupConsumer | undefined;
  private readonly logger: Logger;
  private readonly outcomes: Counter<'outcome'>;

  constructor(private readonly deps: EventTapDeps) {
    this.logger = deps.logger ?? silentLogger();
    this.outcomes = new Counter({
      name: 'sluice_event_tap_records_total',
      help: 'Event-log records seen by the archive/current-visitors tap: archived, or undecodable (left to the dead-letter path of the aggregator); late-lane records: late_marked, late_ignored (another topic or reason), late_unreadable.',
      labelNames: ['outcome'],
      registers: [deps.registry],
    });
  }

  async start(): Promise<void> {
    const { log, topic, lateTopic, groupId } = this.deps;
    this.consumer = await log.consume({
      topic,
      groupId,
      fromBeginning: true,
      handlers: {
        onAssigned: async () => {},
        onRevoked: async () => {},
        onBatch: async (batch) => {
          await this.archiveBatch(batch);
          await this.commit(this.consumer, batch);
        },
      },
    });
    if (lateTopic !== undefined) {
      try {
        this.lateConsumer = await log.consume({
          topic: lateTopic,
          groupId: `${groupId}-late`,
          fromBeginning: true,
          handlers: {
            onAssigned: async () => {},
            onRevoked: async () => {},
            onBatch: async (batch) => {
              await this.markBatch(batch);
              await this.commit(this.lateConsumer, batch);
            },
          },
        });
      } catch (e) {
        await this.stop();
        throw e;
      }
    }
    this.logger.info({ groupId, lateTopic: lateTopic ?? null }, 'event tap consuming');
  }

  async stop(): Promise<void> {
    const consumers = [this.consumer, this.lateConsumer];
    this.consumer = undefined;
    this.lateConsumer = undefined;
    await Promise.all(consumers.map((c) => c?.stop()));
  }

  private async archiveBatch(batch: PartitionBatch): Promise<void> {
    const events: EnrichedEvent[] = [];
    const positions: LogPosition[] = [];
    for (const record of batch.records) {
      const decoded = decodeEventRecord(record.value);
      if (decoded.ok) {
        events.push(decoded.event);
        positions.push({ partition: record.partition, offset: record.offset });
      } else {
        this.outcomes.inc({ outcome: 'undecodable' satisfies Outcome });
      }
    }
    if (events.length === 0) return;
    // Anonymous events (DNT, no consent) have no visitor to count as current.
    const seen: VisitorSeen[] = events.filter((e) => !e.bot && e.visitorId !== '').map((e) => ({ site: e.site, visitorId: e.visitorId, tsMs: e.ts }));
    await Promise.all([this.deps.archive.archive(events, positions), this.deps.currentVisitors.record(seen)]);
    this.outcomes.inc({ outcome: 'archived' satisfies Outcome }, events.length);
  }

  private async markBatch(batch: PartitionBatch): Promise<void> {
    const marks: LateMark[] = [];
    for (const record of batch.records) {
      const mark = this.lateMarkOf(record);
      if (mark) marks.push(mark);
    }
    if (marks.length === 0) return;
    await this.deps.archive.markLate(marks);
    this.outcomes.inc({ outcome: 'late_marked' satisfies Outcome }, marks.length);
  }

  private lateMarkOf(record: ConsumedRecord): LateMark | null {
    const h = record.headers ?? {};
    if (h['source-topic'] !== this.deps.topic || h.reason !== LATE_REASON) {
      this.outcomes.inc({ outcome: 'late_ignored' satisfies Outcome });
      return null;
    }
    const partition = counting(h['source-partition']);
    const offset = counting(h['source-offset']);
    const decoded = decodeEventRecord(record.value);
    if (!decoded.ok || partition === null || offset === null) {
      this.outcomes.inc({ outcome: 'late_unreadable' satisfies Outcome });
      this.logger.warn({ partition: record.partition, offset: record.offset }, 'late-lane record without a readable event or source position: not marked');
      return null;
    }
    const e = decoded.event;
    return { site: e.site, ts: e.ts, id: e.id, position: { partition, offset } };
  }

  private async commit(consumer: GroupConsumer | undefined, batch: PartitionBatch): Promise<void> {
    const last = batch.records[batch.records.length - 1];
    if (last) await consumer?.commit(batch.partition, { offset: last.offset + 1, metadata: '' });
  }
}

/** A header holding a non-negative integer, or null. */
function counting(header: string | undefined): number | null {
  if (header === undefined || !/^\d{1,15}$/.test(header)) return null;
  return Number(header);
}
