/** The shape of a route table entry (routes.ts and the tables it joins). */
import type { TSchema } from '@sinclair/typebox';

export type Interaction = 'fireAndForget' | 'requestResponse' | 'requestStream';

export interface RouteSpec {
  readonly interaction: Interaction;
  readonly request: TSchema;
  /** Response schema; for streams, the schema of each message; absent for fire-and-forget. */
  readonly response?: TSchema;
}
