// Invoke a function: parameters as JSON and a memory mode; the answer (or the API error) is
// handed to the page.

import { useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from '../api.js';
import { useChoices } from '../contract.js';
import { parseJsonObject } from '../json-input.js';
import { ModeSelect } from './mode-select.js';
import type { FunctionT, InvocationT } from '../types.js';

interface Props {
  fn: FunctionT;
  onAnswer: (answer: { invocation?: InvocationT; error?: ApiError }) => void;
}

export function InvokeForm({ fn, onAnswer }: Props) {
  const { choices } = useChoices();
  const [params, setParams] = useState('{}');
  const [mode, setMode] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: SubmitEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      const body: Record<string, unknown> = { params: parseJsonObject(params, 'params') };
      if (mode) body['mode'] = mode;
      const invocation = await api<InvocationT>(
        'POST',
        `/functions/${encodeURIComponent(fn.name)}/invocations`,
        body,
      );
      onAnswer({ invocation });
    } catch (err) {
      onAnswer({ error: asApiError(err) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card invoke" aria-label="invoke" onSubmit={(e) => void submit(e)}>
      <h3>Invoke</h3>
      <label class="wide">
        params (JSON object)
        <textarea
          name="params"
          rows={3}
          spellcheck={false}
          value={params}
          onInput={(e) => setParams(e.currentTarget.value)}
        />
      </label>
      <div class="row">
        <label>
          mode
          <ModeSelect
            name="mode"
            empty={`default (${fn.defaultMode})`}
            modes={choices?.modes}
            value={mode}
            onChange={setMode}
          />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Invoking…' : 'Invoke'}
        </button>
        {fn.state !== 'ready' && (
          <span class="muted">
            {fn.name} is {fn.state}: an invocation needs a deployed (ready) function
          </span>
        )}
      </div>
    </form>
  );
}
