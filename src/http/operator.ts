/**
 * /v1/operator/keyring in Consul's shapes: list, install, use and remove gossip keys across the
 * cluster. Every member's record names the keys its keyring holds by fingerprint, so a listing
 * counts them from local memory, and a change (spread by gossip, `gv.changeKeyring`) is answered
 * once every live member's record shows it, issued again every second until then. A key is made
 * primary only once every live member holds it, and removed only while no member seals with it:
 * a rotation never leaves a member unable to read its peers. There is one ring (no WAN pool).
 */
import { type Grapevine, keyFingerprint } from '../runtime/index.js';
import { DATACENTER, liveMembers } from './consul.js';
import { GoObject } from './decode.js';
import { type Api, HttpError, type Reply, type Request } from './routes.js';

/** How long a change may take to show on every live member before the answer says which did not. */
export const KEYRING_CHANGE_WAIT_MS = 10_000;
const REISSUE_MS = 1_000;
const POLL_MS = 50;

export function operatorEndpoints(api: Api): void {
  const { gv } = api;
  // The listing shows the keys themselves: with no token (allowInsecure), only to this host.
  const guard = (req: Request): void => {
    if (!api.tokenRequired && !isLoopback(req.remote)) throw new HttpError(403, 'Permission denied: keyring operations need http.token, or a client on this host');
  };
  api.route('GET', '/v1/operator/keyring', (req) => {
    guard(req);
    return { body: [listing(gv)] };
  }, { write: true });
  const change = (action: 'install' | 'use' | 'remove') => async (req: Request): Promise<Reply> => {
    guard(req);
    const ring = gv.keyring;
    if (ring === undefined) throw new HttpError(400, 'gossip encryption is not enabled on this member: start it with a keyring');
    const key = parseKey(await req.body());
    const fp = keyFingerprint(key);
    const members = [...liveMembers(gv).keys()];
    if (action === 'use') {
      const lacking = members.filter((m) => !gv.catalog.nodeKeys(m).includes(fp));
      if (lacking.length > 0) throw new HttpError(400, `not every member holds this key yet (install it first): ${described(lacking)}`);
    }
    if (action === 'remove') {
      if (keyFingerprint(ring.primaryKey) === fp) throw new HttpError(400, 'Removing the primary key is not allowed: use another key first');
      const sealing = members.filter((m) => gv.catalog.nodeKeys(m)[0] === fp);
      if (sealing.length > 0) throw new HttpError(400, `members still seal with this key: ${described(sealing)}`);
    }
    const done = (keys: readonly string[]): boolean => (action === 'install' ? keys.includes(fp) : action === 'use' ? keys[0] === fp : !keys.includes(fp));
    await converge(gv, done, () => gv.changeKeyring(action, key), req.signal);
    return { body: undefined };
  };
  api.route('POST', '/v1/operator/keyring', change('install'));
  api.route('PUT', '/v1/operator/keyring', change('use'));
  api.route('DELETE', '/v1/operator/keyring', change('remove'));
}

/** Consul's KeyringResponse for the one ring: each key this member holds with how many live members hold it. */
function listing(gv: Grapevine): Record<string, unknown> {
  const ring = gv.keyring;
  if (ring === undefined) throw new HttpError(400, 'gossip encryption is not enabled on this member: start it with a keyring');
  const names = new Map(ring.keys().map((k) => [keyFingerprint(k), Buffer.from(k).toString('base64')]));
  const label = (fp: string): string => names.get(fp) ?? `(not held here; fingerprint ${fp})`;
  const keys: Record<string, number> = {};
  const primary: Record<string, number> = {};
  const messages: Record<string, string> = {};
  const members = [...liveMembers(gv).keys()];
  for (const m of members) {
    const held = gv.catalog.nodeKeys(m);
    if (held.length === 0) messages[m] = 'shows no keys (a member that predates keyring listings, or one without encryption)';
    for (const fp of held) keys[label(fp)] = (keys[label(fp)] ?? 0) + 1;
    if (held[0] !== undefined) primary[label(held[0])] = (primary[label(held[0])] ?? 0) + 1;
  }
  return {
    WAN: false, Datacenter: DATACENTER, Segment: '', ...(Object.keys(messages).length > 0 ? { Messages: messages } : {}),
    Keys: keys, PrimaryKeys: primary, NumNodes: members.length,
  };
}

function parseKey(body: unknown): Uint8Array {
  const text = GoObject.of(body).string('Key');
  if (text === undefined || text === '') throw new HttpError(400, 'Key: missing (a base64-encoded 32-byte key)');
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32 || key.toString('base64') !== text) throw new HttpError(400, 'Key: must be a base64-encoded 32-byte key ("grapevine keygen" makes one)');
  return new Uint8Array(key);
}

/** Waits until every live member's keys satisfy `done`, re-issuing the change every second; 500 naming the laggards after the wait. */
async function converge(gv: Grapevine, done: (keys: readonly string[]) => boolean, issue: () => void, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + KEYRING_CHANGE_WAIT_MS;
  let issuedAt = -Infinity;
  for (;;) {
    const lagging = [...liveMembers(gv).keys()].filter((m) => !done(gv.catalog.nodeKeys(m)));
    if (lagging.length === 0) return;
    if (Date.now() >= deadline) throw new HttpError(500, `${lagging.length} members did not show the change within ${KEYRING_CHANGE_WAIT_MS / 1_000} s: ${described(lagging)}`);
    if (signal.aborted) throw new HttpError(499, 'the client went away');
    if (Date.now() - issuedAt >= REISSUE_MS) {
      issue();
      issuedAt = Date.now();
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function isLoopback(addr: string): boolean {
  return /^(::ffff:)?127\./.test(addr) || addr === '::1';
}

function described(names: string[]): string {
  return names.length <= 5 ? names.join(', ') : `${names.slice(0, 5).join(', ')} and ${names.length - 5} more`;
}
