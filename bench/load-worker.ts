/**
 * Load generator for the ingest benchmark, run in a worker thread so the client has its own
 * event loop (the machine's second core) and the server thread measures only the server.
 * Payloads are encoded once up front: the loop measures the server, not client-side JSON.
 * It honours the socket's write buffer so client memory stays bounded.
 */
import { connect, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { RSocketConnector, type Payload } from 'rsocket-core';
import { WellKnownMimeType, encodeBearerAuthMetadata, encodeCompositeMetadata } from 'rsocket-composite-metadata';
import { TcpClientTransport } from 'rsocket-tcp-client';

export interface LoadSpec {
  readonly port: number;
  readonly apiKey: string;
  readonly durationMs: number;
  /** Pre-encoded request payloads, sent round-robin. */
  readonly payloads: ReadonlyArray<{ data: Uint8Array; metadata: Uint8Array }>;
}

async function run(spec: LoadSpec): Promise<{ frames: number }> {
  let socket: Socket | undefined;
  const transport = new TcpClientTransport({
    connectionOptions: { host: '127.0.0.1', port: spec.port },
    socketCreator: (options) => {
      socket = connect(options);
      return socket;
    },
  });
  const rsocket = await new RSocketConnector({
    transport,
    setup: {
      dataMimeType: 'application/json',
      metadataMimeType: 'message/x.rsocket.composite-metadata.v0',
      keepAlive: 10_000,
      lifetime: 60_000,
      payload: { data: null, metadata: encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeBearerAuthMetadata(spec.apiKey)]]) },
    },
  }).connect();
  const payloads: Payload[] = spec.payloads.map((p) => ({ data: Buffer.from(p.data), metadata: Buffer.from(p.metadata) }));
  const sink = { onComplete() {}, onError() {} };
  const end = Date.now() + spec.durationMs;
  let frames = 0;
  let i = 0;
  while (Date.now() < end) {
    for (let k = 0; k < 256; k++) {
      rsocket.fireAndForget(payloads[i]!, sink);
      i = (i + 1) % payloads.length;
      frames++;
    }
    if (socket && socket.writableLength > 4 * 1024 * 1024) {
      await new Promise<void>((resolve) => socket!.once('drain', () => resolve()));
    } else {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  // Let the last writes leave before closing.
  if (socket && socket.writableLength > 0) await new Promise<void>((resolve) => socket!.once('drain', () => resolve()));
  rsocket.close();
  return { frames };
}

run(workerData as LoadSpec).then(
  (result) => parentPort?.postMessage({ ok: true, ...result }),
  (e: unknown) => parentPort?.postMessage({ ok: false, error: String(e) }),
);
