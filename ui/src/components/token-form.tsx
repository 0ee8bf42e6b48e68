// Shown instead of the views while the daemon refuses the page's calls (UNAUTHORIZED): a daemon
// bound beyond loopback wants its API token (<data dir>/api-token on the daemon's host). The
// page reloads with it so that every poll starts again with the token.

import { storeToken, storedToken } from '../api.js';

export function TokenForm() {
  const refused = storedToken() !== null;
  return (
    <form
      class="card token-form"
      aria-label="API token"
      onSubmit={(e) => {
        e.preventDefault();
        const token = new FormData(e.currentTarget).get('token');
        if (typeof token !== 'string' || !token.trim()) return;
        storeToken(token.trim());
        window.location.reload();
      }}
    >
      <h2>API token</h2>
      <p>
        {refused
          ? 'The daemon refused the token given on this tab: enter the right one.'
          : 'This daemon needs its API token (the file api-token in its data directory, or its --token-file).'}{' '}
        It is kept for this browser tab only.
      </p>
      <label>
        token
        <input name="token" type="password" autocomplete="off" required />
      </label>
      <button type="submit" class="primary">
        Use token
      </button>
    </form>
  );
}
