// Invocation history of a function, newest first; a row opens that invocation.

import { ms, time } from '../format.js';
import type { InvocationT } from '../types.js';
import { StateBadge } from './state-badge.js';

interface Props {
  invocations: InvocationT[];
  selected: string | undefined;
  onSelect: (inv: InvocationT) => void;
}

export function History({ invocations, selected, onSelect }: Props) {
  if (invocations.length === 0) return <p class="muted">No invocations yet.</p>;
  return (
    <table class="list" aria-label="invocation history">
      <thead>
        <tr>
          <th>invocation</th>
          <th>status</th>
          <th>mode</th>
          <th class="num">duration</th>
          <th>started</th>
          <th>error</th>
        </tr>
      </thead>
      <tbody>
        {invocations.map((inv) => (
          <tr
            key={inv.id}
            class={`clickable${inv.id === selected ? ' selected' : ''}`}
            onClick={() => onSelect(inv)}
          >
            <td>
              <code>{inv.id}</code>
            </td>
            <td>
              <StateBadge state={inv.status} />
            </td>
            <td>{inv.mode}</td>
            <td class="num">{ms(inv.durationMs)}</td>
            <td>{time(inv.startedAt)}</td>
            <td>{inv.error?.code ?? ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
