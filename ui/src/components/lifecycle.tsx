// The deploy chain's states with the function's current one marked: how far a deploy got.

import type { FunctionT } from '../types.js';

const CHAIN = ['registered', 'booting', 'warm', 'snapshotted', 'recorded', 'ready'];

export function Lifecycle({ fn }: { fn: FunctionT }) {
  const at = CHAIN.indexOf(fn.state);
  return (
    <ol class="lifecycle" aria-label="lifecycle">
      {CHAIN.map((s, i) => (
        <li key={s} class={i < at ? 'done' : i === at ? 'current' : ''}>
          {s}
        </li>
      ))}
      {fn.state === 'failed' && <li class="current failed">failed</li>}
    </ol>
  );
}
