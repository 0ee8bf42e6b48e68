// Live data by polling: GET a path now and again every interval (the next request starts only
// after the previous one answered, so a slow daemon is never flooded). refresh() asks at once,
// e.g. after the page changed something.

import { useEffect, useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from './api.js';

export const POLL_MS = 1000;

export interface Poll<T> {
  data: T | undefined;
  error: ApiError | undefined;
  refresh(): void;
}

interface Answer<T> {
  path: string | null;
  data?: T;
  error?: ApiError;
}

export function usePoll<T>(path: string | null, intervalMs = POLL_MS): Poll<T> {
  const [answer, setAnswer] = useState<Answer<T>>({ path });
  const [kick, setKick] = useState(0);
  useEffect(() => {
    if (path === null) return;
    // Requests are not aborted when the view goes away (an aborted request would count as a
    // failed one in the browser tests); their answers are dropped instead.
    let live = true;
    let timer: number | undefined;
    const run = async (): Promise<void> => {
      try {
        const data = await api<T>('GET', path);
        if (live) setAnswer({ path, data });
      } catch (e) {
        // Keep the last data beside the error: a transient failure does not blank the view.
        if (live)
          setAnswer((a) => ({
            path,
            data: a.path === path ? a.data : undefined,
            error: asApiError(e),
          }));
      }
      if (live) timer = window.setTimeout(() => void run(), intervalMs);
    };
    void run();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [path, intervalMs, kick]);
  const current = answer.path === path;
  return {
    data: current ? answer.data : undefined,
    error: current ? answer.error : undefined,
    refresh: () => setKick((k) => k + 1),
  };
}
