/**
 * LogPositions (src/ops/log-positions.ts) for the in-memory event log. The log's ends are read
 * from the log itself; committed offsets are observed: `track(log)` returns the log to give a
 * consumer (the archive tap), recording every commit its members make. The memory log keeps its
 * groups to itself, and the embedded process is one process, so watching the commits is both
 * enough and exact.
 */
import type { ConsumeOptions, EventLog, GroupConsumer, OffsetRange } from '../../ingest/event-log.js';
import type { LogPositions } from '../../ops/log-positions.js';
import type { MemoryEventLog } from './memory-event-log.js';

export class MemoryLogPositions implements LogPositions {
  /** `${group}\0${topic}` → partition → committed offset. */
  private readonly committed = new Map<string, Map<number, number>>();

  constructor(private readonly log: MemoryEventLog) {}

  /** `log` (this memory log, possibly wrapped) with its consumers' commits recorded here. */
  track(log: EventLog): EventLog {
    const record = (options: ConsumeOptions, partition: number, offset: number) => {
      const key = `${options.groupId}\u0000${options.topic}`;
      let byPartition = this.committed.get(key);
      if (!byPartition) {
        byPartition = new Map();
        this.committed.set(key, byPartition);
      }
      byPartition.set(partition, offset);
    };
    return {
      get partitions() {
        return log.partitions;
      },
      append: (topic, records) => log.append(topic, records),
      close: () => log.close(),
      async consume(options: ConsumeOptions): Promise<GroupConsumer> {
        const inner = await log.consume(options);
        return {
          async commit(partition, committed) {
            await inner.commit(partition, committed);
            record(options, partition, committed.offset);
          },
          stop: () => inner.stop(),
        };
      },
    };
  }

  async endOffsets(topic: string): Promise<number[]> {
    return Array.from({ length: this.log.partitions }, (_, p) => this.log.partition(topic, p).end);
  }

  async offsetRanges(topic: string): Promise<OffsetRange[]> {
    return Array.from({ length: this.log.partitions }, (_, p) => {
      const part = this.log.partition(topic, p);
      return { start: part.base, end: part.end };
    });
  }

  async committedOffsets(groupId: string, topic: string): Promise<Array<number | null>> {
    const byPartition = this.committed.get(`${groupId}\u0000${topic}`);
    return Array.from({ length: this.log.partitions }, (_, p) => byPartition?.get(p) ?? null);
  }
}
