// Support for the dashboard's browser tests: Debian's chromium driven by playwright-core (no
// browser download), a page that fails the test on any console error, page error, failed request
// or HTTP error answer the test did not announce, and screenshots kept as test output.

import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { scaledMs } from '../../common/time-scale.js';
import { tierTest } from '../support/skip.js';

/** The browser: Debian's chromium package (scripts/setup.sh installs it). */
export const CHROMIUM = process.env.FAASNAP_CHROMIUM ?? '/usr/bin/chromium';

/** Screenshots of the browser tests (gitignored): test-output/ui/ at the repository's root. */
export const SCREENSHOT_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../test-output/ui',
);

export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `browser tier did not run: ${CHROMIUM} is missing (Debian package chromium)`;
}

/** node:test's `test` for tests that need chromium (and whatever else `missing` names). */
export function browserTest(
  name: string,
  fn: (t: TestContext) => Promise<void>,
  timeoutMs: number,
  missing: () => string | undefined = chromiumMissing,
): void {
  tierTest(name, () => chromiumMissing() ?? missing(), fn, timeoutMs);
}

export async function launchChromium(): Promise<Browser> {
  // No sandbox (tests run as root), no GPU, shared memory in /tmp: the lab's root is the host's,
  // read-only, without a tmpfs on /dev/shm. Not --single-process: it ends the browser when a
  // test closes its page (seen in the lab), so the next test finds it closed.
  const args = ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'];
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args,
    timeout: scaledMs(30_000),
  });
}

interface Expected {
  path: RegExp;
  status: number;
  seen: number;
}

/** A page that records every problem; check() fails the test with them. */
export class StrictPage {
  readonly problems: string[] = [];
  private readonly expected: Expected[] = [];

  private constructor(readonly page: Page) {
    page.setDefaultTimeout(scaledMs(15_000));
    page.on('pageerror', (e) => this.problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) =>
      this.problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`),
    );
    page.on('response', (r) => {
      if (r.status() < 400) return;
      const e = this.match(r.url(), r.status());
      if (e) e.seen++;
      else this.problems.push(`unexpected HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
    });
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      // Chromium logs every HTTP error answer as a console error; announced ones are fine.
      const status = /status of (\d+)/.exec(m.text())?.[1];
      if (status && this.match(m.location().url, Number(status))) return;
      this.problems.push(`console error: ${m.text()} (${m.location().url})`);
    });
  }

  static async open(browser: Browser, url: string): Promise<StrictPage> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    return new StrictPage(await context.newPage()).goto(url);
  }

  async goto(url: string): Promise<this> {
    await this.page.goto(url, { timeout: scaledMs(30_000) });
    return this;
  }

  /** Announces that requests to `path` may answer `status` (the test checks what the UI shows). */
  expectHttpError(path: RegExp, status: number): Expected {
    const e = { path, status, seen: 0 };
    this.expected.push(e);
    return e;
  }

  /** Throws when anything went wrong in the page so far. */
  check(): void {
    if (this.problems.length)
      throw new Error(`the page had problems:\n${this.problems.join('\n')}`);
  }

  /** A full-page screenshot in SCREENSHOT_DIR; returns its path. */
  async screenshot(name: string): Promise<string> {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const path = join(SCREENSHOT_DIR, `${name}.png`);
    await this.page.screenshot({ path, fullPage: true });
    return path;
  }

  async close(): Promise<void> {
    // Listeners go first: closing aborts the page's polling requests.
    this.page.removeAllListeners();
    await this.page.context().close();
  }

  private match(url: string, status: number): Expected | undefined {
    const path = new URL(url).pathname;
    return this.expected.find((e) => e.status === status && e.path.test(path));
  }
}
