// Sign-in with a choice of providers, in a real browser (Debian's headless Chromium driven by
// playwright-core; never a downloaded browser).
//
//   node tests/support/browser-choose.mjs <gateway base URL> <buttons> <button to press> <user>
//
// <buttons> is the labels the sign-in page must show, in order, joined by "|". The gateway
// must protect `/` with the echo upstream behind it and accept every provider there. The
// script opens `/`, checks that it lands on the gateway's sign-in page with exactly those
// buttons, presses one, signs in at that provider's login form as <user>, and checks that it
// comes back to `/` answered by the echo upstream. Prints one JSON line: {"ok":true,
// "buttons":[...],"provider_origin":...,"headers":{...the upstream's request headers}} and
// exits 0; on a failure exits 1 with the reason on stderr. Exits within 60 s.
//
// Environment: CHROMIUM (default /usr/bin/chromium).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const NAV_TIMEOUT_MS = 15_000;
const PASSWORD = 'Passw0rd!';

const [baseArg, buttonsArg, press, user] = process.argv.slice(2);
if (!/^https?:\/\//.test(baseArg || '') || !buttonsArg || !press || !user) {
  console.error('usage: node browser-choose.mjs <gateway base URL> <label|label...> <label to press> <user>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const baseOrigin = new URL(base).origin;
const wanted = buttonsArg.split('|');
const userDataDir = mkdtempSync(join(tmpdir(), 'ssogate-chromium-'));
let context;

async function finish(code, line) {
  if (line) process.stdout.write(JSON.stringify(line) + '\n');
  if (context) await Promise.race([context.close().catch(() => {}), new Promise((r) => setTimeout(r, 3_000))]);
  rmSync(userDataDir, { recursive: true, force: true });
  process.exit(code);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

setTimeout(() => {
  console.error('browser-choose: took longer than 55 s');
  finish(1);
}, 55_000).unref();

async function main() {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: NAV_TIMEOUT_MS,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
  context.setDefaultTimeout(NAV_TIMEOUT_MS);
  const page = context.pages()[0] || (await context.newPage());

  const first = await page.goto(`${base}/`);
  check(first && first.status() === 200, `GET / ended with ${first && first.status()} at ${page.url()}`);
  const at = new URL(page.url());
  check(at.origin === baseOrigin && at.pathname === '/oauth2/sign_in', `expected the gateway's sign-in page, got ${page.url()}`);
  const buttons = (await page.locator('a.button').allInnerTexts()).map((t) => t.trim());
  check(JSON.stringify(buttons) === JSON.stringify(wanted), `the sign-in page shows buttons ${JSON.stringify(buttons)}, want ${JSON.stringify(wanted)}`);

  await Promise.all([page.waitForURL((u) => u.origin !== baseOrigin), page.getByText(press, { exact: true }).click()]);
  const providerOrigin = new URL(page.url()).origin;
  check(/\/login\//.test(new URL(page.url()).pathname), `pressing "${press}" did not reach a provider's login form: ${page.url()}`);
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', PASSWORD);
  const landed = page.waitForResponse((r) => r.url() === `${base}/` && r.request().isNavigationRequest(), { timeout: NAV_TIMEOUT_MS });
  await page.locator('input[name="password"]').press('Enter');
  const resp = await landed;
  check(resp.status() === 200 && resp.headers()['x-upstream'] === 'echo', `after signing in, / answered ${resp.status()} not from the echo upstream`);
  const echo = JSON.parse(await resp.text());
  await finish(0, { ok: true, buttons, provider_origin: providerOrigin, headers: echo.headers || {} });
}

main().catch((e) => {
  console.error(`browser-choose: ${e && e.message ? e.message : e}`);
  finish(1);
});
