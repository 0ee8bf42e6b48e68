// The dashboard of a daemon that wants its API token, in a real browser: the page's API calls are
// refused (401) until the token is entered; a wrong token is refused again and said so; the right
// one opens every view, and the page's calls then carry it (none is refused any more).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, startDaemon, TOUCH_FN } from '../daemon/support.js';
import { StrictPage, browserTest, launchChromium } from './browser.js';

browserTest(
  'dashboard: the API token is asked for, a wrong one refused, the right one opens the views',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faasnap-ui-token-'));
    const token = 'c0ffee'.repeat(8);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    // A token file is enforced on loopback too: the same as a daemon beyond it.
    const d = await startDaemon({ poolSize: 0, tokenFile });
    const browser = await launchChromium();
    try {
      const auth = { authorization: `Bearer ${token}` };
      assert.equal((await request(d.url, 'POST', '/functions', TOUCH_FN, auth)).status, 201);
      const ui = await StrictPage.open(browser, `${d.url}/ui/`);
      const page = ui.page;
      const refused = ui.expectHttpError(/^\/(?!ui\/)/, 401);
      const form = page.getByRole('form', { name: 'API token' });
      await form.getByText('This daemon needs its API token').waitFor();
      assert.ok(refused.seen > 0);
      assert.equal(await page.locator('tr[data-function]').count(), 0, 'no data without it');

      await form.getByLabel('token').fill('not-the-token');
      await form.getByRole('button', { name: 'Use token' }).click();
      await form.getByText('The daemon refused the token').waitFor();

      await form.getByLabel('token').fill(token);
      await form.getByRole('button', { name: 'Use token' }).click();
      await page.locator(`tr[data-function="${TOUCH_FN.name}"]`).waitFor();
      await page.getByLabel('daemon health').filter({ hasText: 'pool 0/0 idle' }).waitFor();
      // Every view polls with the token now: no refusal while they load.
      const seen = refused.seen;
      for (const view of ['Snapshots', 'VMs & pool', 'Metrics', 'Functions']) {
        await page.getByRole('link', { name: view, exact: true }).click();
        await page.waitForTimeout(1500);
      }
      assert.equal(refused.seen, seen, 'no call was refused after the token was given');
      await ui.screenshot('token');
      ui.check();
      await ui.close();
    } finally {
      await browser.close();
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  120_000,
);
