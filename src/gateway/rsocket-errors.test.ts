import { expect } from 'chai';
import {
  ErrorCodes,
  FrameTypes,
  RSocketConnector,
  RSocketError,
  RSocketServer,
  deserializeFrame,
  serializeFrame,
  type RSocket,
} from 'rsocket-core';
import { TcpClientTransport } from 'rsocket-tcp-client';
import { errorBody, parseErrorBody } from '../../protocol/errors.js';
import { errorFrame, rsocketError } from './rsocket-errors.js';
import { TcpServerTransport } from './tcp-server-transport.js';
import { EchoProbe, echoAcceptor, requestResponse } from './transport-test-kit.js';

describe('rsocket-errors', () => {
  describe('rsocketError', () => {
    it('pins the rsocket-core alpha.3 defect it works around: new RSocketError is not an RSocketError', () => {
      const plain = new RSocketError(ErrorCodes.INVALID, 'x');
      expect(plain instanceof RSocketError).to.equal(false);
      expect(plain.code).to.equal(ErrorCodes.INVALID);
    });

    it('is an RSocketError with the catalog code and the JSON body as message', () => {
      const error = rsocketError('ROUTE_UNKNOWN', 'no route "x"');
      expect(error instanceof RSocketError).to.equal(true);
      expect(error instanceof Error).to.equal(true);
      expect(error.code).to.equal(0x204);
      expect(JSON.parse(error.message)).to.deep.equal(errorBody('ROUTE_UNKNOWN', 'no route "x"'));
      expect(error.stack).to.be.a('string');
    });

    it('maps setup and retryable codes from the catalog', () => {
      expect(rsocketError('AUTH_INVALID', 'k').code).to.equal(0x003);
      expect(parseErrorBody(rsocketError('OVERLOADED', 'slow').message)).to.deep.equal({ code: 'OVERLOADED', message: 'slow', retryable: true });
    });
  });

  describe('errorFrame', () => {
    it('is a stream-0 ERROR frame that survives the codec', () => {
      const frame = errorFrame('SETUP_INVALID', 'first frame was not SETUP');
      const decoded = deserializeFrame(serializeFrame(frame));
      expect(decoded).to.deep.include({ type: FrameTypes.ERROR, streamId: 0, code: 0x001 });
      expect(decoded.type === FrameTypes.ERROR && parseErrorBody(decoded.message)?.code).to.equal('SETUP_INVALID');
    });

    it('sends request-level codes as CONNECTION_ERROR, the only legal choice on stream 0', () => {
      expect(errorFrame('FRAME_MALFORMED', 'm').code).to.equal(0x101);
      const frame = errorFrame('INTERNAL', 'boom');
      expect(frame.code).to.equal(0x101);
      expect(parseErrorBody(frame.message)?.code).to.equal('INTERNAL');
    });
  });

  describe('on the wire', () => {
    let transport: TcpServerTransport;
    let rsocket: RSocket;

    beforeEach(async () => {
      transport = new TcpServerTransport({ host: '127.0.0.1', port: 0, maxFrameBytes: 65_536, setupTimeoutMs: 1_000, highWaterBytes: 65_536 });
      await new RSocketServer({ transport, acceptor: echoAcceptor(new EchoProbe()) }).bind();
      rsocket = await new RSocketConnector({
        transport: new TcpClientTransport({ connectionOptions: { host: '127.0.0.1', port: transport.port } }),
      }).connect();
    });

    afterEach(() => {
      rsocket.close();
      for (const c of transport.connections) c.close();
      transport.close();
    });

    async function failure(data: string): Promise<Error & { code?: number }> {
      try {
        await requestResponse(rsocket, data);
      } catch (error) {
        return error as Error & { code?: number };
      }
      throw new Error('expected the request to fail');
    }

    it('sends rsocketError(ROUTE_UNKNOWN) as 0x204 INVALID with the catalog body', async () => {
      const error = await failure('route-unknown');
      expect(error.code).to.equal(0x204);
      expect(parseErrorBody(error.message)).to.deep.equal({ code: 'ROUTE_UNKNOWN', message: 'no such route', retryable: false });
    });

    it('shows why: a plain new RSocketError(INVALID) goes out as 0x201 APPLICATION_ERROR', async () => {
      const error = await failure('plain-rsocket-error');
      expect(error.code).to.equal(0x201);
    });
  });
});
