// The object store the guest reaches through the agent channel (`storage.get` / `storage.put`,
// relayed by the host). The daemon backs it with Redis (daemon/runtime/index.ts); MemoryStorage
// serves tests and single-process use. Values larger than a frame move in ranges.

export interface AgentStorage {
  /** The value stored under `key`, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, value: Buffer): Promise<void>;
  /** Up to `length` bytes from `offset`, and the value's total size; undefined: no such key. */
  getRange(
    key: string,
    offset: number,
    length: number,
  ): Promise<{ data: Buffer; size: number } | undefined>;
  /** Writes `data` at `offset`; offset 0 replaces the whole value. */
  putRange(key: string, offset: number, data: Buffer): Promise<void>;
}

export class MemoryStorage implements AgentStorage {
  readonly map = new Map<string, Buffer>();

  constructor(entries: Iterable<[string, Buffer]> = []) {
    for (const [k, v] of entries) this.map.set(k, Buffer.from(v));
  }

  get(key: string): Promise<Buffer | undefined> {
    return Promise.resolve(this.map.get(key));
  }

  put(key: string, value: Buffer): Promise<void> {
    // Copy: the caller's buffer may be reused.
    this.map.set(key, Buffer.from(value));
    return Promise.resolve();
  }

  getRange(key: string, offset: number, length: number) {
    const v = this.map.get(key);
    if (!v) return Promise.resolve(undefined);
    return Promise.resolve({
      data: Buffer.from(v.subarray(offset, offset + length)),
      size: v.length,
    });
  }

  putRange(key: string, offset: number, data: Buffer): Promise<void> {
    const old = offset === 0 ? Buffer.alloc(0) : (this.map.get(key) ?? Buffer.alloc(0));
    const next = Buffer.alloc(Math.max(old.length, offset + data.length));
    old.copy(next);
    data.copy(next, offset);
    this.map.set(key, next);
    return Promise.resolve();
  }
}
