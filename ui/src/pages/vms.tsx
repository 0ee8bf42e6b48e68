// Live VMs (booted, warm-up, recording, invocation, warm) with their VMM processes, and the pool
// of idle VMM processes kept ready for restores.

import { useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { StateBadge } from '../components/state-badge.js';
import { time } from '../format.js';
import { usePoll } from '../poll.js';
import { href } from '../router.js';
import type { HealthT, VmT } from '../types.js';

export function VmsPage({ health }: { health: HealthT | undefined }) {
  const vms = usePoll<VmT[]>('/vms');
  const [error, setError] = useState<ApiError>();
  const stop = async (id: string) => {
    setError(undefined);
    try {
      await api('DELETE', `/vms/${encodeURIComponent(id)}`);
    } catch (e) {
      setError(asApiError(e));
    }
    vms.refresh();
  };
  return (
    <section>
      <h2>VMs and the VMM pool</h2>
      {health && (
        <div class="card pool" aria-label="VMM pool">
          <h3>VMM pool</h3>
          <p>
            <strong>{health.pool.idle}</strong> idle of <strong>{health.pool.size}</strong> kept
            ready · <strong>{health.vms}</strong> live VMs
          </p>
          <div class="pool-slots">
            {Array.from({ length: health.pool.size }, (_, i) => (
              <span key={i} class={`slot${i < health.pool.idle ? ' idle' : ''}`} />
            ))}
          </div>
        </div>
      )}
      <ErrorBox error={vms.error} />
      <ErrorBox error={error} onDismiss={() => setError(undefined)} />
      {vms.data && vms.data.length === 0 && <p class="muted">No live VMs.</p>}
      {vms.data && vms.data.length > 0 && (
        <table class="list" aria-label="live VMs">
          <thead>
            <tr>
              <th>VM</th>
              <th>function</th>
              <th>purpose</th>
              <th>state</th>
              <th class="num">VMM pid</th>
              <th class="num">memory</th>
              <th class="num">vCPUs</th>
              <th>invocation</th>
              <th>started</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {vms.data.map((vm) => (
              <tr key={vm.id}>
                <td>
                  <code>{vm.id}</code>
                </td>
                <td>
                  <a href={href({ page: 'function', name: vm.function })}>{vm.function}</a>
                </td>
                <td>{vm.purpose}</td>
                <td>
                  <StateBadge state={vm.state} />
                </td>
                <td class="num">{vm.pid ?? '–'}</td>
                <td class="num">{vm.memoryMiB} MiB</td>
                <td class="num">{vm.vcpus}</td>
                <td>{vm.invocation ? <code>{vm.invocation}</code> : '–'}</td>
                <td>{time(vm.startedAt)}</td>
                <td>
                  <button type="button" onClick={() => void stop(vm.id)}>
                    Stop
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
