/**
 * Handlers of routes outside the core (admin.*, ops.*): each module registers its routes here
 * and the responder dispatches to them after validating the body against the route's schema,
 * so a module adds routes without the responder knowing them. The handler decides who may call
 * it (caller.principal, caller.allows) and throws SluiceErrors for expected failures; anything
 * else becomes INTERNAL on that request only.
 */
import type { Action, Principal } from '../accounts/accounts.js';

export interface Caller {
  readonly principal: Principal;
  allows(action: Action, site: string): Promise<boolean>;
}

/** Where a stream handler sends its messages; honour the demand given to StreamControl.request. */
export interface StreamSink {
  next(message: unknown): void;
  error(e: unknown): void;
  complete(): void;
}

export interface StreamControl {
  request(n: number): void;
  cancel(): void;
}

export interface RouteHandlers {
  // Bodies are validated against the route's request schema before the call; each handler
  // narrows with the Static type of its own schema.
  readonly requestResponse?: Readonly<Record<string, (body: unknown, caller: Caller) => Promise<unknown>>>;
  readonly requestStream?: Readonly<Record<string, (body: unknown, caller: Caller, sink: StreamSink) => StreamControl>>;
}

/** Several modules' handlers as one; a route registered twice is a programming error. */
export function joinHandlers(...all: readonly RouteHandlers[]): RouteHandlers {
  const rr: Record<string, (body: unknown, caller: Caller) => Promise<unknown>> = {};
  const rs: Record<string, (body: unknown, caller: Caller, sink: StreamSink) => StreamControl> = {};
  for (const h of all) {
    for (const [route, fn] of Object.entries(h.requestResponse ?? {})) {
      if (route in rr) throw new Error(`route ${route} registered twice`);
      rr[route] = fn;
    }
    for (const [route, fn] of Object.entries(h.requestStream ?? {})) {
      if (route in rs) throw new Error(`route ${route} registered twice`);
      rs[route] = fn;
    }
  }
  return { requestResponse: rr, requestStream: rs };
}
