/**
 * The ZooKeeper store against a stand-in client that takes requests and never answers, as
 * node-zookeeper-client does with a request it parked while disconnected when it is closed
 * before reconnecting: the call must fail, or the bridge's write round would wait for good.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';

vi.mock('node-zookeeper-client', async () => {
  const { EventEmitter } = await import('node:events');
  const State = { SYNC_CONNECTED: 3, DISCONNECTED: 0, EXPIRED: -122 };
  class Silent extends EventEmitter {
    getState = (): number => State.SYNC_CONNECTED;
    connect = (): void => void setTimeout(() => this.emit('connected'), 1);
    close = (): void => undefined;
    mkdirp = (_p: string, cb: (e: unknown) => void): void => cb(null);
    create = (): void => undefined; // parked: never answered
    remove = (): void => undefined;
  }
  return { default: { State, CreateMode: { EPHEMERAL: 1 }, Exception: { NO_NODE: -101, NODE_EXISTS: -110 }, createClient: () => new Silent() } };
});

const { zookeeperStore } = await import('../src/bridge/zookeeper.js');

describe('ZooKeeper requests', () => {
  afterEach(() => void vi.useRealTimers());

  test('a request the client never answers fails after 5 s instead of holding its round for good', async () => {
    const store = await zookeeperStore({ connect: '127.0.0.1:1', root: '/services', sessionTimeoutMs: 2_000 });
    await store.openSession(() => undefined);
    vi.useFakeTimers();
    const put = store.put('web/web@a@default', '{}');
    const outcome = put.then(() => 'answered', (e: Error) => e.message);
    await vi.advanceTimersByTimeAsync(4_900);
    expect(await Promise.race([outcome, Promise.resolve('waiting')])).toBe('waiting');
    await vi.advanceTimersByTimeAsync(200);
    expect(await outcome).toMatch(/no answer within 5000 ms/);
    const removed = store.remove('web/web@a@default').then(() => 'answered', (e: Error) => e.message);
    await vi.advanceTimersByTimeAsync(5_100);
    expect(await removed).toMatch(/no answer/);
  });
});
