// Choices the API defines (runtimes, invocation modes), read from the daemon's own OpenAPI
// document so the forms offer exactly what this daemon accepts.

import { useEffect, useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from './api.js';

export interface Choices {
  runtimes: string[];
  modes: string[];
}

interface OpenApiDoc {
  components: { schemas: Record<string, { properties?: Record<string, EnumSchema> }> };
}
interface EnumSchema {
  anyOf?: { enum?: unknown[] }[];
}

export function choicesOf(doc: OpenApiDoc): Choices {
  const fn = doc.components.schemas['Function']?.properties ?? {};
  const values = (s: EnumSchema | undefined): string[] =>
    (s?.anyOf ?? []).flatMap((a) => (a.enum ?? []).filter((v) => typeof v === 'string'));
  return { runtimes: values(fn['runtime']), modes: values(fn['defaultMode']) };
}

let loading: Promise<Choices> | undefined;

export function useChoices(): { choices?: Choices; error?: ApiError } {
  const [state, setState] = useState<{ choices?: Choices; error?: ApiError }>({});
  useEffect(() => {
    loading ??= api<OpenApiDoc>('GET', '/openapi.json').then(choicesOf);
    let live = true;
    loading.then(
      (choices) => live && setState({ choices }),
      (e: unknown) => {
        loading = undefined; // ask again next time
        if (live) setState({ error: asApiError(e) });
      },
    );
    return () => {
      live = false;
    };
  }, []);
  return state;
}
