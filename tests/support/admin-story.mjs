// The admin story of issue 20 in a real browser (Debian's headless Chromium driven by
// playwright-core; never a downloaded browser): an admin signs in through the gateway, creates
// carol in group staff on the admin page (reading the temporary password shown once) and signs
// out; carol signs in at the test provider (choosing her own password, as the hosted UI asks)
// and reaches the app as carol in staff; the admin signs in again and disables her; carol is
// refused: at once (STORY_STORE=memory), or at her session's next refresh (STORY_STORE=cookie,
// the refresh due STORY_REFRESH_DUE_MS after her sign-in).
//
//   node tests/support/admin-story.mjs <gateway base URL> [screenshot dir]
//
// The gateway protects `/` with the echo upstream (tests/common/mod.rs), signs in at
// tests/support/idp.mjs started with --moto-endpoint/--moto-pool, and serves the admin page at
// /oauth2/admin for the pool's `admins`, among them alice (password ADMIN_PASSWORD). Prints one
// JSON line per step; exits 0 when every step passed, 1 with a message on stderr (and
// `failure.png` in the screenshot dir) at the first failure. Exits within 100 s.
//
// Environment: CHROMIUM (default /usr/bin/chromium), STORY_STORE, STORY_REFRESH_DUE_MS,
// ADMIN_PASSWORD.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const NAV_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 95_000;
const CAROL_PASSWORD = 'Carol-Chooses-1';

const base = (process.argv[2] || '').replace(/\/+$/, '');
const shotDir = process.argv[3] || '';
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node admin-story.mjs <gateway base URL> [screenshot dir]');
  process.exit(2);
}
const store = process.env.STORY_STORE || 'memory';
const refreshDueMs = Number(process.env.STORY_REFRESH_DUE_MS || 0);
const adminPassword = process.env.ADMIN_PASSWORD || '';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const app = `${base}/hello`;

let browser;
let page; // the page of the step running, for screenshots
let step = 'start';
let stepNo = 0;
let finished = false;

class StepFailure extends Error {}

function check(cond, message) {
  if (!cond) throw new StepFailure(message);
}

function log(obj) {
  process.stdout.write(`${JSON.stringify({ step, ...obj })}\n`);
}

async function screenshot(name) {
  if (!shotDir || !page) return null;
  try {
    mkdirSync(shotDir, { recursive: true });
    const path = join(shotDir, `${name}.png`);
    await page.screenshot({ path, fullPage: true, timeout: 5_000 });
    return path;
  } catch {
    return null;
  }
}

async function fail(message) {
  if (finished) return;
  finished = true;
  const shot = await screenshot('failure');
  const url = page ? page.url() : null;
  log({ ok: false, error: message, url, screenshot: shot });
  console.error(`admin-story: step "${step}" failed: ${message}${url ? ` (page at ${url})` : ''}`);
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 3_000))]);
  process.exit(1);
}

setTimeout(() => {
  fail(`the story took longer than ${TOTAL_TIMEOUT_MS / 1000} s`);
  setTimeout(() => process.exit(1), 4_000).unref();
}, TOTAL_TIMEOUT_MS).unref();

async function run(name, on, fn) {
  step = name;
  stepNo += 1;
  page = on;
  const t0 = Date.now();
  const detail = (await fn()) || {};
  const shot = await screenshot(`${String(stepNo).padStart(2, '0')}-${name}`);
  log({ ok: true, ms: Date.now() - t0, url: on.url(), ...detail, ...(shot ? { screenshot: shot } : {}) });
}

const text = async (p) => (await p.locator('body').innerText().catch(() => '')).slice(0, 400);

/// What the app shows at /hello: the echo upstream's view of the request, or null when the
/// gateway did not let the request through (then the page is somewhere else).
async function appAsSeen(p) {
  const resp = await p.goto(app);
  check(resp, `no response for ${app}`);
  if (resp.headers()['x-upstream'] !== 'echo') return null;
  return (await resp.json()).headers;
}

async function expectLoginForm(p) {
  const url = new URL(p.url());
  check(url.origin !== new URL(base).origin, `expected the provider's login page, but the page is at the gateway: ${p.url()}: ${await text(p)}`);
  check(/\/login\//.test(url.pathname), `expected the provider's /login/<uid> page, got ${p.url()}: ${await text(p)}`);
}

/// Signs in at the provider's form (and sets a new password when it asks for one), then
/// checks the app sees `user`; the headers the upstream saw.
async function signIn(p, user, password, newPassword) {
  await p.goto(app);
  await expectLoginForm(p);
  await p.fill('input[name="username"]', user);
  await p.fill('input[name="password"]', password);
  await p.locator('button[type="submit"]').click();
  await p.waitForLoadState('load');
  if (await p.locator('input[name="new_password"]').count()) {
    check(newPassword, `the provider asks ${user} for a new password: ${await text(p)}`);
    await p.fill('input[name="new_password"]', newPassword);
    await p.locator('button[type="submit"]').click();
  }
  await p.waitForURL(app).catch(async () => {
    throw new StepFailure(`${user} did not come back to ${app} after signing in; page at ${p.url()}: ${await text(p)}`);
  });
  const seen = await appAsSeen(p);
  check(seen, `${app} is not the app after ${user} signed in: ${await text(p)}`);
  check(seen['x-forwarded-user'] === user, `the upstream saw x-forwarded-user ${JSON.stringify(seen['x-forwarded-user'])}, want ${user}`);
  return seen;
}

async function signOut(p) {
  await p.goto(`${base}/oauth2/sign_out`);
  check(p.url() === `${base}/oauth2/signed_out`, `sign-out ended at ${p.url()}`);
}

/// Submits a form of the admin page; the message it shows.
async function submit(p, button) {
  await button.click();
  await p.waitForLoadState('load');
  const message = p.locator('#message');
  check(await message.count(), `no message on the admin page after the change: ${await text(p)}`);
  return message.innerText();
}

async function main() {
  const launched = await chromium.launch({
    executablePath,
    headless: true,
    timeout: NAV_TIMEOUT_MS,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  browser = launched;
  // Two people, two browser profiles (cookie jars).
  const [admin, carol] = await Promise.all([1, 2].map(async () => {
    const context = await launched.newContext();
    context.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
    context.setDefaultTimeout(NAV_TIMEOUT_MS);
    return context.newPage();
  }));

  await run('admin-signs-in', admin, async () => {
    const seen = await signIn(admin, 'alice', adminPassword);
    return { groups: seen['x-forwarded-groups'] };
  });

  let temporary;
  await run('admin-creates-carol', admin, async () => {
    const resp = await admin.goto(`${base}/oauth2/admin`);
    check(resp.status() === 200, `the admin page answered ${resp.status()}: ${await text(admin)}`);
    const form = admin.locator('#create');
    await form.locator('input[name="user"]').fill('carol');
    await form.locator('input[name="email"]').fill('carol@example.com');
    await form.locator('input[name="groups"][value="staff"]').check();
    const said = await submit(admin, form.locator('button[type="submit"]'));
    check(said.includes('Created carol'), `the page says: ${said}`);
    temporary = await admin.locator('#temporary-password').innerText();
    check(temporary.length >= 10, `temporary password ${JSON.stringify(temporary)}`);
    const row = await admin.locator('#user-carol').innerText();
    check(/staff/.test(row) && /FORCE_CHANGE_PASSWORD/.test(row), `carol's row: ${row}`);
    return { row };
  });

  await run('admin-signs-out', admin, () => signOut(admin));

  let carolIn;
  await run('carol-signs-in', carol, async () => {
    const seen = await signIn(carol, 'carol', temporary, CAROL_PASSWORD);
    carolIn = Date.now();
    check(seen['x-forwarded-groups'] === 'staff', `the upstream saw x-forwarded-groups ${JSON.stringify(seen['x-forwarded-groups'])}, want "staff"`);
    return { user: seen['x-forwarded-user'], groups: seen['x-forwarded-groups'] };
  });

  let said;
  await run('admin-disables-carol', admin, async () => {
    await signIn(admin, 'alice', adminPassword);
    await admin.goto(`${base}/oauth2/admin`);
    const disable = admin.locator('#user-carol form').filter({ has: admin.locator('input[name="action"][value="disable"]') });
    said = await submit(admin, disable.locator('button'));
    check(said.includes('Disabled carol'), `the page says: ${said}`);
    const want = store === 'cookie' ? 'ends at its next refresh' : 'ended at once';
    check(said.includes(want), `the page says "${said}", want it to say "${want}"`);
    return { said };
  });

  if (store === 'cookie') {
    await run('carol-still-in-until-the-refresh', carol, async () => {
      const early = Date.now() - carolIn < refreshDueMs - 2_000;
      const seen = await appAsSeen(carol);
      // Only meaningful while the refresh is not yet due (a slow machine may be past it).
      if (early) check(seen?.['x-forwarded-user'] === 'carol', `before her refresh is due carol is already refused (the cookie store cannot end sessions at once): ${await text(carol)}`);
      await carol.waitForTimeout(Math.max(0, carolIn + refreshDueMs + 1_500 - Date.now()));
      return { checked_before_refresh: early };
    });
  }

  await run('carol-is-refused', carol, async () => {
    const seen = await appAsSeen(carol);
    check(!seen, `carol still reaches the app (as ${seen?.['x-forwarded-user']}) after being disabled`);
    await expectLoginForm(carol);
    const shown = await text(carol);
    check(/User is disabled\./.test(shown), `the provider's page does not say "User is disabled.": ${shown}`);
    return { shown: shown.slice(0, 120) };
  });

  step = 'done';
  finished = true;
  log({ ok: true });
  await Promise.race([launched.close().catch(() => {}), new Promise((r) => setTimeout(r, 3_000))]);
  process.exit(0);
}

main().catch((e) => fail(e instanceof StepFailure ? e.message : (e && e.stack) || String(e)));
