/**
 * Is the raw archive complete for the days a reprocess is about to read?
 *
 * The reasoning: a day is final when the store watermark (the lowest partition watermark, less
 * the allowed lateness) has passed its end. Every event the live rollups of that day counted
 * was therefore appended to the event log before the moment the watermark was read. Sample the
 * log's end offsets after that moment; once the tap's committed offsets reach them on every
 * partition, every such event is archived (the tap commits only after archiving). Later
 * arrivals for the day are late-lane events: archived too, eventually, and folded in by the
 * next reprocess.
 *
 * Under steady ingest the tap is always a little behind the log's end, so the end is sampled
 * once and the tap is waited for, up to a deadline, rather than required to be caught up now.
 */
import { opsError } from './ops-errors.js';
import type { LogPositions } from './log-positions.js';

export interface ArchiveCompleteness {
  /**
   * Resolves once everything appended to the event log before this call is archived; rejects
   * with OPS_ARCHIVE_BEHIND when that has not happened within the deadline. `onWait` is told
   * how far behind the tap is while waiting.
   */
  awaitArchived(onWait?: (behind: number) => void): Promise<void>;
}

export interface TapCompletenessOptions {
  readonly positions: LogPositions;
  readonly topic: string;
  /** The archive tap's consumer group. */
  readonly tapGroupId: string;
  /** How long to wait for the tap. Default 60 s. */
  readonly deadlineMs?: number;
  readonly pollMs?: number;
}

export function tapCompleteness(options: TapCompletenessOptions): ArchiveCompleteness {
  const deadlineMs = options.deadlineMs ?? 60_000;
  const pollMs = options.pollMs ?? 100;
  return {
    async awaitArchived(onWait) {
      const ends = await options.positions.endOffsets(options.topic);
      const until = Date.now() + deadlineMs;
      for (;;) {
        const committed = await options.positions.committedOffsets(options.tapGroupId, options.topic);
        let behind = 0;
        ends.forEach((end, p) => {
          behind += Math.max(0, end - (committed[p] ?? 0));
        });
        if (behind === 0) return;
        if (Date.now() >= until) {
          throw opsError('archiveBehind', `the archive tap (group ${options.tapGroupId}) is ${behind} records behind the event log's end of ${ends.join(',')}; is a process with the archive role running?`);
        }
        onWait?.(behind);
        await new Promise((r) => setTimeout(r, pollMs));
      }
    },
  };
}

/** No event log to check against (tests that feed the archive directly). */
export const ARCHIVE_ALWAYS_COMPLETE: ArchiveCompleteness = { awaitArchived: async () => {} };
