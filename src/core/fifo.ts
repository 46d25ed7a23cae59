/** An array-backed FIFO with O(1) shift, for the core's outputs (transmits and events). */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) {
      if (this.items.length > 0) this.items.length = this.head = 0;
      return undefined;
    }
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    return item;
  }
}
