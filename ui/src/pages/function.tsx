// One function: its configuration and live state, deploy / delete, the invoke form with the
// answer and its waterfall, and the invocation history.

import { useState } from 'preact/hooks';
import { errorOfBody, type ApiError } from '../api.js';
import { ErrorBox } from '../components/error-box.js';
import { DeleteButton, DeployButton, useAction } from '../components/function-actions.js';
import { History } from '../components/history.js';
import { InvocationView } from '../components/invocation-view.js';
import { InvokeForm } from '../components/invoke-form.js';
import { JsonView } from '../components/json-view.js';
import { Lifecycle } from '../components/lifecycle.js';
import { StateBadge } from '../components/state-badge.js';
import { usePoll } from '../poll.js';
import { href } from '../router.js';
import type { FunctionT, InvocationT } from '../types.js';

export function FunctionPage({ name }: { name: string }) {
  const [deleted, setDeleted] = useState(false);
  const path = `/functions/${encodeURIComponent(name)}`;
  const fn = usePoll<FunctionT>(deleted ? null : path);
  const history = usePoll<InvocationT[]>(deleted ? null : `${path}/invocations?limit=50`, 2000);
  const [shown, setShown] = useState<InvocationT>();
  const [invokeError, setInvokeError] = useState<ApiError>();

  const { act, error: actionError, dismiss } = useAction(fn.refresh);

  if (deleted)
    return (
      <section>
        <h2>{name}</h2>
        <p>
          Deleted. <a href={href({ page: 'functions' })}>Back to functions</a>
        </p>
      </section>
    );

  const f = fn.data;
  return (
    <section>
      <h2>
        {name} {f && <StateBadge state={f.state} />}
      </h2>
      <ErrorBox error={fn.error} />
      {f && (
        <>
          <Lifecycle fn={f} />
          {f.error && (
            <>
              <h4>Last deploy error</h4>
              <ErrorBox error={errorOfBody(f.error)} />
            </>
          )}
          <dl class="facts">
            <dt>runtime</dt>
            <dd>{f.runtime}</dd>
            <dt>handler</dt>
            <dd>{f.handler}</dd>
            <dt>memory</dt>
            <dd>{f.memoryMiB} MiB</dd>
            <dt>vCPUs</dt>
            <dd>{f.vcpus}</dd>
            {f.runtime === 'micro' && (
              <>
                <dt>state</dt>
                <dd>{f.stateMiB} MiB</dd>
              </>
            )}
            <dt>default mode</dt>
            <dd>{f.defaultMode}</dd>
            <dt>timeout</dt>
            <dd>{f.timeoutMs} ms</dd>
            <dt>ready snapshot</dt>
            <dd>
              {f.readySnapshot ? (
                <a href={href({ page: 'snapshots', id: f.readySnapshot })}>{f.readySnapshot}</a>
              ) : (
                '–'
              )}
            </dd>
          </dl>
          {f.recordParams && (
            <details>
              <summary>record params</summary>
              <JsonView value={f.recordParams} />
            </details>
          )}
          <div class="row actions">
            <DeployButton fn={f} act={act} />
            <DeleteButton fn={f} act={act} onDeleted={() => setDeleted(true)} />
          </div>
          <ErrorBox error={actionError} onDismiss={dismiss} />
          <InvokeForm
            fn={f}
            onAnswer={({ invocation, error }) => {
              setInvokeError(error);
              setShown(invocation ?? shown);
              history.refresh();
            }}
          />
          <ErrorBox error={invokeError} onDismiss={() => setInvokeError(undefined)} />
          {shown && <InvocationView inv={shown} key={shown.id} />}
        </>
      )}
      <h3>History</h3>
      <ErrorBox error={history.error} />
      {history.data && (
        <History invocations={history.data} selected={shown?.id} onSelect={setShown} />
      )}
    </section>
  );
}
