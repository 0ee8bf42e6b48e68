// A lifecycle state (function, snapshot, VM or invocation) as a coloured label.

const TONE: Record<string, string> = {
  ready: 'good',
  succeeded: 'good',
  complete: 'good',
  idle: 'good',
  failed: 'bad',
  registered: 'plain',
  paused: 'plain',
};

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge ${TONE[state] ?? 'busy'}`}>{state}</span>;
}
