// Deploy and delete buttons of a function. Delete asks again with a second click (no browser
// dialog), since it also deletes the function's snapshots.

import { useEffect, useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from '../api.js';
import type { FunctionT } from '../types.js';

/** States in which a deploy is running (the daemon refuses deploy and delete then). */
export const DEPLOYING = ['booting', 'warm', 'snapshotted', 'recorded'];

type Act = (what: () => Promise<unknown>) => Promise<void>;

/**
 * What the buttons run through: the action's error (shown by the page until dismissed or the
 * next action) and a refresh of the page's data afterwards, whether it worked or not.
 */
export function useAction(refresh: () => void): {
  act: Act;
  error: ApiError | undefined;
  dismiss: () => void;
} {
  const [error, setError] = useState<ApiError>();
  const act: Act = async (what) => {
    setError(undefined);
    try {
      await what();
    } catch (e) {
      setError(asApiError(e));
    }
    refresh();
  };
  return { act, error, dismiss: () => setError(undefined) };
}

export function DeployButton({ fn, act }: { fn: FunctionT; act: Act }) {
  const busy = DEPLOYING.includes(fn.state);
  return (
    <button
      type="button"
      disabled={busy}
      onClick={() =>
        void act(() => api('POST', `/functions/${encodeURIComponent(fn.name)}/deploy`))
      }
    >
      {fn.state === 'ready' || fn.state === 'failed' ? 'Deploy again' : 'Deploy'}
    </button>
  );
}

export function DeleteButton({
  fn,
  act,
  onDeleted,
}: {
  fn: FunctionT;
  act: Act;
  onDeleted?: () => void;
}) {
  const [asking, setAsking] = useState(false);
  useEffect(() => {
    if (!asking) return;
    const t = window.setTimeout(() => setAsking(false), 4000);
    return () => window.clearTimeout(t);
  }, [asking]);
  return (
    <button
      type="button"
      class={asking ? 'danger' : ''}
      disabled={DEPLOYING.includes(fn.state)}
      onClick={() => {
        if (!asking) return setAsking(true);
        setAsking(false);
        void act(async () => {
          await api('DELETE', `/functions/${encodeURIComponent(fn.name)}`);
          onDeleted?.();
        });
      }}
    >
      {asking ? 'Really delete?' : 'Delete'}
    </button>
  );
}
