/**
 * Lifeguard's dynamic suspicion timeout (memberlist suspicion.go). A suspicion starts at the
 * maximum timeout and shrinks toward the minimum as other members independently suspect the same
 * member at the same incarnation: with n of k wanted confirmations the timeout is
 *   max - (max - min) * log(n + 1) / log(k + 1),   never below min.
 * Many independent accusers make a real failure likely, so it is declared sooner; a lone
 * accuser (perhaps itself the sick one) has to wait the longest.
 */
export class Suspicion {
  private readonly confirmers = new Set<string>();

  /**
   * @param firstAccuser the member whose suspicion started this; it never counts as a confirmation
   * @param confirmationsWanted k; 0 means the timeout is fixed at the minimum
   */
  constructor(
    readonly startMs: number,
    private readonly firstAccuser: string,
    private readonly confirmationsWanted: number,
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {}

  /** Records an independent confirmation; returns true if it was new and counted. */
  confirm(from: string): boolean {
    if (this.confirmers.size >= this.confirmationsWanted) return false;
    if (from === this.firstAccuser || this.confirmers.has(from)) return false;
    this.confirmers.add(from);
    return true;
  }

  /** Current deadline given the confirmations so far. */
  deadlineMs(): number {
    return this.startMs + suspicionTimeoutMs(this.confirmers.size, this.confirmationsWanted, this.minMs, this.maxMs);
  }
}

export function suspicionTimeoutMs(confirmations: number, wanted: number, minMs: number, maxMs: number): number {
  if (wanted <= 0) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(wanted + 1);
  const timeout = maxMs - fraction * (maxMs - minMs);
  return Math.max(minMs, Math.floor(timeout));
}
