// An API error as the daemon gave it: code, message, HTTP status and details. Errors are shown
// where they happened, never dropped.

import type { ApiError } from '../api.js';

export function ErrorBox({
  error,
  onDismiss,
}: {
  error: ApiError | undefined;
  onDismiss?: () => void;
}) {
  if (!error) return null;
  const details = error.details && Object.keys(error.details).length > 0 ? error.details : null;
  return (
    <div class="error-box" role="alert">
      <div>
        <strong class="error-code">{error.code}</strong>
        {error.status > 0 && <span class="muted"> HTTP {error.status}</span>}
        {onDismiss && (
          <button type="button" class="link dismiss" onClick={onDismiss} aria-label="dismiss">
            ×
          </button>
        )}
      </div>
      <div class="error-message">{error.message}</div>
      {details && (
        <details>
          <summary>details</summary>
          <pre>{JSON.stringify(details, null, 2)}</pre>
        </details>
      )}
    </div>
  );
}
