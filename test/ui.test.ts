/// <reference lib="dom" />
/**
 * The status page in a real browser (Debian's chromium, driven by puppeteer-core): it lists
 * the members, and a SIGKILLed member turns suspect, then dead, in place, without a reload.
 * Screenshots go to test-artifacts/. Everything is on 127.0.0.1 and stopped afterwards.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AgentProcess } from '../src/cli/processes.js';
import { Grapevine } from '../src/index.js';
import { available, runs } from './needs.js';
import { until } from './until.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = available('chromium', runs(CHROMIUM, ['--version']), 'apt-get install -y chromium');
const ARTIFACTS = join(import.meta.dirname, '..', 'test-artifacts');

let a: Grapevine;
let b: Grapevine;
let victim: AgentProcess;
let browser: Browser | undefined;

describe.skipIf(!hasChromium)('status page in headless Chromium', () => {
  beforeAll(async () => {
    a = await Grapevine.start({ name: 'page-a', bind: '127.0.0.1:0', profile: 'local', http: '127.0.0.1:0' });
    b = await Grapevine.start({ name: 'page-b', bind: '127.0.0.1:0', profile: 'local', seeds: [a.address] });
    victim = new AgentProcess({ name: 'page-victim', bind: '127.0.0.1:0', seeds: [a.address], profile: 'local', services: [{ name: 'web', port: 8080 }] });
    await victim.ready();
    await until(() => a.members().filter((m) => m.state === 'alive').length === 3 && a.lookup('web').length === 1, 20_000);
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    mkdirSync(ARTIFACTS, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await victim?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  test('lists every member and service, and shows a SIGKILLed member go dead in place', async () => {
    const page = await (browser as Browser).newPage();
    await page.setViewport({ width: 390, height: 844 }); // a phone
    await page.goto(`http://${a.listening('http') as string}/ui/`);
    const stateOf = (name: string): Promise<string | null> => page.evaluate((n) => document.querySelector(`tr[data-member="${n}"] .state`)?.textContent ?? null, name);
    await page.waitForFunction(() => document.querySelectorAll('#members tr').length === 3, { timeout: 10_000 });
    expect(await stateOf('page-victim')).toBe('alive');
    expect(await page.$eval('#services', (e) => e.textContent ?? '')).toContain('page-victim');
    expect(await page.$eval('#live', (e) => e.textContent)).toBe('live');
    // Readable at phone width: nothing pushes the page sideways (wide tables scroll inside their card).
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-before.png') });

    const loads = await page.evaluate(() => performance.getEntriesByType('navigation').length);
    victim.signal('SIGKILL');
    await page.waitForFunction(() => document.querySelector('tr[data-member="page-victim"] .state')?.textContent === 'dead', { timeout: 30_000 });
    expect(await page.evaluate(() => performance.getEntriesByType('navigation').length)).toBe(loads); // no reload
    expect(await page.$eval('#events', (e) => e.textContent ?? '')).toMatch(/page-victim (suspect|dead)/);
    expect(await page.$eval('#services', (e) => e.textContent ?? '')).not.toContain('page-victim');
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-after.png') });
  }, 60_000);
});
