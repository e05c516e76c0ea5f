/**
 * Routes kafkajs's own log lines into the injected pino logger, so the driver's warnings land
 * in the same structured stream as ours instead of on the console.
 */
import { logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';
import type { Logger } from '../../log.js';

export function kafkaLogCreator(logger: Logger): logCreator {
  return () => ({ namespace, level, log }) => {
    const { message, timestamp: _timestamp, logger: _name, ...fields } = log as { message: string; timestamp?: unknown; logger?: unknown };
    const entry = { kafkajs: namespace, ...fields };
    // kafkajs's connection logs every error response of the protocol at ERROR (a heartbeat
    // answered "rebalancing", a produce answered "not the leader" while a leader moves), and the
    // layer that handles it logs again at the level it deserves.
    if (namespace === 'Connection' && message.startsWith('Response ')) {
      logger.debug(entry, message);
      return;
    }
    switch (level) {
      case KafkaLogLevel.ERROR:
        logger.error(entry, message);
        break;
      case KafkaLogLevel.WARN:
        logger.warn(entry, message);
        break;
      case KafkaLogLevel.INFO:
        // kafkajs reports every join, pause and stop at INFO: our own lines already say so.
        logger.debug(entry, message);
        break;
      default:
        logger.trace(entry, message);
    }
  };
}

/** The kafkajs level that lets through what the pino logger would print. */
export function kafkaLogLevel(logger: Logger): KafkaLogLevel {
  if (logger.isLevelEnabled('debug')) return KafkaLogLevel.INFO;
  if (logger.isLevelEnabled('warn')) return KafkaLogLevel.WARN;
  if (logger.isLevelEnabled('error')) return KafkaLogLevel.ERROR;
  return KafkaLogLevel.NOTHING;
}
