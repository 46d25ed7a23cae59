/**
 * A name resolver for @grpc/grpc-js (1.14+, an optional peer dependency loaded only here):
 * after `registerResolver(gv)`, a channel to `grapevine:///billing` (or `grapevine:///v2.billing`
 * for a tag) gets billing's healthy instances from the member's catalog and a new list whenever
 * they change, so grpc-js's `round_robin` and `pick_first` policies balance over live instances.
 * Instances of suspect members are left out while others remain. Subpath `grapevine-registry/grpc`.
 */
import { experimental, Metadata, status } from '@grpc/grpc-js';
import type { Instance } from '../registry/index.js';
import type { Grapevine } from '../runtime/index.js';

type Listener = experimental.ResolverListener;
type Target = experimental.GrpcUri;

/** The service and tag a target's path names ("billing", "v2.billing"). */
function parseTarget(gv: Grapevine, target: Target): { service: string; tag: string | undefined } {
  const path = target.path.replace(/^\/+/, '');
  const dot = path.indexOf('.');
  if (dot > 0 && gv.services().includes(path.slice(dot + 1))) return { service: path.slice(dot + 1), tag: path.slice(0, dot) };
  return { service: path, tag: undefined };
}

function endpoints(gv: Grapevine, service: string, tag: string | undefined): Instance[] {
  const healthy = gv.lookup(service, { healthy: true, ...(tag !== undefined ? { tags: [tag] } : {}) });
  const settled = healthy.filter((i) => !i.suspect);
  return settled.length > 0 ? settled : [...healthy];
}

/**
 * Makes grpc-js resolve `<scheme>:///<service>` through `gv`'s catalog. A later call for the
 * same scheme replaces the member used.
 */
export function registerResolver(gv: Grapevine, scheme = 'grapevine'): void {
  class GrapevineResolver implements experimental.Resolver {
    private readonly service: string;
    private readonly tag: string | undefined;
    private pending = false;
    private unsubscribe: (() => void) | undefined;

    constructor(target: Target, private readonly listener: Listener) {
      ({ service: this.service, tag: this.tag } = parseTarget(gv, target));
    }

    static getDefaultAuthority(target: Target): string {
      return target.path.replace(/^\/+/, '');
    }

    updateResolution(): void {
      if (this.unsubscribe === undefined) {
        const onService = ({ instance }: { instance: Instance }): void => {
          if (instance.service === this.service) this.report();
        };
        gv.on('service', onService);
        this.unsubscribe = () => gv.off('service', onService);
      }
      this.report();
    }

    destroy(): void {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
    }

    /** Reports the current list on a later turn (never synchronously, as grpc-js requires), once per burst of changes. */
    private report(): void {
      if (this.pending) return;
      this.pending = true;
      setImmediate(() => {
        this.pending = false;
        if (this.unsubscribe === undefined) return;
        const list = endpoints(gv, this.service, this.tag);
        if (list.length === 0) {
          this.listener({ ok: false, error: { code: status.UNAVAILABLE, details: `no healthy instance of ${JSON.stringify(this.service)}`, metadata: new Metadata() } }, {}, null, '');
          return;
        }
        this.listener({ ok: true, value: list.map((i) => ({ addresses: [{ host: i.address, port: i.port }] })) }, {}, null, '');
      });
    }
  }
  experimental.registerResolver(scheme, GrapevineResolver);
}
