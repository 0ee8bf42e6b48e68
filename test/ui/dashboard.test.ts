// The dashboard in a real browser against a real daemon, no KVM needed: the pages render, a
// function is registered, listed with its live state and deleted from the UI, and the API's
// errors are shown (a duplicate name, a deploy that fails where /dev/kvm is missing, an
// invocation of an undeployed function). Any console error or unannounced failed request fails the test.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import type { Browser } from 'playwright-core';
import { startDaemon, type TestDaemon } from '../daemon/support.js';
import { KVM_PRESENT } from '../kvm/support.js';
import { StrictPage, browserTest, chromiumMissing, launchChromium } from './browser.js';

let daemon: TestDaemon | undefined;
let browser: Browser | undefined;

before(async () => {
  if (chromiumMissing()) return;
  daemon = await startDaemon({ poolSize: 0 });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await daemon?.stop();
});

browserTest(
  'dashboard: register a function, see its state, its errors and every page, delete it',
  async () => {
    const d = daemon!;
    const ui = await StrictPage.open(browser!, `${d.url}/`);
    const page = ui.page;
    try {
      // / redirects to the dashboard, which shows the daemon's health.
      assert.equal(new URL(page.url()).pathname, '/ui/');
      await page.getByLabel('daemon health').filter({ hasText: 'pool 0/0 idle' }).waitFor();
      await page.getByText('No functions yet').waitFor();

      const form = page.getByRole('form', { name: 'register a function' });
      const register = async () => {
        await form.getByLabel('name', { exact: true }).fill('touchy');
        await form.getByLabel('runtime').selectOption('micro');
        await form.getByLabel('handler').fill('touch');
        await form.getByLabel('memory (MiB)').fill('32');
        await form.getByLabel('state (MiB)').fill('4');
        await form.getByRole('button', { name: 'Register' }).click();
      };
      await register();
      const row = page.locator('tr[data-function="touchy"]');
      await row.locator('.badge', { hasText: 'registered' }).waitFor();
      assert.equal((await d.call('GET', '/functions/touchy')).body.memoryMiB, 32);
      ui.check();

      // The daemon's errors are shown with their code: a name taken twice...
      const duplicate = ui.expectHttpError(/^\/functions$/, 409);
      await register();
      await form.locator('.error-code', { hasText: 'FUNCTION_EXISTS' }).waitFor();
      assert.equal(duplicate.seen, 1);
      // ...and JSON that does not parse never leaves the page.
      await form.getByLabel('record params').fill('{"range":');
      await form.getByRole('button', { name: 'Register' }).click();
      await form.locator('.error-code', { hasText: 'INVALID_JSON' }).waitFor();
      await ui.screenshot('functions');

      // Deploy: without /dev/kvm the chain fails and the list shows it, with the error's code.
      // (With KVM the deploy would succeed: dashboard-kvm.test.ts follows that path.)
      if (!KVM_PRESENT) {
        await row.getByRole('button', { name: 'Deploy' }).click();
        await row.locator('.badge', { hasText: 'failed' }).waitFor({ timeout: 30_000 });
        await row.getByText('VMM_START_FAILED').waitFor();
      }

      // The function's page: lifecycle, configuration, the deploy error, an invocation refused.
      await row.getByRole('link', { name: 'touchy' }).click();
      const state = KVM_PRESENT ? 'registered' : 'failed';
      await page.getByRole('list', { name: 'lifecycle' }).getByText(state).waitFor();
      const notReady = ui.expectHttpError(/^\/functions\/touchy\/invocations$/, 409);
      const invoke = page.getByRole('form', { name: 'invoke' });
      await invoke.getByLabel('params').fill('{"range":{"count":64}}');
      await invoke.getByLabel('mode').selectOption('reap');
      await invoke.getByRole('button', { name: 'Invoke' }).click();
      await page.locator('.error-code', { hasText: 'FUNCTION_NOT_READY' }).waitFor();
      assert.equal(notReady.seen, 1);
      await page.getByText('No invocations yet.').waitFor();
      await ui.screenshot('function');
      ui.check();

      // The other pages render.
      await page.getByRole('link', { name: 'Snapshots' }).click();
      await page.getByText('No snapshots').waitFor();
      await page.getByRole('link', { name: 'VMs & pool' }).click();
      await page.getByLabel('VMM pool').getByText('kept ready').waitFor();
      await page.getByText('No live VMs.').waitFor();
      await ui.screenshot('vms');
      await page.getByRole('link', { name: 'Metrics' }).click();
      // Both charts are drawn by uPlot (empty until the first invocation).
      await page.locator('.chart .uplot canvas').nth(1).waitFor();
      assert.equal(await page.locator('.chart .uplot').count(), 2);
      await ui.screenshot('metrics');
      ui.check();

      // Delete asks again, then the function is gone from the list and from the daemon.
      await page.getByRole('link', { name: 'Functions' }).click();
      await row.getByRole('button', { name: 'Delete' }).click();
      await row.getByRole('button', { name: 'Really delete?' }).click();
      await page.getByText('No functions yet').waitFor();
      assert.equal((await d.call('GET', '/functions')).body.length, 0);
      ui.check();
    } finally {
      await ui.close();
    }
  },
  120_000,
);

browserTest(
  'dashboard: an unknown function shows the API error instead of an empty page',
  async () => {
    const ui = await StrictPage.open(browser!, `${daemon!.url}/ui/`);
    try {
      ui.expectHttpError(/^\/functions\/nosuch(\/invocations)?$/, 404);
      await ui.page.goto(`${daemon!.url}/ui/#/functions/nosuch`);
      await ui.page.locator('.error-code', { hasText: 'FUNCTION_UNKNOWN' }).first().waitFor();
      ui.check();
    } finally {
      await ui.close();
    }
  },
  60_000,
);
