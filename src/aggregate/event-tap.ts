/**
 * The event tap: a consumer group of its own beside the aggregator, handing every accepted
 * event to the raw archive (for reprocessing) and to the current-visitors tracker. It commits a
 * batch's offsets only after both sinks resolved, so an event is archived at least once; the
 * archive is idempotent by (site, ts, id), so redelivery stores one copy.
 * Bots are archived (reprocessing must see what arrived) but are not current visitors.
 */
import { Counter, type Registry } from 'prom-client';
import type { EventLog, GroupConsumer } from '../ingest/event-log.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { decodeEventRecord } from '../ingest/event-record.js';
import { silentLogger, type Logger } from '../log.js';
import type { CurrentVisitors, VisitorSeen } from '../query/current-visitors.js';
import type { RawArchive } from './raw-archive.js';

export interface EventTapDeps {
  readonly log: EventLog;
  readonly topic: string;
  readonly groupId: string;
  readonly archive: RawArchive;
  readonly currentVisitors: CurrentVisitors;
  readonly registry: Registry;
  readonly logger?: Logger;
}

export class EventTap {
  private consumer: GroupConsumer | undefined;
  private readonly logger: Logger;
  private readonly outcomes: Counter<'outcome'>;

  constructor(private readonly deps: EventTapDeps) {
    this.logger = deps.logger ?? silentLogger();
    this.outcomes = new Counter({
      name: 'sluice_event_tap_records_total',
      help: 'Event-log records seen by the archive/current-visitors tap: archived, or undecodable (left to the dead-letter path of the aggregator).',
      labelNames: ['outcome'],
      registers: [deps.registry],
    });
  }

  async start(): Promise<void> {
    const { log, topic, groupId, archive, currentVisitors } = this.deps;
    this.consumer = await log.consume({
      topic,
      groupId,
      fromBeginning: true,
      handlers: {
        onAssigned: async () => {},
        onRevoked: async () => {},
        onBatch: async (batch) => {
          const events: EnrichedEvent[] = [];
          for (const record of batch.records) {
            const decoded = decodeEventRecord(record.value);
            if (decoded.ok) events.push(decoded.event);
            else this.outcomes.inc({ outcome: 'undecodable' });
          }
          if (events.length > 0) {
            // Anonymous events (DNT, no consent) have no visitor to count as current.
            const seen: VisitorSeen[] = events.filter((e) => !e.bot && e.visitorId !== '').map((e) => ({ site: e.site, visitorId: e.visitorId, tsMs: e.ts }));
            await Promise.all([archive.archive(events), currentVisitors.record(seen)]);
            this.outcomes.inc({ outcome: 'archived' }, events.length);
          }
          const last = batch.records[batch.records.length - 1];
          if (last) await this.consumer?.commit(batch.partition, { offset: last.offset + 1, metadata: '' });
        },
      },
    });
    this.logger.info({ groupId }, 'event tap consuming');
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    this.consumer = undefined;
  }
}
