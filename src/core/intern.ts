/**
 * One shared copy of each member name and address. Every node's table names every member, so a
 * simulator holding 10,000 cores would otherwise keep 10,000 copies of each string; in the
 * runtime it costs one map lookup per new member. Bounded: the table starts over when full.
 */
const table = new Map<string, string>();
const ENTRIES_MAX = 1_000_000;

export function intern(s: string): string {
  const known = table.get(s);
  if (known !== undefined) return known;
  if (table.size >= ENTRIES_MAX) table.clear();
  table.set(s, s);
  return s;
}
