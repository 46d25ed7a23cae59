/**
 * Lifeguard local health awareness (memberlist awareness.go). The score counts recent evidence
 * that this node, not its peers, is the problem: probes that failed without the nacks that would
 * show the network path was fine, and suspicions of itself it had to refute. Timeouts and the
 * probe interval are multiplied by (score + 1), so a stalled or starved node slows down instead
 * of accusing healthy peers. Successful direct probes bring the score back down.
 */
export class Awareness {
  private scoreValue = 0;

  constructor(private readonly max: number) {}

  get score(): number {
    return this.scoreValue;
  }

  /** Applies `delta`, clamped to [0, max - 1]. Returns true if the score changed. */
  apply(delta: number): boolean {
    const next = Math.min(this.max - 1, Math.max(0, this.scoreValue + delta));
    if (next === this.scoreValue) return false;
    this.scoreValue = next;
    return true;
  }

  scale(ms: number): number {
    return ms * (this.scoreValue + 1);
  }
}
