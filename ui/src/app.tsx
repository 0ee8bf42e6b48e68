// The dashboard's frame: the daemon's health in the header, the navigation, and the view the
// address names, or the token form while the daemon refuses the page's calls.

import type { ApiError } from './api.js';
import { ErrorBox } from './components/error-box.js';
import { TokenForm } from './components/token-form.js';
import { duration } from './format.js';
import { useMetricsHistory } from './metrics-history.js';
import { FunctionPage } from './pages/function.js';
import { FunctionsPage } from './pages/functions.js';
import { MetricsPage } from './pages/metrics.js';
import { SnapshotsPage } from './pages/snapshots.js';
import { VmsPage } from './pages/vms.js';
import { usePoll } from './poll.js';
import { href, useRoute, type Route } from './router.js';
import type { HealthT } from './types.js';

const NAV: { label: string; route: Route; pages: Route['page'][] }[] = [
  { label: 'Functions', route: { page: 'functions' }, pages: ['functions', 'function'] },
  { label: 'Snapshots', route: { page: 'snapshots' }, pages: ['snapshots'] },
  { label: 'VMs & pool', route: { page: 'vms' }, pages: ['vms'] },
  { label: 'Metrics', route: { page: 'metrics' }, pages: ['metrics'] },
];

export function App() {
  const route = useRoute();
  const health = usePoll<HealthT>('/healthz');
  const metrics = useMetricsHistory();
  return (
    <>
      <header>
        <h1>
          <a href={href({ page: 'functions' })}>faasnap</a>
        </h1>
        <nav>
          {NAV.map((n) => (
            <a
              key={n.label}
              href={href(n.route)}
              class={n.pages.includes(route.page) ? 'active' : ''}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <HealthLine health={health.data} error={health.error} />
      </header>
      <main>
        <ErrorBox error={health.error} />
        {health.error?.code === 'UNAUTHORIZED' ? (
          <TokenForm />
        ) : (
          <View route={route} health={health.data} metrics={metrics} />
        )}
      </main>
    </>
  );
}

function View({
  route,
  health,
  metrics,
}: {
  route: Route;
  health: HealthT | undefined;
  metrics: ReturnType<typeof useMetricsHistory>;
}) {
  switch (route.page) {
    case 'function':
      return <FunctionPage name={route.name} key={route.name} />;
    case 'snapshots':
      return <SnapshotsPage id={route.id} />;
    case 'vms':
      return <VmsPage health={health} />;
    case 'metrics':
      return <MetricsPage points={metrics.points} error={metrics.error} />;
    default:
      return <FunctionsPage />;
  }
}

function HealthLine({
  health,
  error,
}: {
  health: HealthT | undefined;
  error: ApiError | undefined;
}) {
  if (error)
    return (
      <span class="health down">
        {error.code === 'DAEMON_UNREACHABLE' ? 'daemon unreachable' : error.code}
      </span>
    );
  if (!health) return <span class="health muted">connecting…</span>;
  const runtimes = Object.entries(health.runtimes)
    .map(([r, up]) => `${r}${up ? '' : ' (unavailable)'}`)
    .join(', ');
  return (
    <span class="health" aria-label="daemon health">
      v{health.version} · up {duration(health.uptimeS)} · pool {health.pool.idle}/{health.pool.size}{' '}
      idle · {health.vms} VMs · redis {health.redis} · <span title="runtimes">{runtimes}</span> ·{' '}
      <span title={health.jail.missing.join('; ') || 'what the host lacks for a jail: nothing'}>
        {health.jail.enabled ? 'VMMs jailed' : 'VMMs not jailed'}
      </span>
    </span>
  );
}
