/**
 * Replay from the event log: move a consumer group of aggregators back to an event time, so the
 * live pipeline re-aggregates what the log still holds from then on (Kafka's retention).
 *
 * When to use which (protocol/ops.md says the same for operators):
 * - reprocess recomputes FINAL days from the raw archive into a new version beside the old
 *   rows and switches over atomically, with audit and rollback, while everything keeps running.
 *   It is the tool for a logic bug in history, for the late lane, and for imports.
 * - replay re-runs the live aggregation over the recent log, rewriting the live rows in place
 *   (no versions, no rollback): for when live rows themselves are wrong or gone (a rollup store
 *   restored from a backup, a window of failed writes), or to restate the still-open hours
 *   after a fix of the logic, which reprocess cannot touch (not final). Aggregators of the group
 *   must be stopped (Kafka only lets offsets be rewritten in an empty group), or replay into a
 *   NEW group id, then start the aggregators with aggregate.groupId set to it.
 *
 * What the group resumes with, per partition: the first offset whose event time is at or after
 * `at` (minute-aligned), and commit metadata the aggregator accepts as a fresh start of that
 * time: watermark = at + allowedLatenessMs (every bucket before `at` is closed, so rows before
 * `at` — partly covered by the replayed records — are never rewritten from a part of their
 * events), highOffset = the log's end now (records up to it were handled before: those for
 * closed buckets are skipped, not sent to the late lane again), and no visit checkpoint (visits
 * in progress at `at` count again, as after a lost checkpoint: aggregator.ts point 7). Every
 * record with an event time at or after `at` is at or after the new offset, so every bucket
 * from `at` on is rebuilt from all its events.
 * Mind: the store watermark never moves back (it is a maximum), so queries call the replayed
 * hours final while they are rewritten; days switched to a reprocessed version keep serving it.
 */
import type { CommittedOffset } from '../ingest/event-log.js';
import type { LogPositions } from './log-positions.js';
import { opsError } from './ops-errors.js';

export interface ReplayLog extends LogPositions {
  offsetsAtTime(topic: string, timestampMs: number): Promise<number[]>;
  groupMembers(groupId: string): Promise<{ state: string; members: number }>;
  commitGroupOffsets(groupId: string, topic: string, offsets: readonly CommittedOffset[]): Promise<void>;
}

export interface ReplayRequest {
  readonly topic: string;
  readonly groupId: string;
  readonly atMs: number;
  readonly allowedLatenessMs: number;
  readonly dryRun: boolean;
}

export interface ReplayPlan {
  readonly groupId: string;
  readonly topic: string;
  readonly at: number;
  readonly applied: boolean;
  readonly partitions: Array<{ partition: number; offset: number; end: number; previous: number | null }>;
}

const MINUTE_MS = 60_000;

export async function replay(log: ReplayLog, req: ReplayRequest): Promise<ReplayPlan> {
  const at = Math.floor(req.atMs / MINUTE_MS) * MINUTE_MS;
  const group = await log.groupMembers(req.groupId);
  if (group.members > 0) {
    throw opsError('busy', `group ${req.groupId} has ${group.members} running member(s) (state ${group.state}): stop every aggregator of the group first, or replay into a new group id`);
  }
  const [offsets, ends, previous] = await Promise.all([
    log.offsetsAtTime(req.topic, at), log.endOffsets(req.topic), log.committedOffsets(req.groupId, req.topic),
  ]);
  const partitions = offsets.map((offset, partition) => ({ partition, offset, end: ends[partition] ?? offset, previous: previous[partition] ?? null }));
  if (!req.dryRun) {
    const commits: CommittedOffset[] = partitions.map((p) => ({
      offset: p.offset,
      metadata: JSON.stringify({ watermarkMs: at + req.allowedLatenessMs, highOffset: p.end - 1, checkpoint: null }),
    }));
    await log.commitGroupOffsets(req.groupId, req.topic, commits);
  }
  return { groupId: req.groupId, topic: req.topic, at, applied: !req.dryRun, partitions };
}
