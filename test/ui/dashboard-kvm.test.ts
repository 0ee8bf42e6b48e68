// The dashboard driving real microVMs (KVM tier): the micro touch function is registered and
// deployed from the UI, which follows its lifecycle to `ready`; it is invoked from the invoke
// form in two memory modes and the page shows the right checksum and the waterfall of the
// invocation's trace; the snapshot's inspection data, the live VMs and the metrics charts render.
// Screenshots of each view are kept in test-output/ui/.

import assert from 'node:assert/strict';
import { scaledMs } from '../../common/time-scale.js';
import { TOUCH_FN, request, startDaemon, touchExpected, walk } from '../daemon/support.js';
import { KVM_PRESENT } from '../kvm/support.js';
import { StrictPage, browserTest, launchChromium } from './browser.js';

const kvmMissing = () => (KVM_PRESENT ? undefined : 'KVM tier did not run: /dev/kvm is missing');

/**
 * The daemon's log kept in memory for a failure's report: its own lines (deploy steps, warnings)
 * and, apart, the last HTTP requests, which tell whether the page was still polling.
 */
class DaemonLog {
  readonly lines: string[] = [];
  readonly requests: string[] = [];
  write(msg: string): void {
    const ring = /"(incoming request|request completed)"/.test(msg) ? this.requests : this.lines;
    ring.push(msg.trimEnd());
    if (ring.length > 200) ring.shift();
  }
  tail(): string {
    return [...this.lines.slice(-60), '-- last requests --', ...this.requests.slice(-12)].join(
      '\n',
    );
  }
}

browserTest(
  'dashboard (KVM): deploy the micro function from the UI, invoke it, see result and waterfall',
  async () => {
    const log = new DaemonLog();
    const d = await startDaemon({ logLevel: 'info' }, undefined, { logStream: log });
    const browser = await launchChromium();
    const ui = await StrictPage.open(browser, `${d.url}/ui/`);
    const page = ui.page;
    try {
      const form = page.getByRole('form', { name: 'register a function' });
      await form.getByLabel('name', { exact: true }).fill(TOUCH_FN.name);
      await form.getByLabel('runtime').selectOption(TOUCH_FN.runtime);
      await form.getByLabel('handler').fill(TOUCH_FN.handler);
      await form.getByLabel('memory (MiB)').fill(String(TOUCH_FN.memoryMiB));
      await form.getByLabel('state (MiB)').fill(String(TOUCH_FN.stateMiB));
      await form.getByRole('button', { name: 'Register' }).click();
      const row = page.locator(`tr[data-function="${TOUCH_FN.name}"]`);
      await row.locator('.badge', { hasText: 'registered' }).waitFor();

      // Deploy from the list; the polled state goes through the chain to ready (a failed
      // deploy ends the wait at once, with the daemon's error in the report below).
      await row.getByRole('button', { name: 'Deploy' }).click();
      const settled = row.locator('.badge', { hasText: /^(ready|failed)$/ });
      await settled.waitFor({ timeout: scaledMs(90_000) });
      assert.equal(await settled.innerText(), 'ready', 'the deploy shown as');
      ui.check();

      await row.getByRole('link', { name: TOUCH_FN.name }).click();
      const invoke = page.getByRole('form', { name: 'invoke' });
      const result = page.getByLabel('invocation', { exact: true });
      const expected = touchExpected(walk(0, 64, 1));
      for (const mode of ['faasnap', 'reap']) {
        await invoke.getByLabel('params').fill('{"range":{"count":64}}');
        await invoke.getByLabel('mode').selectOption(mode);
        await invoke.getByRole('button', { name: 'Invoke' }).click();
        await result
          .filter({ hasText: `mode ${mode}` })
          .locator('.badge', { hasText: 'succeeded' })
          .waitFor({ timeout: scaledMs(60_000) });
        const shown = JSON.parse(await result.getByLabel('result').innerText()) as {
          checksum: string;
        };
        assert.equal(shown.checksum, expected, `${mode}: the checksum shown`);
        // The waterfall is the invocation's trace: its phases as spans.
        const spans = result.locator('.waterfall .span-name');
        await spans.filter({ hasText: /^guest-run$/ }).waitFor();
        const names = await spans.allInnerTexts();
        for (const phase of ['invocation', 'pool-take', 'restore', 'guest-run', 'teardown'])
          assert.ok(names.includes(phase), `${mode}: ${phase} in ${names.join(', ')}`);
        await ui.screenshot(`kvm-invocation-${mode}`);
      }
      // Both invocations are in the history.
      await page
        .getByRole('table', { name: 'invocation history' })
        .locator('tbody tr')
        .nth(1)
        .waitFor();
      ui.check();

      // The ready snapshot's inspection: sizes, loading set and groups, REAP pages.
      await page.locator('dd a[href^="#/snapshots/"]').click();
      const inspection = page.getByLabel('snapshot inspection');
      await inspection.getByText('guest memory').waitFor();
      await inspection.getByRole('table', { name: 'working-set groups' }).waitFor();
      assert.doesNotMatch(await inspection.innerText(), /not recorded/);
      await ui.screenshot('kvm-snapshot');

      await page.getByRole('link', { name: 'VMs & pool' }).click();
      await page.getByLabel('VMM pool').getByText('kept ready').waitFor();
      await ui.screenshot('kvm-vms');

      // Metrics: the two modes appear in the charts' legends and the latency table.
      await page.getByRole('link', { name: 'Metrics' }).click();
      const table = page.getByRole('table', { name: 'latency per mode' });
      await table.getByText('faasnap', { exact: true }).waitFor({ timeout: scaledMs(10_000) });
      await table.getByText('reap', { exact: true }).waitFor();
      assert.equal(await page.locator('.chart .uplot').count(), 2);
      await ui.screenshot('kvm-metrics');
      ui.check();
    } catch (e) {
      // What the page showed, what the daemon says and logged: enough to tell a deploy that hung
      // from a page that stopped polling.
      const shot = await ui.screenshot('kvm-failure').catch((s: Error) => s.message);
      const fn = await request(d.url, 'GET', `/functions/${TOUCH_FN.name}`).catch((r: Error) => ({
        text: r.message,
      }));
      throw new Error(
        `${(e as Error).message}\nscreenshot: ${shot}\n` +
          `GET /functions/${TOUCH_FN.name} now: ${fn.text}\ndaemon log:\n${log.tail()}`,
        { cause: e },
      );
    } finally {
      await ui.close();
      await browser.close();
      await d.stop();
    }
  },
  240_000,
  kvmMissing,
);
