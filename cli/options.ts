// Option parsers that turn bad CLI input into clear errors (commander prints them with usage).

import { InvalidArgumentError } from 'commander';

export function intOption(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be an integer in ${min}..${max}`);
    }
    return n;
  };
}

/** Durations like 500ms, 30s, 2m (a bare number means seconds). */
export function durationOption(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (!m) throw new InvalidArgumentError('must be a duration such as 500ms, 30s or 2m');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
}
