/**
 * The HTTP API over HTTPS (`http: { tls }`, the agent's --http-tls-* flags), with a CA, a server
 * certificate and a client certificate made by openssl in a temporary directory, and real
 * clients: curl and the consul npm package. Everything on 127.0.0.1.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Consul from 'consul';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { available, runs } from './needs.js';

const run = promisify(execFile);
const hasOpenssl = available('openssl', runs('openssl', ['version']), 'apt-get install -y openssl');
const hasCurl = available('curl', runs('curl', ['--version']), 'apt-get install -y curl');

let dir = '';
const file = (name: string): string => join(dir, name);
const pem = (name: string): string => readFileSync(file(name), 'utf8');

/** A CA, and two certificates it signs: the server's for 127.0.0.1, and a client's. */
async function makeCerts(): Promise<void> {
  const openssl = (...args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir, timeout: 20_000 });
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=grapevine test CA');
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    writeFileSync(file(`${name}.ext`), `${ext}\n`);
    await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  }
}

describe.skipIf(!hasOpenssl || !hasCurl)('HTTPS for the HTTP API', () => {
  const members: Grapevine[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'grapevine-tls-'));
    await makeCerts();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const start = async (tls: Record<string, unknown>): Promise<string> => {
    const gv = await Grapevine.start({ bind: '127.0.0.1:0', profile: 'local', http: { bind: '127.0.0.1:0', tls: { cert: pem('server.pem'), key: pem('server.key'), ...tls } } });
    members.push(gv);
    return gv.listening('http') as string;
  };
  const curl = async (args: string[]): Promise<{ code: number; out: string }> => {
    try {
      return { code: 0, out: (await run('curl', ['-sS', '--max-time', '10', ...args], { timeout: 20_000 })).stdout };
    } catch (e) {
      return { code: (e as { code: number }).code, out: String((e as { stderr?: string }).stderr) };
    }
  };

  test('curl and the consul client talk to it with the CA; without the CA, or in plain HTTP, nothing is served', async () => {
    const api = await start({});
    const self = await curl(['--cacert', file('ca.pem'), `https://${api}/v1/agent/self`]);
    expect(self.code).toBe(0);
    expect(JSON.parse(self.out)).toMatchObject({ Config: { Datacenter: 'dc1' } });
    // curl's "peer certificate cannot be authenticated with given CA certificates".
    expect((await curl([`https://${api}/v1/agent/self`])).code).toBe(60);
    expect((await curl([`http://${api}/v1/agent/self`])).code).not.toBe(0);

    const [host, port] = [api.split(':')[0] as string, Number(api.split(':')[1])];
    const consul = new Consul({ host, port, secure: true, agent: new HttpsAgent({ ca: pem('ca.pem') }) });
    await consul.agent.service.register({ name: 'secure', port: 443 });
    expect(Object.keys(await consul.agent.service.list() as object)).toEqual(['secure']);
  }, 30_000);

  test('with a required client certificate, only clients holding one from the CA are answered', async () => {
    const api = await start({ ca: pem('ca.pem'), requireClientCert: true });
    const withCert = await curl(['--cacert', file('ca.pem'), '--cert', file('client.pem'), '--key', file('client.key'), `https://${api}/v1/status/leader`]);
    expect(withCert.code).toBe(0);
    expect((await curl(['--cacert', file('ca.pem'), `https://${api}/v1/status/leader`])).code).not.toBe(0);
  }, 30_000);

  test('a bad certificate, a key without its certificate, or client certificates without a CA are refused at start, naming the option', async () => {
    const bad = (tls: unknown, option: string): Promise<void> => expect(Grapevine.start({ bind: '127.0.0.1:0', http: { bind: '127.0.0.1:0', tls: tls as never } })).rejects.toMatchObject({ option });
    await bad({ cert: 'not a certificate', key: pem('server.key') }, 'http.tls');
    await bad({ key: pem('server.key') }, 'http.tls.cert');
    await bad({ cert: pem('server.pem'), key: pem('server.key'), requireClientCert: true }, 'http.tls.ca');
    // Beyond loopback TLS alone is not enough: a token or a required client certificate is.
    await expect(Grapevine.start({ bind: '127.0.0.1:0', http: { bind: '0.0.0.0:0', tls: { cert: pem('server.pem'), key: pem('server.key') } } })).rejects.toMatchObject({ option: 'http.bind' });
  });
});
