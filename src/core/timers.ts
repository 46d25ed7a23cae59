/**
 * Timers as data: a binary min-heap of deadlines. The core schedules and cancels entries; the
 * driver asks for the earliest deadline (one setTimeout in the runtime, a clock jump in the
 * simulator) and hands control back through handleTimeout(now). Cancelled entries are removed
 * lazily when they reach the top, so cancel is O(1).
 */
export interface Timer<K> {
  readonly deadlineMs: number;
  readonly kind: K;
  cancelled: boolean;
  /** Insertion order: equal deadlines fire first-scheduled first, which keeps runs deterministic. */
  readonly order: number;
}

export class TimerHeap<K> {
  private heap: Timer<K>[] = [];
  private nextOrder = 0;

  schedule(deadlineMs: number, kind: K): Timer<K> {
    const timer: Timer<K> = { deadlineMs, kind, cancelled: false, order: this.nextOrder++ };
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(timer, heap[parent] as Timer<K>)) break;
      heap[i] = heap[parent] as Timer<K>;
      i = parent;
    }
    heap[i] = timer;
    return timer;
  }

  /** Earliest live deadline, or undefined when nothing is scheduled. */
  peekDeadlineMs(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.deadlineMs;
  }

  /** Removes and returns the earliest live timer due at or before `nowMs`. */
  popDue(nowMs: number): Timer<K> | undefined {
    this.dropCancelled();
    const top = this.heap[0];
    if (top === undefined || top.deadlineMs > nowMs) return undefined;
    this.removeTop();
    return top;
  }

  /** Live and cancelled entries still held (cancelled ones leave when they reach the top). */
  get size(): number {
    return this.heap.length;
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && (this.heap[0] as Timer<K>).cancelled) this.removeTop();
  }

  private removeTop(): void {
    const heap = this.heap;
    const last = heap.pop() as Timer<K>;
    if (heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(heap[right] as Timer<K>, heap[left] as Timer<K>) ? right : left;
      if (!before(heap[child] as Timer<K>, last)) break;
      heap[i] = heap[child] as Timer<K>;
      i = child;
    }
    heap[i] = last;
  }
}

function before<K>(a: Timer<K>, b: Timer<K>): boolean {
  return a.deadlineMs < b.deadlineMs || (a.deadlineMs === b.deadlineMs && a.order < b.order);
}
