/**
 * A real Prometheus (Debian's, whose Consul discovery is compiled out, so http_sd it is)
 * discovers every registered instance through /v1/prometheus/sd and scrapes grapevine's
 * /metrics. Prometheus runs on a free loopback port with a temporary directory and is stopped
 * by its PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Grapevine } from '../src/index.js';
import { available, freePort, runs, stopProgram } from './needs.js';
import { until } from './until.js';

const PROMETHEUS = '/usr/bin/prometheus';
const hasPrometheus = available('prometheus', runs(PROMETHEUS, ['--version']), 'apt-get install -y prometheus');

let a: Grapevine;
let b: Grapevine;
let prometheus: ChildProcess | undefined;
let dir = '';
let promAddr = '';

async function api(path: string): Promise<unknown> {
  const res = await fetch(`http://${promAddr}${path}`);
  return ((await res.json()) as { data: unknown }).data;
}

interface Target { labels: Record<string, string>; health: string; scrapePool: string }

describe.skipIf(!hasPrometheus)('Prometheus discovers and scrapes', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'prom-a', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    b = await Grapevine.start({ name: 'prom-b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    const http = a.listening('http') as string;
    // An instance worth scraping: the API's own /metrics, registered from the other member.
    await b.register({ name: 'grapevine-api', address: '127.0.0.1', port: Number(http.split(':')[1]), tags: ['metrics'] });
    await until(() => a.lookup('grapevine-api').length === 1);
    dir = mkdtempSync(join(tmpdir(), 'grapevine-prom-'));
    writeFileSync(join(dir, 'prometheus.yml'), `
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: grapevine
    static_configs: [{ targets: ['${http}'] }]
  - job_name: services
    http_sd_configs: [{ url: 'http://${http}/v1/prometheus/sd', refresh_interval: 1s }]
    relabel_configs:
      - { source_labels: [__meta_grapevine_service], target_label: service }
      - { source_labels: [__meta_grapevine_node], target_label: node }
`);
    promAddr = `127.0.0.1:${await freePort()}`;
    prometheus = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${promAddr}`], { stdio: 'ignore' });
    await until(async () => (await fetch(`http://${promAddr}/-/ready`).catch(() => undefined))?.ok === true, 30_000);
  }, 60_000);

  afterAll(async () => {
    await stopProgram(prometheus);
    await Promise.all([a?.close(), b?.close()]);
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('targets from http_sd are up, and grapevine_* series are queryable', async () => {
    let targets: Target[] = [];
    await until(async () => {
      targets = ((await api('/api/v1/targets')) as { activeTargets: Target[] }).activeTargets;
      return targets.length === 2 && targets.every((t) => t.health === 'up');
    }, 30_000);
    expect(targets.find((t) => t.scrapePool === 'services')?.labels).toMatchObject({ service: 'grapevine-api', node: 'prom-b' });
    let value = '';
    await until(async () => {
      const result = ((await api('/api/v1/query?query=grapevine_members%7Bstate%3D%22alive%22%2Cjob%3D%22grapevine%22%7D')) as { result: { value: [number, string] }[] }).result;
      value = result[0]?.value[1] ?? '';
      return value !== '';
    }, 30_000);
    expect(value).toBe('2');
  }, 90_000);
});
