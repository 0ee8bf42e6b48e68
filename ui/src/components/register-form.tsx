// Register a function: POST /functions with the fields given (the daemon fills in defaults and
// says what is wrong).

import { useState } from 'preact/hooks';
import { api, asApiError, type ApiError } from '../api.js';
import { useChoices } from '../contract.js';
import { parseJsonObject } from '../json-input.js';
import { ModeSelect } from './mode-select.js';
import { ErrorBox } from './error-box.js';

/** Handlers of the micro runtime (guest/micro): suggested in the form. */
const MICRO_HANDLERS = ['touch', 'hello', 'hang'];

export function RegisterForm({ onRegistered }: { onRegistered: () => void }) {
  const { choices, error: choicesError } = useChoices();
  const [runtime, setRuntime] = useState('micro');
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const [registered, setRegistered] = useState<string>();

  const submit = async (e: SubmitEvent) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const text = (k: string) => String(data.get(k) ?? '').trim();
    const int = (k: string) => (text(k) === '' ? undefined : Number(text(k)));
    setError(undefined);
    setRegistered(undefined);
    setBusy(true);
    try {
      const spec: Record<string, unknown> = {
        name: text('name'),
        runtime: text('runtime'),
        handler: text('handler'),
        memoryMiB: int('memoryMiB'),
        vcpus: int('vcpus'),
        timeoutMs: int('timeoutMs'),
        defaultMode: text('defaultMode') || undefined,
        stateMiB: runtime === 'micro' ? int('stateMiB') : undefined,
        recordParams: text('recordParams')
          ? parseJsonObject(text('recordParams'), 'record params')
          : undefined,
        code: runtime !== 'micro' && text('code') ? text('code') : undefined,
      };
      await api('POST', '/functions', spec);
      setRegistered(text('name'));
      form.reset();
      setRuntime('micro');
      onRegistered();
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card register" aria-label="register a function" onSubmit={(e) => void submit(e)}>
      <h3>Register a function</h3>
      <ErrorBox error={choicesError} />
      <div class="fields">
        <label>
          name
          <input name="name" required placeholder="touchy" pattern="[a-z0-9][a-z0-9_\-]{0,62}" />
        </label>
        <label>
          runtime
          <select
            name="runtime"
            value={runtime}
            onChange={(e) => setRuntime(e.currentTarget.value)}
          >
            {(choices?.runtimes ?? [runtime]).map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          handler
          <input
            name="handler"
            required
            list={runtime === 'micro' ? 'micro-handlers' : undefined}
            placeholder={runtime === 'micro' ? 'touch' : 'hello'}
          />
          <datalist id="micro-handlers">
            {MICRO_HANDLERS.map((h) => (
              <option key={h} value={h} />
            ))}
          </datalist>
        </label>
        <label>
          memory (MiB)
          <input name="memoryMiB" type="number" min={8} placeholder="128" />
        </label>
        <label>
          vCPUs
          <input name="vcpus" type="number" min={1} max={8} placeholder="1" />
        </label>
        {runtime === 'micro' && (
          <label>
            state (MiB)
            <input name="stateMiB" type="number" min={0} placeholder="0" />
          </label>
        )}
        <label>
          default mode
          <ModeSelect name="defaultMode" empty="(daemon default)" modes={choices?.modes} />
        </label>
        <label>
          timeout (ms)
          <input name="timeoutMs" type="number" min={1} placeholder="30000" />
        </label>
      </div>
      <label class="wide">
        record params (JSON object, optional)
        <textarea name="recordParams" rows={2} placeholder='{"range":{"count":64}}' />
      </label>
      {runtime !== 'micro' && (
        <label class="wide">
          code (optional: the module that defines the handler)
          <textarea name="code" rows={6} spellcheck={false} />
        </label>
      )}
      <div class="row">
        <button type="submit" class="primary" disabled={busy}>
          Register
        </button>
        {registered && <span class="muted">registered {registered}</span>}
      </div>
      <ErrorBox error={error} onDismiss={() => setError(undefined)} />
    </form>
  );
}
