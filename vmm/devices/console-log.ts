// The guest's console output as the host sees it: a bounded byte ring with listeners and
// waiters. The 8250 UART (legacy/serial.ts) writes each transmitted byte into it through its
// output sink; `vm.console` is this log.

import { FaasnapError } from '../../common/errors.js';

export const DEFAULT_LOG_CAPACITY = 1 << 20;

/** Output is handed to listeners at the latest when this much is pending (see ConsoleLog). */
const MAX_PENDING_OUTPUT = 64 << 10;
/** A regex match may start at most this far before the output that completes it. */
export const WAIT_REGEX_LOOKBACK = 64 << 10;

export type OutputListener = (chunk: Uint8Array) => void;

interface Waiter {
  readonly matcher: (from: number) => string | undefined;
  /** Absolute log position from which the next scan starts. */
  scanFrom: number;
  readonly lookback: number;
  resolve(match: string): void;
}

/**
 * The guest's console output: a byte ring of fixed capacity. When full the oldest bytes go and
 * `droppedBytes` counts them, so a guest flooding the console costs the host no more memory.
 * Listeners get the output in chunks, batched per event-loop turn (or every 64 KiB).
 */
export class ConsoleLog {
  readonly capacity: number;
  private readonly ring: Uint8Array;
  private head = 0; // ring index of the oldest byte
  private length = 0;
  /** Bytes ever written; the log holds absolute positions [total - length, total). */
  private total = 0;
  private dropped = 0;
  private delivered = 0;
  private readonly listeners = new Set<OutputListener>();
  private readonly waiters = new Set<Waiter>();
  private scheduled: ReturnType<typeof setImmediate> | undefined;
  /** Listener exceptions swallowed so far (a broken consumer must not break the device). */
  listenerErrors = 0;

  constructor(capacity = DEFAULT_LOG_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new FaasnapError('INVALID_VM_CONFIG', `console log capacity ${capacity}`);
    }
    this.capacity = capacity;
    this.ring = new Uint8Array(capacity);
  }

  get droppedBytes(): number {
    return this.dropped;
  }

  /** Bytes currently held. */
  get size(): number {
    return this.length;
  }

  /** Bytes written since creation, including dropped ones. */
  get totalBytes(): number {
    return this.total;
  }

  appendByte(b: number): void {
    if (this.length === this.capacity) {
      this.head = (this.head + 1) % this.capacity;
      this.length--;
      this.dropped++;
    }
    this.ring[(this.head + this.length) % this.capacity] = b;
    this.length++;
    this.total++;
    this.afterAppend();
  }

  append(data: Uint8Array): void {
    let src = data;
    if (src.length >= this.capacity) {
      // Only the newest `capacity` bytes can survive; everything else is dropped at once.
      this.dropped += this.length + src.length - this.capacity;
      this.total += src.length - this.capacity;
      this.head = 0;
      this.length = 0;
      src = src.subarray(src.length - this.capacity);
    } else {
      const overflow = this.length + src.length - this.capacity;
      if (overflow > 0) {
        this.head = (this.head + overflow) % this.capacity;
        this.length -= overflow;
        this.dropped += overflow;
      }
    }
    const tail = (this.head + this.length) % this.capacity;
    const first = Math.min(src.length, this.capacity - tail);
    this.ring.set(src.subarray(0, first), tail);
    this.ring.set(src.subarray(first), 0);
    this.length += src.length;
    this.total += src.length;
    this.afterAppend();
  }

  /** A copy of the retained log, oldest byte first. */
  bytes(): Uint8Array {
    return this.since(this.total - this.length);
  }

  /** The retained log as UTF-8 (a sequence cut by dropping shows as U+FFFD). */
  text(): string {
    return Buffer.from(this.bytes()).toString('utf8');
  }

  /** Subscribe to output written from now on. Returns the unsubscribe function. */
  onOutput(listener: OutputListener): () => void {
    this.flush(); // earlier output belongs to the earlier subscribers only
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Resolves with the matched text once the log contains `pattern` (output already logged
   * counts); rejects with CONSOLE_WAIT_TIMEOUT after `timeoutMs`. A string is matched exactly
   * on bytes; a RegExp on the UTF-8 text, where a match may start up to WAIT_REGEX_LOOKBACK
   * bytes before the newest output (this keeps each re-check bounded on a 1 MiB log).
   */
  waitFor(pattern: RegExp | string, timeoutMs: number): Promise<string> {
    const waiter = this.makeWaiter(pattern);
    const first = waiter.matcher(this.total - this.length);
    if (first !== undefined) return Promise.resolve(first);
    waiter.scanFrom = this.total;
    return new Promise<string>((resolve, reject) => {
      const ms = Number.isNaN(timeoutMs) ? 0 : Math.max(0, timeoutMs);
      const timer =
        ms === Infinity
          ? undefined
          : setTimeout(
              () => {
                this.flush(); // output may be logged but not yet scanned
                if (!this.waiters.has(waiter)) return;
                this.waiters.delete(waiter);
                reject(
                  new FaasnapError(
                    'CONSOLE_WAIT_TIMEOUT',
                    `no ${describe(pattern)} within ${timeoutMs} ms`,
                    { pattern: String(pattern), timeoutMs },
                  ),
                );
              },
              Math.min(ms, 0x7fffffff),
            );
      waiter.resolve = (m) => {
        if (timer) clearTimeout(timer);
        resolve(m);
      };
      this.waiters.add(waiter);
    });
  }

  /** Deliver pending output to listeners and re-check waiters now. */
  flush(): void {
    if (this.scheduled) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.delivered < this.total && this.listeners.size === 0) {
      this.delivered = this.total;
    } else if (this.delivered < this.total) {
      const chunk = this.since(this.delivered);
      this.delivered = this.total;
      if (chunk.length > 0) {
        for (const l of [...this.listeners]) {
          try {
            l(chunk);
          } catch {
            this.listenerErrors++;
          }
        }
      }
    }
    for (const w of [...this.waiters]) {
      const m = w.matcher(Math.max(w.scanFrom - w.lookback, this.total - this.length));
      w.scanFrom = this.total;
      if (m !== undefined) {
        this.waiters.delete(w);
        w.resolve(m);
      }
    }
  }

  private afterAppend(): void {
    if (this.listeners.size === 0 && this.waiters.size === 0) {
      this.delivered = this.total; // nobody to deliver to: nothing is pending
      return;
    }
    if (this.total - this.delivered >= Math.min(MAX_PENDING_OUTPUT, this.capacity)) {
      this.flush(); // never let undelivered output be overwritten
    } else if (!this.scheduled) {
      this.scheduled = setImmediate(() => {
        this.scheduled = undefined;
        this.flush();
      });
    }
  }

  /** Copy of the retained bytes from absolute position `from` on. */
  private since(from: number): Uint8Array {
    const start = Math.max(from, this.total - this.length);
    const n = this.total - start;
    const out = new Uint8Array(n);
    const begin = (this.head + (start - (this.total - this.length))) % this.capacity;
    const first = Math.min(n, this.capacity - begin);
    out.set(this.ring.subarray(begin, begin + first), 0);
    out.set(this.ring.subarray(0, n - first), first);
    return out;
  }

  private makeWaiter(pattern: RegExp | string): Waiter {
    const noop = (): void => {};
    if (typeof pattern === 'string') {
      const needle = Buffer.from(pattern, 'utf8');
      return {
        matcher: (from) =>
          Buffer.from(this.since(from)).indexOf(needle) >= 0 ? pattern : undefined,
        scanFrom: 0,
        lookback: Math.max(0, needle.length - 1),
        resolve: noop,
      };
    }
    // A private copy without g/y so `lastIndex` state cannot make a match depend on history.
    const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    return {
      matcher: (from) => re.exec(Buffer.from(this.since(from)).toString('utf8'))?.[0],
      scanFrom: 0,
      lookback: WAIT_REGEX_LOOKBACK,
      resolve: noop,
    };
  }
}

function describe(p: RegExp | string): string {
  return typeof p === 'string' ? `"${p}"` : `match for ${p.toString()}`;
}
