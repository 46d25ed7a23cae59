/**
 * Each protocol path, stepped by hand on a virtual clock: small clusters of cores on the fake
 * network of sim/engine.ts. Every test names its seed; rerun with the same seed to replay it.
 */
import { describe, expect, test } from 'vitest';
import { Simulation, type TracedFrame } from '../sim/engine.js';
import { Membership } from '../src/core/membership.js';
import { STATE_NAMES } from '../src/core/members.js';
import { seededRng } from '../src/core/rng.js';
import { buildPacket, decodePacket, encodeMessage, encodePacket, MemberState, MessageType, type Message, withRecord } from '../src/core/wire.js';
import { LIMITS } from './arbitraries.js';

function messagesIn(frame: TracedFrame): Message[] {
  const r = decodePacket(frame.bytes, { ...LIMITS, membersMax: 100_000 });
  return r.ok ? r.messages : [];
}

function framesWith(h: Simulation, type: number, filter: (f: TracedFrame, m: Message) => boolean = () => true): TracedFrame[] {
  return (h.trace ?? []).filter((f) => messagesIn(f).some((m) => m.type === type && filter(f, m)));
}

function everyoneSees(h: Simulation, subject: string, state: string, observers = h.liveNodes().map((n) => n.name)): boolean {
  return observers.filter((o) => o !== subject).every((o) => h.stateOf(o, subject) === state);
}

function memberEvents(h: Simulation, observer: string, subject: string): string[] {
  return h.eventsOf(observer).flatMap((e) => ('member' in e && e.member.name === subject ? [e.type] : []));
}

describe('membership core, stepped by hand', () => {
  test('probe ok: a healthy cluster converges and nobody is suspected (seed 11)', () => {
    const h = new Simulation({ seed: 11 });
    h.startCluster(5);
    expect(h.runUntilTrue(() => h.liveNodes().every((n) => n.core.members().length === 5), 5_000)).toBe(true);
    h.runFor(30_000);
    for (const n of h.liveNodes()) {
      expect(n.core.members().every((m) => m.state === 'alive')).toBe(true);
      expect(h.eventsOf(n.name, 'suspect')).toEqual([]);
      expect(n.core.healthScore).toBe(0);
    }
  });

  test('forty members joining through one seed at once converge within a few seconds (seed 28)', () => {
    const h = new Simulation({ seed: 28 });
    h.addNode('n0');
    h.runFor(1_000);
    for (let i = 1; i < 40; i++) {
      h.addNode(`n${i}`);
      h.join(`n${i}`, ['n0']);
    }
    // Gossip alone leaves stragglers (each joiner's retransmits go to the few members it knows);
    // the early push-pulls after a join close the gap long before the 30 s push-pull period.
    expect(h.runUntilTrue(() => h.liveNodes().every((n) => n.core.members().length === 40), 3_000)).toBe(true);
    // Three quiet join-time push-pulls in a row (at 1, 3 and 7 s) end them and the regular period
    // (60 s at 40 members) resumes: about 20 exchanges in 30 s, where doubling on would make 80.
    h.runUntil(11_000);
    const streamsBefore = h.liveNodes().reduce((sum, n) => sum + n.counters.streamsOut, 0);
    h.runFor(30_000);
    const streamsAfter = h.liveNodes().reduce((sum, n) => sum + n.counters.streamsOut, 0);
    expect(streamsAfter - streamsBefore).toBeLessThan(30);
  });

  test('a hundred members joining at once all see each other within 5 s (seeds 0-11)', () => {
    // A single quiet join-time push-pull used to end the early exchanges; seed 17 of an earlier
    // sweep then left one member without two others until the 90 s push-pull.
    for (let seed = 0; seed < 12; seed++) {
      const h = new Simulation({ seed, network: { latency: { minMs: 0.1, maxMs: 1 } } });
      h.startCluster(100);
      expect(h.runUntilTrue(() => h.liveNodes().every((n) => n.core.members().length === 100), 5_000), `seed ${seed}`).toBe(true);
    }
  });

  test('direct probe fails, indirect probe through others succeeds: no suspicion (seed 12)', () => {
    const h = new Simulation({ seed: 12, trace: true });
    h.startCluster(4);
    h.runFor(3_000);
    // n0 and n1 cannot exchange datagrams or streams; both reach n2 and n3.
    h.partition(['n0'], ['n1']);
    h.runFor(20_000);
    expect(framesWith(h, MessageType.PingReq, (f, m) => f.from === 'n0' && m.type === MessageType.PingReq && m.target === 'n1').length)
      .toBeGreaterThan(0);
    // Relays passed n1's acks back to n0.
    expect(framesWith(h, MessageType.Ack, (f) => f.to === 'n0' && f.from !== 'n1').length).toBeGreaterThan(0);
    expect(memberEvents(h, 'n0', 'n1')).not.toContain('suspect');
    expect(memberEvents(h, 'n1', 'n0')).not.toContain('suspect');
  });

  test('UDP blocked between two members: the stream fallback ping keeps them alive (seed 13)', () => {
    const h = new Simulation({ seed: 13, trace: true });
    h.startCluster(2);
    h.runFor(2_000);
    h.addDropRule((frame) => frame.kind === 'datagram');
    h.runFor(20_000);
    expect(framesWith(h, MessageType.Ping, (f) => f.kind === 'stream').length).toBeGreaterThan(0);
    expect(memberEvents(h, 'n0', 'n1')).not.toContain('suspect');
  });

  test('suspect then refute: a member cut off briefly refutes with a higher incarnation (seed 14)', () => {
    const h = new Simulation({ seed: 14 });
    h.startCluster(4);
    h.runFor(3_000);
    const heal = h.partition(['n1'], ['n0', 'n2', 'n3']);
    expect(h.runUntilTrue(() => ['n0', 'n2', 'n3'].some((o) => h.stateOf(o, 'n1') === 'suspect'), 5_000)).toBe(true);
    heal();
    expect(h.runUntilTrue(() => everyoneSees(h, 'n1', 'alive'), 10_000)).toBe(true);
    expect(h.node('n1').core.incarnation).toBeGreaterThan(0);
    for (const o of ['n0', 'n2', 'n3']) {
      expect(memberEvents(h, o, 'n1')).not.toContain('dead');
      expect(h.node(o).core.member('n1')?.incarnation).toBe(h.node('n1').core.incarnation);
    }
    const suspected = ['n0', 'n2', 'n3'].filter((o) => memberEvents(h, o, 'n1').includes('suspect'));
    for (const o of suspected) expect(memberEvents(h, o, 'n1')).toContain('alive');
  });

  test('suspect then dead: a crashed member is declared dead by all, within the protocol bound (seed 15)', () => {
    const h = new Simulation({ seed: 15 });
    h.startCluster(6);
    h.runFor(5_000);
    const crashedAt = h.nowMs;
    h.crash('n4');
    expect(h.runUntilTrue(() => everyoneSees(h, 'n4', 'dead'), 60_000)).toBe(true);
    // Bound: a full probe round (5 members) plus the maximum suspicion timeout (6 x 4 s) plus gossip.
    expect(h.nowMs - crashedAt).toBeLessThan(5_000 + 24_000 + 2_000);
    for (const n of h.liveNodes()) expect(memberEvents(h, n.name, 'n4')).toEqual(expect.arrayContaining(['suspect', 'dead']));
  });

  test('Lifeguard: independent confirmations shrink the suspicion timeout toward the minimum (seed 16)', () => {
    const h = new Simulation({ seed: 16, config: { profile: 'lan', pauseToleranceMs: 0 } });
    h.startCluster(8);
    h.runFor(5_000);
    h.crash('n7');
    expect(h.runUntilTrue(() => everyoneSees(h, 'n7', 'dead'), 60_000)).toBe(true);
    const firstSuspect = Math.min(...h.liveNodes().map((n) => n.events.find((e) => e.event.type === 'suspect')?.atMs ?? Infinity));
    const firstDead = Math.min(...h.liveNodes().map((n) => n.events.find((e) => e.event.type === 'dead')?.atMs ?? Infinity));
    // memberlist's bounds at 8 members: min 4 s, max 24 s; with k = 2 confirmations from the other 6 it falls to the minimum.
    expect(firstDead - firstSuspect).toBeGreaterThanOrEqual(4_000);
    expect(firstDead - firstSuspect).toBeLessThan(8_000);
  });

  test('pause tolerance (LAN default): a few members that hear of a suspicion probe the suspect next, so confirmations bring a crash to the minimum timeout (seeds 21-30)', () => {
    for (let seed = 21; seed <= 30; seed++) {
      const h = new Simulation({ seed });
      h.startCluster(30);
      h.runFor(5_000);
      h.crash('n29');
      expect(h.runUntilTrue(() => everyoneSees(h, 'n29', 'dead'), 30_000), `seed ${seed}`).toBe(true);
      const probers = h.liveNodes().reduce((a, n) => a + n.core.stats.confirmingProbes, 0);
      // About 6 of the 28 others are expected to; never everyone.
      expect(probers, `seed ${seed}`).toBeGreaterThan(0);
      expect(probers, `seed ${seed}`).toBeLessThan(20);
      const firstSuspect = Math.min(...h.liveNodes().map((n) => n.events.find((e) => e.event.type === 'suspect')?.atMs ?? Infinity));
      const firstDead = Math.min(...h.liveNodes().map((n) => n.events.find((e) => e.event.type === 'dead')?.atMs ?? Infinity));
      // Minimum 2.7 s, then two questions within the 500 ms probe timeout; without confirmations it would be 16.2 s.
      expect(firstDead - firstSuspect, `seed ${seed}`).toBeLessThan(2_700 + 500 + 1_000);
    }
  });

  test('Lifeguard off: plain SWIM uses the fixed minimum timeout', () => {
    const h = new Simulation({ seed: 17, config: { profile: 'lan', lifeguard: false } });
    h.startCluster(8);
    h.runFor(5_000);
    h.crash('n7');
    expect(h.runUntilTrue(() => everyoneSees(h, 'n7', 'dead'), 60_000)).toBe(true);
    expect(h.liveNodes().every((n) => n.core.healthScore === 0 && h.eventsOf(n.name, 'health').length === 0)).toBe(true);
  });

  test('buddy system: a ping to a suspect carries the suspicion (seed 18)', () => {
    const h = new Simulation({ seed: 18, trace: true });
    h.startCluster(4);
    h.runFor(3_000);
    const heal = h.partition(['n2'], ['n0', 'n1', 'n3']);
    expect(h.runUntilTrue(() => ['n0', 'n1', 'n3'].some((o) => h.stateOf(o, 'n2') === 'suspect'), 10_000)).toBe(true);
    h.runFor(2_500); // shorter than the 4 s minimum suspicion timeout; the others probe n2 meanwhile
    heal();
    h.runFor(3_000);
    const buddy = (h.trace ?? []).filter((f) => {
      const ms = messagesIn(f);
      return ms.some((m) => m.type === MessageType.Ping && m.target === 'n2') &&
        ms.some((m) => m.type === MessageType.Suspect && m.node === 'n2');
    });
    expect(buddy.length).toBeGreaterThan(0);
    expect(everyoneSees(h, 'n2', 'alive')).toBe(true);
  });

  test('graceful leave is disseminated as left, not dead (seed 19)', () => {
    const h = new Simulation({ seed: 19 });
    h.startCluster(5);
    h.runFor(5_000);
    h.leave('n3');
    expect(h.runUntilTrue(() => h.eventsOf('n3', 'leave-disseminated').length > 0, 10_000)).toBe(true);
    h.crash('n3'); // the process exits after leaving
    const others = ['n0', 'n1', 'n2', 'n4'];
    expect(h.runUntilTrue(() => everyoneSees(h, 'n3', 'left', others), 5_000)).toBe(true);
    h.runFor(30_000);
    for (const o of others) {
      expect(h.stateOf(o, 'n3')).toBe('left');
      expect(memberEvents(h, o, 'n3')).not.toContain('dead');
      expect(memberEvents(h, o, 'n3')).not.toContain('suspect');
    }
  });

  test('a leave reaches every member at once, even in a small cluster with a dead member (seeds 0-199)', () => {
    // Gossip alone gives a broadcast 4 sends below ten members; one leave in a few hundred went
    // unheard by some member until it suspected the departed one itself.
    for (let seed = 0; seed < 200; seed++) {
      const h = new Simulation({ seed, network: { latency: { minMs: 0.05, maxMs: 0.3 } } });
      h.startCluster(10);
      h.runFor(20_000);
      h.crash('n9');
      h.runFor(25_000);
      h.leave('n8');
      h.runUntilTrue(() => h.eventsOf('n8', 'leave-disseminated').length > 0, 5_000);
      h.crash('n8');
      const everyone = h.runUntilTrue(() => everyoneSees(h, 'n8', 'left', h.liveNodes().map((n) => n.name)), 1_000);
      expect(everyone, `seed ${seed}`).toBe(true);
    }
  });

  test('a whole cluster leaving at once finishes promptly: nobody waits for listeners that left (seed 29)', () => {
    const h = new Simulation({ seed: 29 });
    h.startCluster(5);
    h.runFor(5_000);
    for (const n of h.liveNodes()) h.leave(n.name);
    expect(h.runUntilTrue(() => h.liveNodes().every((n) => h.eventsOf(n.name, 'leave-disseminated').length === 1), 1_000)).toBe(true);
    h.runFor(5_000);
    for (const n of h.liveNodes()) expect(h.eventsOf(n.name, 'leave-disseminated')).toHaveLength(1);
  });

  test('rejoin after restart: the new process claims a higher incarnation (seed 20)', () => {
    const h = new Simulation({ seed: 20 });
    h.startCluster(4);
    h.runFor(5_000);
    h.crash('n2');
    expect(h.runUntilTrue(() => everyoneSees(h, 'n2', 'dead', ['n0', 'n1', 'n3']), 60_000)).toBe(true);
    const deadIncarnation = h.node('n0').core.member('n2')?.incarnation ?? -1;
    h.restart('n2');
    expect(h.node('n2').core.incarnation).toBe(0);
    h.join('n2', ['n0']);
    expect(h.runUntilTrue(() => everyoneSees(h, 'n2', 'alive'), 10_000)).toBe(true);
    expect(h.node('n2').core.incarnation).toBeGreaterThan(deadIncarnation);
    for (const o of ['n0', 'n1', 'n3']) expect(memberEvents(h, o, 'n2').at(-1)).toBe('joined');
  });

  test('a tombstone blocks stale gossip from resurrecting a dead member, until it is reaped (seed 21)', () => {
    const h = new Simulation({ seed: 21, config: { profile: 'lan', tombstoneReapMs: 60_000 } });
    h.startCluster(3);
    h.runFor(3_000);
    const old = h.node('n0').core.member('n2');
    h.crash('n2');
    expect(h.runUntilTrue(() => everyoneSees(h, 'n2', 'dead', ['n0', 'n1']), 60_000)).toBe(true);
    const stale = encodePacket([{ type: MessageType.Alive, node: 'n2', incarnation: old?.incarnation ?? 0, addr: 'n2', ...withRecord() }]);
    h.inject('n0', 'n1', stale);
    h.runFor(1_000);
    expect(h.stateOf('n0', 'n2')).toBe('dead');
    expect(h.stateOf('n1', 'n2')).toBe('dead');
    h.runFor(61_000);
    expect(h.node('n0').core.member('n2')).toBeUndefined();
    expect(h.node('n1').core.member('n2')).toBeUndefined();
  });

  test('push-pull heals what gossip missed: a member partitioned past all retransmits learns a joiner (seed 22)', () => {
    const h = new Simulation({ seed: 22, config: { profile: 'lan', pushPullIntervalMs: 10_000 } });
    h.startCluster(3);
    h.runFor(3_000);
    const heal = h.partition(['n1'], ['n0', 'n2', 'n3']);
    h.addNode('n3');
    h.join('n3', ['n0']);
    h.runFor(3_000); // n1's suspicion of the others cannot expire in this time
    heal();
    expect(h.node('n1').core.member('n3')).toBeUndefined();
    expect(h.runUntilTrue(() => h.stateOf('n1', 'n3') === 'alive', 40_000)).toBe(true);
    expect(h.eventsOf('n1', 'synced').length + h.eventsOf('n0', 'synced').length).toBeGreaterThan(0);
  });

  test('a partition longer than suspicion and gossip-to-the-dead heals by itself (seed 23)', () => {
    const h = new Simulation({ seed: 23, config: { profile: 'lan', pushPullIntervalMs: 10_000 } });
    h.startCluster(6);
    h.runFor(5_000);
    const left = ['n0', 'n1', 'n2'];
    const right = ['n3', 'n4', 'n5'];
    const heal = h.partition(left, right);
    expect(h.runUntilTrue(() => left.every((o) => right.every((s) => h.stateOf(o, s) === 'dead')), 120_000)).toBe(true);
    // Outlast gossip to the dead (30 s): only contacting dead members can heal it now.
    h.runFor(45_000);
    heal();
    const all = [...left, ...right];
    expect(h.runUntilTrue(() => all.every((s) => everyoneSees(h, s, 'alive')), 120_000)).toBe(true);
  });

  test('local health: a node that hears nothing back raises its score and slows its probing (seed 24)', () => {
    const h = new Simulation({ seed: 24, trace: true });
    h.startCluster(5);
    h.runFor(5_000);
    // n0 sends fine but receives nothing: every probe fails and no nack comes back.
    h.addDropRule(({ to }) => to === 'n0');
    h.runFor(6_000);
    expect(h.node('n0').core.healthScore).toBeGreaterThan(0);
    expect(h.eventsOf('n0', 'health').length).toBeGreaterThan(0);
    const pingTimes = framesWith(h, MessageType.Ping, (f) => f.from === 'n0' && f.kind === 'datagram').map((f) => f.atMs);
    const early = pingTimes.filter((t) => t >= 5_000 && t < 8_000).length;
    const late = pingTimes.filter((t) => t >= 8_000 && t < 11_000).length;
    expect(late).toBeLessThan(early);
  });

  test('a stalled event loop does not make the stalled node accuse healthy peers (seed 25)', () => {
    const h = new Simulation({ seed: 25, trace: true });
    h.startCluster(5);
    h.runFor(5_000);
    // Stall right after n2 sends a ping, so its ack queues up behind the expired probe timers.
    for (let round = 0; round < 4; round++) {
      const seen = h.trace?.length ?? 0;
      h.runUntilTrue(() => (h.trace ?? []).slice(seen).some((f) => f.from === 'n2' && messagesIn(f).some((m) => m.type === MessageType.Ping)), 5_000);
      h.pause('n2', 3_000);
      h.runFor(6_000);
    }
    h.runFor(10_000);
    expect(h.eventsOf('n2', 'suspect')).toEqual([]);
    expect(h.eventsOf('n2', 'dead')).toEqual([]);
    for (const n of h.liveNodes()) {
      expect(h.eventsOf(n.name, 'dead')).toEqual([]);
      expect(n.core.members().every((m) => m.state === 'alive')).toBe(true);
    }
  });

  test('name conflict: a second process with the same name is reported and refuted (seed 26)', () => {
    const h = new Simulation({ seed: 26 });
    h.startCluster(3);
    h.runFor(3_000);
    // An impostor announces n1 from another address with a higher incarnation.
    const claim = encodePacket([{ type: MessageType.Alive, node: 'n1', incarnation: 5, addr: 'elsewhere', ...withRecord() }]);
    h.inject('n1', 'elsewhere', claim);
    h.runFor(100);
    const conflicts = h.eventsOf('n1', 'conflict');
    expect(conflicts).toEqual([{ type: 'conflict', name: 'n1', addr: 'n1', otherAddr: 'elsewhere', outcome: 'refuted' }]);
    expect(h.node('n1').core.incarnation).toBe(6);
    h.inject('n0', 'elsewhere', claim);
    h.runFor(2_000);
    expect(h.node('n0').core.member('n1')?.addr).toBe('n1');
  });

  test('a push-pull answer shows the member\'s table as it is now, through crashes, restarts and record changes (seed 30)', () => {
    const h = new Simulation({ seed: 30 });
    h.startCluster(12);
    const pick = seededRng(30);
    const crashed: string[] = [];
    let compared = 0;
    for (let step = 0; step < 120; step++) {
      h.runFor(450);
      const live = h.liveNodes();
      const n = live[pick.nextUint32() % live.length] as (typeof live)[number];
      if (step % 6 === 1 && live.length > 6) {
        h.crash(n.name);
        crashed.push(n.name);
        continue;
      }
      if (step % 6 === 3 && crashed.length > 0) h.restart(crashed.shift() as string).core.join(h.nowMs, ['n0']);
      if (step % 6 === 5) h.command(n.name, (core, now) => core.setLocalRecord(now, Uint8Array.of(step)));
      h.command(n.name, (core, now) => {
        const reply = core.handleStream(now, 'asker', encodePacket([{ type: MessageType.PushPull, join: false, reply: false, members: [] }]));
        const decoded = decodePacket(reply ?? new Uint8Array(), { ...LIMITS, membersMax: 100 });
        const state = decoded.ok ? decoded.messages[0] : undefined;
        expect(state?.type).toBe(MessageType.PushPull);
        if (state?.type !== MessageType.PushPull) return;
        const shown = state.members.map((e) => [e.name, e.addr, e.incarnation, STATE_NAMES[e.state], e.version, e.record.length]).sort();
        const table = core.members().map((m) => [m.name, m.addr, m.incarnation, m.state, m.version, m.record.length]).sort();
        expect(shown).toEqual(table);
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(90);
  });
});

describe('membership core, direct calls', () => {
  const make = (name: string, overrides = {}): Membership =>
    new Membership({ name, addr: name, rng: seededRng(1), nowMs: 0, ...overrides });

  test('bad options are typed errors naming the option', () => {
    expect(() => make('')).toThrowError(expect.objectContaining({ code: 'grapevine.invalid-option', option: 'name' }));
    expect(() => make('a', { addr: '' })).toThrowError(expect.objectContaining({ option: 'addr' }));
    expect(() => make('a', { record: new Uint8Array(65_537) })).toThrowError(expect.objectContaining({ code: 'grapevine.oversized' }));
    expect(() => make('a', { config: { probeIntervalMs: -1 } })).toThrowError(expect.objectContaining({ option: 'probeIntervalMs' }));
  });

  test('hostile datagrams are dropped, counted and reported, and change no state', () => {
    const core = make('a');
    core.handleDatagram(0, 'x', Uint8Array.from([1, 2, 3]));
    core.handleDatagram(0, 'x', new Uint8Array(70_000));
    core.handleDatagram(0, 'x', encodePacket([{ type: MessageType.PushPull, join: true, reply: false, members: [] }]));
    core.handleDatagram(0, 'x', encodePacket([{ type: MessageType.Ping, seq: 1, target: 'someone-else' }]));
    expect(core.stats.dropped).toEqual({ 'bad-header': 1, oversized: 1, 'stream-message-over-datagram': 1, 'wrong-target': 1 });
    const dropped: string[] = [];
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) if (e.type === 'dropped') dropped.push(e.reason);
    expect(dropped).toHaveLength(4);
    expect(core.members()).toHaveLength(1);
    expect(core.pollTransmit()).toBeUndefined();
  });

  test('ping-req floods are bounded', () => {
    const core = make('a');
    core.handleDatagram(0, 'b', encodePacket([{ type: MessageType.Alive, node: 'b', incarnation: 0, addr: 'b', ...withRecord() }]));
    for (let i = 0; i < 2_000; i++) {
      core.handleDatagram(0, 'x', encodePacket([{ type: MessageType.PingReq, seq: i, target: 'b', targetAddr: 'b', nack: true }]));
    }
    expect(core.stats.dropped['relay-limit']).toBe(2_000 - 1_024);
  });

  test('bounded work per input (issue 11): a frame of a million tiny messages is refused before decoding', () => {
    const core = make('a');
    const body = encodeMessage({ type: MessageType.Ack, seq: 1 });
    const frame = buildPacket(Array.from({ length: 1_000_000 }, () => body));
    expect(core.handleStream(0, 'x', frame)).toBeUndefined();
    expect(core.stats.dropped['too-many-messages']).toBe(1);
    core.handleDatagram(0, 'x', buildPacket(Array.from({ length: 257 }, () => body)));
    expect(core.stats.dropped['too-many-messages']).toBe(2);
    core.handleDatagram(0, 'x', buildPacket(Array.from({ length: 256 }, () => body)));
    expect(core.stats.dropped['too-many-messages']).toBe(2);
  });

  test('a large push-pull is merged in chunks, one per turn, and reported synced once, after the last (issue 11: 10,000 entries blocked the loop 120-190 ms)', () => {
    const core = make('a');
    const members = Array.from({ length: 2_000 }, (_, i) => ({
      name: `m${i}`, addr: `m${i}`, aliveIncarnation: 0, incarnation: 0, state: MemberState.Alive, ...withRecord(),
    }));
    const reply = core.handleStream(0, 'x', encodePacket([{ type: MessageType.PushPull, join: true, reply: false, members }]));
    expect(reply).toBeDefined(); // answered at once, with our state before the merge
    const synced = (): number => {
      let n = 0;
      for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) if (e.type === 'synced') n++;
      return n;
    };
    expect(core.members().length).toBe(1 + 512);
    expect(synced()).toBe(0);
    let turns = 0;
    for (let t = 1; core.members().length < 2_001 && t < 100; t++, turns++) core.handleTimeout(t);
    expect(turns).toBe(3);
    expect(synced()).toBe(1);
  });

  test('large push-pulls beyond a backlog of 4 are refused unanswered, not held', () => {
    const core = make('a');
    const members = Array.from({ length: 1_000 }, (_, i) => ({
      name: `m${i}`, addr: `m${i}`, aliveIncarnation: 0, incarnation: 0, state: MemberState.Alive, ...withRecord(),
    }));
    const frame = encodePacket([{ type: MessageType.PushPull, join: false, reply: false, members }]);
    const replies = Array.from({ length: 6 }, () => core.handleStream(0, 'x', frame));
    expect(replies.map((r) => r !== undefined)).toEqual([true, true, true, true, false, false]);
    expect(core.stats.dropped['merge-backlog']).toBe(2);
  });

  test('a stream request bounds the reply it will read by what it asks for', () => {
    const core = make('a', { config: { recordBytesMax: 100_000, recordInlineBytesMax: 64 } });
    core.join(0, ['s']);
    // A member with a record too large to inline, so it is pulled over a stream.
    core.handleDatagram(0, 'b', encodePacket([{ type: MessageType.Alive, node: 'b', incarnation: 1, addr: 'b', ...withRecord(new Uint8Array(5_000), 1), record: new Uint8Array(0) }]));
    // b stops answering: the probe falls back to a stream ping.
    for (let t = 0; t <= 5_000; t += 50) core.handleTimeout(t);
    const limits = new Map<string, number>();
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) {
      if (!t.stream) continue;
      const m = decodePacket(t.bytes, { ...LIMITS, membersMax: 10 });
      if (m.ok) limits.set(String(m.messages[0]?.type), t.replyBytesMax ?? -1);
    }
    expect(limits.get(String(MessageType.PushPull))).toBe(core.config.streamBytesMax);
    expect(limits.get(String(MessageType.RecordPull))).toBe(100_000 + core.config.nameBytesMax + 1_024);
    expect(limits.get(String(MessageType.Ping))).toBe(256);
  });

  test('answers to an address that is not a member are rate-limited: 20 at once, then 10 a second', () => {
    const core = make('a');
    const ping = (seq: number) => encodePacket([{ type: MessageType.Ping, seq, target: 'a' }]);
    for (let i = 0; i < 100; i++) core.handleDatagram(0, 'reflector', ping(i));
    let answered = 0;
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) if (t.addr === 'reflector') answered++;
    expect(answered).toBe(20);
    expect(core.stats.dropped['answer-rate']).toBe(80);
    for (let i = 0; i < 100; i++) core.handleDatagram(1_000, 'reflector', ping(i));
    answered = 0;
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) if (t.addr === 'reflector') answered++;
    expect(answered).toBe(10);
  });

  /** Every datagram the core sends, drained. */
  const sent = (core: Membership): { addr: string; bytes: Uint8Array }[] => {
    const out: { addr: string; bytes: Uint8Array }[] = [];
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) if (!t.stream) out.push(t);
    return out;
  };

  test('no amplification (issue 11): an unknown source gets a bare ack no larger than its ping, one per packet; ping-reqs go only to known members', () => {
    const core = make('a');
    core.handleDatagram(0, 'b', encodePacket([{ type: MessageType.Alive, node: 'b', incarnation: 0, addr: 'b', ...withRecord() }]));
    // Plenty of news queued, as after a record change.
    for (let i = 0; i < 30; i++) core.handleDatagram(0, 'b', encodePacket([{ type: MessageType.Alive, node: `m${i}`, incarnation: 0, addr: `m${i}`, ...withRecord() }]));
    sent(core);
    const ping = encodePacket([{ type: MessageType.Ping, seq: 9, target: 'a' }]);
    core.handleDatagram(0, 'stranger', ping);
    const [ack, ...more] = sent(core);
    expect(more).toEqual([]);
    expect(ack?.addr).toBe('stranger');
    expect(ack?.bytes.length).toBeLessThanOrEqual(ping.length);
    // The same ping from a member known at that address carries gossip.
    core.handleDatagram(0, 'b', encodePacket([{ type: MessageType.Ping, seq: 10, target: 'a', source: 'b' }]));
    expect(sent(core)[0]?.bytes.length).toBeGreaterThan(ping.length * 5);
    // ...but naming a member from another address does not.
    core.handleDatagram(0, 'stranger', encodePacket([{ type: MessageType.Ping, seq: 11, target: 'a', source: 'b' }]));
    expect(sent(core)[0]?.bytes.length).toBeLessThanOrEqual(ping.length + 2);
    // 174 pings in one packet: one answer.
    core.handleDatagram(0, 'stranger', encodePacket(Array.from({ length: 174 }, (_, i) => ({ type: MessageType.Ping, seq: i, target: 'a' }) as Message)));
    expect(sent(core).length).toBe(1);
    expect(core.stats.dropped['probe-limit']).toBe(173);
    // A ping-req toward a third party, or toward a member at another address, sends nothing.
    core.handleDatagram(0, 'stranger', encodePacket([{ type: MessageType.PingReq, seq: 1, target: 'victim', targetAddr: '10.9.9.9:80', nack: true }]));
    core.handleDatagram(0, 'stranger', encodePacket([{ type: MessageType.PingReq, seq: 2, target: 'b', targetAddr: '10.9.9.9:80', nack: true }]));
    expect(sent(core)).toEqual([]);
    expect(core.stats.dropped['relay-unknown-target']).toBe(2);
  });

  test('an undrained event queue stays bounded and counts what it dropped', () => {
    const core = make('a', { config: { eventQueueMax: 10 } });
    for (let i = 0; i < 50; i++) core.handleDatagram(0, 'x', Uint8Array.from([i]));
    expect(core.stats.eventsDropped).toBe(40);
    let kept = 0;
    while (core.pollEvent() !== undefined) kept++;
    expect(kept).toBe(10);
  });

  test('join after leave is a local misuse error', () => {
    const core = make('a');
    core.leave(0);
    expect(() => core.join(0, ['b'])).toThrowError(expect.objectContaining({ code: 'grapevine.invalid-state' }));
  });

  test('a lone member that leaves reports the leave disseminated at once', () => {
    const core = make('a');
    core.leave(0);
    const types: string[] = [];
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) types.push(e.type);
    expect(types).toContain('leave-disseminated');
    expect(core.member('a')?.state).toBe('left');
  });
});
