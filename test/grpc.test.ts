/**
 * grpc-js resolving `grapevine:///echo` through the catalog: three grpc-js servers on
 * 127.0.0.1, a client with round_robin; one server (and the process that registered it) killed
 * during a run of unary calls: the calls go on against the others. Bounded in count and time.
 */
import { Metadata, Server, ServerCredentials, credentials, makeGenericClientConstructor, type ServiceError, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AgentProcess } from '../src/cli/processes.js';
import { registerResolver } from '../src/client/grpc.js';
import { Grapevine } from '../src/index.js';
import { until } from './until.js';

const identity = (b: Buffer): Buffer => b;
const SERVICE = {
  echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'echo' },
};
const EchoClient = makeGenericClientConstructor(SERVICE, 'Echo');

let a: Grapevine;
let b: Grapevine;
let victim: AgentProcess;
const servers: Server[] = [];

async function grpcServer(name: string): Promise<{ server: Server; port: number }> {
  const server = new Server();
  const impl: UntypedServiceImplementation = { echo: (_call: unknown, callback: (e: null, r: Buffer) => void) => callback(null, Buffer.from(name)) };
  server.addService(SERVICE, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  servers.push(server);
  return { server, port };
}

function call(client: InstanceType<typeof EchoClient>): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = client as unknown as { echo(req: Buffer, md: Metadata, opts: { deadline: number }, cb: (e: ServiceError | null, r?: Buffer) => void): void };
    c.echo(Buffer.from('hi'), new Metadata(), { deadline: Date.now() + 3_000 }, (e, r) => (e ? reject(e) : resolve(String(r))));
  });
}

describe('grpc-js over grapevine:///', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'grpc-a', bind: '127.0.0.1:0', profile: 'local' });
    b = await Grapevine.start({ name: 'grpc-b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    registerResolver(a);
  }, 20_000);

  afterAll(async () => {
    await victim?.stop();
    for (const s of servers) s.forceShutdown();
    await Promise.all([a?.close(), b?.close()]);
  });

  test('round_robin over the catalog\'s instances; a killed server\'s calls go to the others', async () => {
    const [s1, s2, s3] = [await grpcServer('one'), await grpcServer('two'), await grpcServer('three')];
    await b.register({ name: 'echo', id: 'one', port: s1.port });
    await b.register({ name: 'echo', id: 'two', port: s2.port });
    victim = new AgentProcess({ name: 'grpc-victim', bind: '127.0.0.1:0', seeds: [a.address], profile: 'local', services: [{ name: 'echo', port: s3.port }] });
    await victim.ready();
    await until(() => a.lookup('echo').length === 3, 20_000);
    const client = new EchoClient('grapevine:///echo', credentials.createInsecure(), { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) });
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(await call(client));
    expect(seen).toEqual(new Set(['one', 'two', 'three'])); // round_robin over all three
    const after: string[] = [];
    let failed = 0;
    for (let i = 0; i < 200; i++) {
      if (i === 20) {
        victim.signal('SIGKILL');
        s3.server.forceShutdown();
      }
      try {
        after.push(await call(client));
      } catch {
        failed++;
      }
    }
    console.log(`grpc round_robin across a kill: ${after.length} calls answered, ${failed} failed`);
    expect(failed).toBeLessThanOrEqual(1); // at most the call in flight at the kill
    expect(after.slice(-50).every((r) => r === 'one' || r === 'two')).toBe(true);
    expect(new Set(after.slice(-50))).toEqual(new Set(['one', 'two']));
    // A new instance is picked up without a new channel.
    const s4 = await grpcServer('four');
    await b.register({ name: 'echo', id: 'four', port: s4.port });
    await until(async () => (await call(client)) === 'four', 10_000);
    client.close();
  }, 60_000);

  test('pick_first works too, and a service with no instance fails UNAVAILABLE', async () => {
    const client = new EchoClient('grapevine:///echo', credentials.createInsecure(), { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ pick_first: {} }] }) });
    expect(['one', 'two', 'four']).toContain(await call(client));
    client.close();
    const none = new EchoClient('grapevine:///nothing', credentials.createInsecure());
    await expect(call(none)).rejects.toMatchObject({ code: 14 });
    none.close();
  }, 30_000);
});
