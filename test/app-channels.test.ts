/**
 * Channels for rooms built on the core (src/core/app-channels.ts, gv.channel): gossip reaches
 * every member, a datagram one, a stream request gets its answer back as a reply; a channel
 * nobody hears drops what comes, payloads over the limits are refused, and with a keyring an
 * outsider's message is dropped unheard. Members on 127.0.0.1; every wait is bounded.
 */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodePacket, Grapevine, MessageType, OversizedError } from '../src/index.js';
import { until } from './until.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('app channels', () => {
  const members: Grapevine[] = [];
  const heard: string[][] = [[], [], []];

  beforeAll(async () => {
    const key = new Uint8Array(32).fill(7);
    members.push(await Grapevine.start({ name: 'c0', bind: '127.0.0.1:0', profile: 'local', keyring: [key] }));
    for (let i = 1; i < 3; i++) members.push(await Grapevine.start({ name: `c${i}`, bind: '127.0.0.1:0', profile: 'local', keyring: [key], seeds: [members[0]?.address as string] }));
    await until(() => members.every((m) => m.members().length === 3));
    members.forEach((m, i) => m.channel(9).onMessage((_now, from, payload, kind) => {
      heard[i]?.push(`${kind} ${str(payload)} from ${from === members[0]?.address ? 'c0' : from}`);
      return kind === 'request' ? text(`answer to ${str(payload)} from ${m.name}`) : undefined;
    }));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
  });

  test('gossip reaches every member; a datagram reaches one; a stream request is answered on its stream', async () => {
    const [c0, c1, c2] = members as [Grapevine, Grapevine, Grapevine];
    c0.channel(9).broadcast('k', text('hello all'));
    await until(() => heard[1]?.some((h) => h.startsWith('datagram hello all')) === true && heard[2]?.some((h) => h.startsWith('datagram hello all')) === true);
    c1.channel(9).send(c2.address, text('just you'), false);
    await until(() => heard[2]?.includes(`datagram just you from ${c1.address}`) === true);
    c0.channel(9).send(c1.address, text('question'), true);
    await until(() => heard[0]?.includes(`reply answer to question from c1 from ${c1.address}`) === true);
    // A stream comes from the connecting socket's port, not the sender's gossip address.
    expect(heard[1]?.some((h) => h.startsWith('request question from 127.0.0.1:'))).toBe(true);
    expect(heard[0]?.some((h) => h.includes('hello all'))).toBe(false);
  });

  test('limits: a payload over the datagram limit is refused at once; a channel nobody hears drops what comes', async () => {
    const [c0, c1] = members as [Grapevine, Grapevine];
    const ch = c0.channel(9);
    expect(ch.datagramBytesMax).toBeGreaterThan(1_000);
    expect(ch.datagramBytesMax).toBeLessThan(1_400);
    expect(() => ch.broadcast('big', new Uint8Array(ch.datagramBytesMax + 1))).toThrow(OversizedError);
    expect(() => c0.channel(256)).not.toThrow();
    expect(() => c0.channel(256).send(c1.address, text('x'), false)).toThrow(/channel: must be an integer in 0\.\.255/);
    const dropped: string[] = [];
    c1.on('dropped', (d) => dropped.push(d.reason));
    c0.channel(10).send(c1.address, text('to nobody'), false);
    await until(() => dropped.includes('unknown-app-channel'));
  });

  test('a handler that throws drops the input; the member goes on', async () => {
    const [c0, c1] = members as [Grapevine, Grapevine];
    const dropped: string[] = [];
    c1.on('dropped', (d) => dropped.push(`${d.reason} ${d.detail ?? ''}`));
    c1.channel(11).onMessage(() => {
      throw new Error('a bug in a room');
    });
    c0.channel(11).send(c1.address, text('boom'), false);
    await until(() => dropped.some((d) => d.startsWith('app-handler-threw channel 11: a bug in a room')));
    c0.channel(9).send(c1.address, text('still there?'), false);
    await until(() => heard[1]?.some((h) => h.startsWith('datagram still there?')) === true);
  });

  test('with a keyring, a message in clear from outside is dropped and nobody hears it', async () => {
    const [, c1] = members as [Grapevine, Grapevine];
    const dropped: string[] = [];
    c1.on('dropped', (d) => dropped.push(d.reason));
    const socket = createSocket('udp4');
    const port = Number(c1.address.slice(c1.address.lastIndexOf(':') + 1));
    await new Promise<void>((r) => socket.send(encodePacket([{ type: MessageType.App, channel: 9, payload: text('forged'), kind: 0 }]), port, '127.0.0.1', () => r()));
    socket.close();
    await until(() => dropped.length > 0);
    expect(heard[1]?.some((h) => h.includes('forged'))).toBe(false);
  });
});
