// The object store the guest reaches through the agent channel (`storage.get` / `storage.put`,
// relayed by the host). The paper's functions use Redis; the daemon will plug that in behind this
// interface. MemoryStorage serves tests and single-process use.

export interface AgentStorage {
  /** The value stored under `key`, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, value: Buffer): Promise<void>;
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
}
