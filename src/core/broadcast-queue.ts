/**
 * The transmit-limited broadcast queue (memberlist queue.go). Each state change is queued once
 * per member name, pre-encoded; a newer change about the same member replaces the older one.
 * Every outgoing packet takes what fits from the queue, least-sent first and, among equally
 * sent ones, newest first, and each item retires after `limit` sends (about λ·log n).
 *
 * Items live in buckets by send count; a bucket is an array used newest-at-the-end with holes
 * left by items that moved or were replaced, compacted when holes dominate. So taking is
 * proportional to the items looked at, not the queue length.
 */
interface Item {
  key: string;
  bytes: Uint8Array;
  transmits: number;
  slot: number;
  onRetire: (() => void) | undefined;
}

export class BroadcastQueue {
  private readonly byKey = new Map<string, Item>();
  private readonly buckets: (Item | undefined)[][] = [];
  private readonly holes: number[] = [];

  /** Queues `bytes` under `key`, replacing any pending item for the same key (its onRetire runs). */
  enqueue(key: string, bytes: Uint8Array, onRetire?: () => void): void {
    const old = this.byKey.get(key);
    if (old !== undefined) this.retire(old);
    const item: Item = { key, bytes, transmits: 0, slot: 0, onRetire };
    this.byKey.set(key, item);
    this.place(item);
  }

  /** Drops any pending item for `key` without running its onRetire. */
  remove(key: string): void {
    const item = this.byKey.get(key);
    if (item === undefined) return;
    item.onRetire = undefined;
    this.retire(item);
  }

  get size(): number {
    return this.byKey.size;
  }

  /**
   * Appends items whose sizes fit in `budgetBytes` to `out`, counting a send for each and
   * retiring those that reach `limit` sends. Returns the bytes taken.
   */
  take(budgetBytes: number, limit: number, out: Uint8Array[]): number {
    let used = 0;
    const moved: Item[] = [];
    for (let t = 0; t < this.buckets.length && budgetBytes - used > 0; t++) {
      const bucket = this.buckets[t] as (Item | undefined)[];
      for (let i = bucket.length - 1; i >= 0; i--) {
        const item = bucket[i];
        if (item === undefined) continue;
        if (item.transmits >= limit) {
          this.drop(item); // the limit fell as the cluster shrank
          continue;
        }
        if (item.bytes.length > budgetBytes - used) continue;
        out.push(item.bytes);
        used += item.bytes.length;
        this.vacate(item);
        item.transmits++;
        if (item.transmits >= limit) {
          this.byKey.delete(item.key);
          item.onRetire?.();
        } else {
          moved.push(item);
        }
        if (budgetBytes - used < MIN_MESSAGE_BYTES) break;
      }
      this.compact(t);
    }
    for (const item of moved) this.place(item);
    return used;
  }

  private place(item: Item): void {
    while (this.buckets.length <= item.transmits) {
      this.buckets.push([]);
      this.holes.push(0);
    }
    const bucket = this.buckets[item.transmits] as (Item | undefined)[];
    item.slot = bucket.length;
    bucket.push(item);
  }

  private vacate(item: Item): void {
    const bucket = this.buckets[item.transmits] as (Item | undefined)[];
    bucket[item.slot] = undefined;
    this.holes[item.transmits] = (this.holes[item.transmits] as number) + 1;
  }

  private retire(item: Item): void {
    this.drop(item);
    this.compact(item.transmits);
  }

  private drop(item: Item): void {
    this.vacate(item);
    this.byKey.delete(item.key);
    item.onRetire?.();
  }

  private compact(t: number): void {
    const bucket = this.buckets[t] as (Item | undefined)[];
    while (bucket.length > 0 && bucket[bucket.length - 1] === undefined) {
      bucket.pop();
      this.holes[t] = (this.holes[t] as number) - 1;
    }
    const holes = this.holes[t] as number;
    if (holes < 32 || holes * 2 < bucket.length) return;
    let w = 0;
    for (let r = 0; r < bucket.length; r++) {
      const item = bucket[r];
      if (item === undefined) continue;
      item.slot = w;
      bucket[w++] = item;
    }
    bucket.length = w;
    this.holes[t] = 0;
  }
}

/** No encoded message is smaller than this; below it a packet is full. */
const MIN_MESSAGE_BYTES = 4;
