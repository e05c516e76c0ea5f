/** The injected logger. Modules take a Logger; only main.ts creates the root one. */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(level: string, name = 'sluice'): Logger {
  return pino({ name, level });
}

/** A logger that drops everything: for tests that assert on behaviour, not on logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
