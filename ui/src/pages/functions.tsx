// Functions: every registered function with its live lifecycle state, the register form, and
// deploy / delete.

import { ErrorBox } from '../components/error-box.js';
import { RegisterForm } from '../components/register-form.js';
import { StateBadge } from '../components/state-badge.js';
import { usePoll } from '../poll.js';
import { href } from '../router.js';
import type { FunctionT } from '../types.js';
import { DeleteButton, DeployButton, useAction } from '../components/function-actions.js';

export function FunctionsPage() {
  const fns = usePoll<FunctionT[]>('/functions');

  const { act, error: actionError, dismiss } = useAction(fns.refresh);

  return (
    <section>
      <h2>Functions</h2>
      <ErrorBox error={fns.error} />
      <ErrorBox error={actionError} onDismiss={dismiss} />
      {fns.data && fns.data.length === 0 && <p class="muted">No functions yet: register one.</p>}
      {fns.data && fns.data.length > 0 && (
        <table class="list" aria-label="functions">
          <thead>
            <tr>
              <th>name</th>
              <th>state</th>
              <th>runtime</th>
              <th>handler</th>
              <th class="num">memory</th>
              <th>default mode</th>
              <th>ready snapshot</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {fns.data.map((f) => (
              <tr key={f.name} data-function={f.name}>
                <td>
                  <a href={href({ page: 'function', name: f.name })}>{f.name}</a>
                </td>
                <td>
                  <StateBadge state={f.state} />
                  {f.error && (
                    <span class="error-code inline" title={f.error.message}>
                      {f.error.code}
                    </span>
                  )}
                </td>
                <td>{f.runtime}</td>
                <td>{f.handler}</td>
                <td class="num">{f.memoryMiB} MiB</td>
                <td>{f.defaultMode}</td>
                <td>
                  {f.readySnapshot ? (
                    <a href={href({ page: 'snapshots', id: f.readySnapshot })}>{f.readySnapshot}</a>
                  ) : (
                    '–'
                  )}
                </td>
                <td class="actions">
                  <DeployButton fn={f} act={act} />
                  <DeleteButton fn={f} act={act} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <RegisterForm onRegistered={fns.refresh} />
    </section>
  );
}
