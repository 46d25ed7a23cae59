/**
 * A UDP socket and a TCP server on one port, as the gossip transport and the DNS interface
 * both serve. Port 0 lets UDP pick a free port, which another process may hold on TCP: then
 * both are closed and another port is tried, a few times.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

const EPHEMERAL_PORT_TRIES = 8;

/** Binding failed: `stage` says which side, `cause` is the socket error. */
export class PairBindError extends Error {
  constructor(readonly stage: 'udp' | 'tcp', override readonly cause: unknown) {
    super((cause as Error).message);
  }
}

export async function bindPair(host: string, port: number, family: 4 | 6): Promise<{ udp: UdpSocket; tcp: Server; port: number }> {
  const tries = port === 0 ? EPHEMERAL_PORT_TRIES : 1;
  let lastError: unknown;
  for (let i = 0; i < tries; i++) {
    const udp = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw new PairBindError('udp', e);
    }
    const bound = udp.address().port;
    const tcp = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port: bound, host, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      return { udp, tcp, port: bound };
    } catch (e) {
      lastError = e;
      udp.close();
      tcp.close();
    }
  }
  throw new PairBindError('tcp', lastError);
}
