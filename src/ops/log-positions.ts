/**
 * LogPositions: where the event log ends and where a consumer group stands, per partition —
 * what tells whether the archive tap (its own consumer group, event-tap.ts) has archived every
 * event the live rollups of a final day were built from. Real implementation: KafkaEventLog
 * (admin offsets); embedded: MemoryLogPositions, which observes the commits of the groups whose
 * log it wraps.
 *
 * Offsets are "next to read": a committed offset c means every record below c was handled.
 */
import type { LogExtent } from '../ingest/event-log.js';

export interface LogPositions extends LogExtent {
  /** Per partition (index = partition), the offset the next appended record will get. */
  endOffsets(topic: string): Promise<number[]>;
  /** Per partition, the group's committed offset, or null when it committed none. */
  committedOffsets(groupId: string, topic: string): Promise<Array<number | null>>;
}
