/**
 * Codec throughput: full compound packets (about 1,400 bytes) through our encoder and bounded
 * decoder, against raw msgpackr pack/unpack of the same message objects in the same run.
 */
import { pack, unpack, unpackMultiple } from 'msgpackr';
import { HEADER_BYTES } from '../src/core/wire.js';
import { buildPacket, decodePacket, encodeMessage, MessageType, type Message, withRecord } from '../src/core/wire.js';
import { compare, fmt, table } from './util.js';

const LIMITS = { nameBytesMax: 128, addrBytesMax: 128, carriedRecordBytesMax: 512, recordBytesMax: 65_536, membersMax: 100_000, messagesMax: 256 };

/** A realistic gossip packet: a ping plus alive/suspect/dead updates until the payload is full. */
function fullPacketMessages(): Message[] {
  const messages: Message[] = [{ type: MessageType.Ping, seq: 123_456, target: 'billing-7f9c2d-node-03' }];
  let size = 3 + encodeMessage(messages[0] as Message).length;
  for (let i = 0; ; i++) {
    const node = `service-${i.toString(16)}-node-${i % 50}`;
    const m: Message = i % 3 === 0
      ? { type: MessageType.Alive, node, incarnation: 1_000 + i, addr: `10.1.${i % 250}.${(i * 7) % 250}:7946`, ...withRecord(new Uint8Array(24).fill(i)) }
      : i % 3 === 1
        ? { type: MessageType.Suspect, node, incarnation: 1_000 + i, from: 'api-gateway-node-1' }
        : { type: MessageType.Dead, node, incarnation: 1_000 + i };
    const len = encodeMessage(m).length;
    if (size + len > 1_400) break;
    size += len;
    messages.push(m);
  }
  return messages;
}

export function benchCodec(): void {
  const messages = fullPacketMessages();
  const ours = buildPacket(messages.map(encodeMessage));
  const raw = pack(messages);
  const check = decodePacket(ours, LIMITS);
  if (!check.ok || check.messages.length !== messages.length) throw new Error('codec bench packet does not round-trip');

  const r = compare({
    'grapevine encode': () => buildPacket(messages.map(encodeMessage)),
    'msgpackr pack': () => pack(messages),
    'grapevine decode': () => decodePacket(ours, LIMITS),
    'msgpackr unpack': () => unpack(raw),
    'msgpackr unpack tuples': () => unpackMultiple(ours.subarray(HEADER_BYTES)),
  });
  const ratio = (a: string, b: string): string => fmt((r[a] as number) / (r[b] as number), 2);
  console.log(`\n## codec: one full compound packet, ${messages.length} messages`);
  console.log(table([
    ['', 'packets/s', 'bytes', 'ratio to msgpackr'],
    ['grapevine encode', fmt(r['grapevine encode'] as number), ours.length, ratio('grapevine encode', 'msgpackr pack')],
    ['msgpackr pack (objects)', fmt(r['msgpackr pack'] as number), raw.length, '1.00'],
    ['grapevine decode (bounded)', fmt(r['grapevine decode'] as number), ours.length, ratio('grapevine decode', 'msgpackr unpack')],
    ['msgpackr unpack (objects)', fmt(r['msgpackr unpack'] as number), raw.length, '1.00'],
    ['msgpackr unpack, our bytes, no checks', fmt(r['msgpackr unpack tuples'] as number), ours.length, ratio('msgpackr unpack tuples', 'msgpackr unpack')],
  ]));
  console.log(`(same ${messages.length} messages: ${ours.length} bytes as our tuples vs ${raw.length} as msgpackr maps)`);
}
