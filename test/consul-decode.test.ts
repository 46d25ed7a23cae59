/**
 * Consul registration bodies read with Go's encoding/json rules (src/http/decode.ts): names match
 * case-insensitively, snake_case aliases too, unknown fields are ignored, a wrong type is an error
 * naming the field's path, and every Consul field is honoured or refused by name.
 */
import { fc, test as prop } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import { GrapevineError } from '../src/index.js';
import { parseRegistration } from '../src/http/index.js';

const quiet = (): void => undefined;
const parse = (body: unknown): ReturnType<typeof parseRegistration> => parseRegistration(body, quiet);

describe('registration bodies, as Go decodes them', () => {
  test('field names in any case and snake_case; the last of two spellings wins; unknown fields ignored', () => {
    const { registration } = parse({
      name: 'py', id: 'py-1', PORT: 7000, tags: ['a'], meta: { Zone: 'eu' }, tagged_addresses: { wan: { address: '192.0.2.1', port: 80 } },
      check: { ttl: '10s', notes: 'heartbeat', status: 'passing' }, SomethingNew: { nested: true }, Name: 'later',
    });
    expect(registration).toEqual({
      name: 'later', id: 'py-1', port: 7000, tags: ['a'], meta: { Zone: 'eu' }, taggedAddresses: { wan: { address: '192.0.2.1', port: 80 } },
      checks: [{ notes: 'heartbeat', status: 'passing', ttlMs: 10_000 }],
    });
  });

  test('every check option Consul has is honoured: several checks, names, notes, status, HTTP method, body, headers, TLS, streaks, deregister', () => {
    const { registration, deregisterAfterMs } = parse({
      Name: 'api', Port: 9090, Weights: { Passing: 10, Warning: 2 },
      Checks: [
        {
          CheckID: 'api-http', Name: 'api health', HTTP: 'https://127.0.0.1:9090/health', Method: 'POST', Body: '{"deep":true}', Header: { 'X-Probe': ['a', 'b'] },
          TLSSkipVerify: true, DisableRedirects: false, Interval: '5s', Timeout: 1_500_000_000, SuccessBeforePassing: 2, FailuresBeforeCritical: 3, DeregisterCriticalServiceAfter: '10m',
        },
        { ID: 'api-tcp', TCP: '127.0.0.1:9091', Interval: '1m30s', DeregisterCriticalServiceAfter: '2m' },
      ],
    });
    expect(registration).toMatchObject({ weight: 10, warningWeight: 2 });
    expect(registration.checks).toEqual([
      {
        id: 'api-http', name: 'api health', http: 'https://127.0.0.1:9090/health', method: 'POST', body: '{"deep":true}', headers: { 'X-Probe': 'a, b' },
        tlsSkipVerify: true, intervalMs: 5_000, timeoutMs: 1_500, rise: 2, fall: 3, redirects: 10,
      },
      { id: 'api-tcp', tcp: '127.0.0.1:9091', intervalMs: 90_000, rise: 1, fall: 1 },
    ]);
    expect(deregisterAfterMs).toBe(120_000);
  });

  test('Go zero values count as not given: null, "", 0, false, empty objects', () => {
    const { registration } = parse({ Name: 'z', ID: '', Address: '', Tags: null, Check: {}, Checks: null, EnableTagOverride: false, Connect: {}, Kind: '', Weights: { Passing: 0, Warning: 1 } });
    expect(registration).toEqual({ name: 'z', id: 'z', port: 0, warningWeight: 1 });
  });

  test.each([
    [{ Name: 'x', Port: '80' }, 'Port', 'must be an integer'],
    [{ Name: 'x', Port: 80.5 }, 'Port', 'must be an integer'],
    [{ Name: 'x', Port: 70_000 }, 'Port', 'must be an integer in 0..65535'],
    [{ Name: 'x', Tags: 'a,b' }, 'Tags', 'must be an array of strings'],
    [{ Name: 'x', Meta: { a: 1 } }, 'Meta', 'must be an object of strings'],
    [{ Name: 'x', Checks: [{ TTL: '5s' }, { HTTP: 'http://127.0.0.1/', Interval: true }] }, 'Checks[1].Interval', 'not a duration'],
    [{ Name: 'x', Check: { HTTP: 'http://127.0.0.1/' } }, 'Check.Interval', 'required'],
    [{ Name: 'x', Check: { Args: ['/bin/true'], Interval: '5s' } }, 'Check.Args', 'not supported'],
    [{ Name: 'x', Check: { TTL: '5s', Status: 'fine' } }, 'Check.Status', 'passing, warning or critical'],
    [{ Name: 'x', Check: { TTL: '5s', OutputMaxSize: 100 } }, 'Check.OutputMaxSize', 'kept to 4096 bytes'],
    [{ Name: 'x', EnableTagOverride: true }, 'EnableTagOverride', 'no servers'],
    [{ Name: 'x', Kind: 'connect-proxy' }, 'Kind', 'not supported'],
    [{ Name: 'x', Connect: { Native: true } }, 'Connect', 'not supported'],
    [{ Name: 'x', Namespace: 'team-a' }, 'Namespace', 'only "default"'],
    [{ Name: 'x', TaggedAddresses: { wan: { Address: 1 } } }, 'TaggedAddresses.wan.Address', 'must be a string'],
    [{ Port: 1 }, 'Name', 'missing service name'],
    [[1, 2], 'body', 'must be a JSON object'],
  ])('%j is refused, naming %s', (body, field, reason) => {
    expect(() => parse(body)).toThrowError(expect.objectContaining({ option: field, message: expect.stringContaining(reason) }));
  });

  prop.prop([fc.jsonValue({ maxDepth: 4 })], { numRuns: 300 })('any JSON body is a registration or a typed error, never another exception', (body) => {
    try {
      parse(body);
    } catch (e) {
      expect(e).toBeInstanceOf(GrapevineError);
    }
  });
});
