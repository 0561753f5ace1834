#!/usr/bin/env node
// End-to-end test of the web UI in Debian's Chromium (playwright-core, no browser download),
// against the real `gpt-load` binary with a mock upstream:
//   log in → change a setting → create a group with two upstreams → add 1000 keys and watch the
//   task → proxied requests → Logs (filters, detail, CSV export) → Dashboard chart → a key failing
//   until blacklisted shows as invalid → reorder groups → aggregate group → a group's models for the
//   native routes → an access key (shown once, copied, used on /v1/chat/completions within its
//   filters) → the route inspector (candidates, groups left out and why) → the Models page →
//   "Discover models" from the mock upstream → the access key disabled → exports never carry the
//   admin key → screenshots of every page in light and dark → log out.
// Every JSON answer of /api the browser receives is validated against master/openapi.json.
//
// Needs: ../target/debug/gpt-load and ../target/debug/mock-upstream (cargo build --bins), and
// /usr/bin/chromium. Builds ui/dist first when it is missing or older than the sources.
// Screenshots: ui/e2e/screenshots/. Env: GPT_LOAD_BIN, MOCK_UPSTREAM_BIN, CHROMIUM override paths;
// E2E_VERBOSE=1 prints the servers' output; E2E_KEEP_TMP=1 keeps the temporary database.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { SchemaChecker, freePort, startFlakyUpstream, startProcess, stopProcess, waitFor } from './lib.mjs';

const UI = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = resolve(UI, '..');
const BIN = process.env.GPT_LOAD_BIN ?? join(ROOT, 'target/debug/gpt-load');
const MOCK = process.env.MOCK_UPSTREAM_BIN ?? join(ROOT, 'target/debug/mock-upstream');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const DIST = join(UI, 'dist');
const SHOTS = join(UI, 'e2e/screenshots');
const AUTH_KEY = 'e2e-Adm1n#' + Math.random().toString(36).slice(2) + 'Zq9!xW';
const KEY_COUNT = 1000;
const HEADLESS_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Modification time of the newest UI source file. */
function newestSource() {
  const walk = (p) => (statSync(p).isDirectory() ? readdirSync(p).map((f) => walk(join(p, f))).flat() : [statSync(p).mtimeMs]);
  return Math.max(...[join(UI, 'src'), join(UI, 'index.html'), join(UI, 'public'), join(ROOT, 'master/openapi.json')].filter(existsSync).flatMap(walk));
}

let passed = 0;
let failed = 0;
const procs = [];
let flaky;
let browser;
let tmp;
let currentPage;

function log(msg) {
  console.log(msg);
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    log(`  ✓ ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    await currentPage?.screenshot({ path: join(SHOTS, `failed-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`), fullPage: true }).catch(() => {});
    log(`  ✗ ${name}\n    ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n    ')}`);
    throw e;
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function cleanup() {
  await browser?.close().catch(() => {});
  for (const p of procs.reverse()) await stopProcess(p);
  await flaky?.close().catch(() => {});
  if (tmp && !process.env.E2E_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
}

process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => cleanup().then(() => process.exit(143)));

async function main() {
  for (const [what, path] of [
    ['gpt-load binary (cargo build --bins)', BIN],
    ['mock-upstream binary (cargo build --bins)', MOCK],
    ['Chromium', CHROMIUM],
  ]) {
    if (!existsSync(path)) throw new Error(`missing ${what}: ${path}`);
  }
  if (!existsSync(join(DIST, 'index.html')) || process.env.E2E_BUILD || newestSource() > statSync(join(DIST, 'index.html')).mtimeMs) {
    log('building the UI (npm run build): ui/dist is missing or older than the sources…');
    execFileSync('npm', ['run', 'build'], { cwd: UI, stdio: 'inherit' });
  }
  mkdirSync(SHOTS, { recursive: true });
  tmp = mkdtempSync(join(tmpdir(), 'gpt-load-e2e-'));
  const openapi = JSON.parse(readFileSync(join(ROOT, 'master/openapi.json'), 'utf8'));
  const schema = new SchemaChecker(openapi);

  // ---- servers ---------------------------------------------------------------------------
  const mockPort = await freePort();
  const mock = await startProcess('mock-upstream', MOCK, ['--port', String(mockPort)]);
  procs.push(mock);
  const mockUrl = `http://${mock.line.split('listening on ')[1].trim()}`;
  flaky = await startFlakyUpstream();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // cwd = repository root: the binary also finds `ui/dist` there if it ignores UI_DIR.
  const server = await startProcess('gpt-load', BIN, [], {
    cwd: ROOT,
    env: { AUTH_KEY, PORT: String(port), HOST: '127.0.0.1', DATABASE_DSN: join(tmp, 'gpt-load.db'), UI_DIR: DIST },
  });
  procs.push(server);
  log(`gpt-load on ${base}, mock upstream on ${mockUrl}, failing upstream on ${flaky.url}`);

  const admin = async (path, init = {}) => {
    const r = await fetch(base + path, { ...init, headers: { Authorization: `Bearer ${AUTH_KEY}`, 'Content-Type': 'application/json', ...init.headers } });
    const body = await r.json();
    if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(body)}`);
    return body.data;
  };

  // ---- browser ---------------------------------------------------------------------------
  browser = await chromium.launch({ executablePath: CHROMIUM, args: HEADLESS_ARGS });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', colorScheme: 'light', acceptDownloads: true });
  const page = await context.newPage();
  currentPage = page;
  page.setDefaultTimeout(20_000);
  const pageErrors = [];
  const apiUrls = [];
  const pending = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) pageErrors.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => apiUrls.push(r.url()));
  page.on('response', (r) => {
    const url = new URL(r.url());
    if (!url.pathname.startsWith('/api/') || !(r.headers()['content-type'] ?? '').includes('application/json')) return;
    const method = r.request().method();
    pending.push(
      r
        .json()
        .then((body) => schema.check(method, url.pathname, r.status(), body))
        .catch(() => {}),
    );
  });

  const goto = async (path) => {
    await page.goto(base + path);
    await page.waitForLoadState('networkidle');
  };
  const shot = async (name) => {
    await page.waitForTimeout(350);
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  };
  const clickText = (text, within = 'body') => page.locator(within).getByText(text, { exact: true }).first().click();
  // A dropdown option is clicked once its menu has stopped moving: a click during the menu's
  // enter or leave transition can land beside the option on a busy machine.
  const dropdownPick = async (text) => {
    const option = page.locator('.n-dropdown-option').filter({ hasText: text }).first();
    await option.waitFor();
    await page.waitForFunction(() => !document.querySelector('.n-dropdown-menu[class*="transition-enter-active"], .n-dropdown-menu[class*="transition-leave-active"]'));
    await option.click();
  };
  const selectPick = (text) => page.locator('.n-base-select-option').filter({ hasText: text }).first().click();
  const messageShown = (text) => page.locator('.n-message').filter({ hasText: text }).first().waitFor();
  const fillInput = async (sel, value) => {
    await page.locator(sel).fill(value);
  };

  log('steps:');
  await step('login page rejects a wrong key and shows the server message', async () => {
    await goto('/keys');
    check(page.url().endsWith('/login?redirect=/keys'), `not redirected to login: ${page.url()}`);
    await fillInput('[data-test=login-key]', 'wrong-key');
    await page.click('[data-test=login-submit]');
    await page.getByText('Authentication failed', { exact: false }).first().waitFor();
    await shot('login-light');
  });

  await step('log in with AUTH_KEY (kept in sessionStorage only)', async () => {
    await fillInput('[data-test=login-key]', AUTH_KEY);
    await page.click('[data-test=login-submit]');
    // By path: a glob like '**/keys' also matches '/login?redirect=/keys', which would not wait.
    await page.waitForURL((u) => u.pathname === '/keys');
    const storage = await page.evaluate(() => ({ session: { ...sessionStorage }, local: { ...localStorage } }));
    check(Object.values(storage.session).includes(AUTH_KEY), 'key not in sessionStorage');
    check(!JSON.stringify(storage.local).includes(AUTH_KEY), 'key leaked into localStorage');
  });

  await step('settings: a bad value shows the 400 message, a good one is saved', async () => {
    await goto('/settings');
    await page.locator('[data-test=setting-input-failover_status_codes]').fill('999-100');
    await page.click('[data-test=settings-save]');
    await page.locator('[data-test=settings-error]').waitFor();
    const err = await page.locator('[data-test=settings-error]').innerText();
    check(/failover_status_codes/i.test(err), `unexpected error text: ${err}`);
    await page.click('text=Reset');
    await page.waitForLoadState('networkidle');
    // Logs are written at once from now on (the default batches them every minute).
    await page.locator('[data-test=setting-input-request_log_write_interval_minutes]').fill('0');
    await page.locator('[data-test=setting-input-request_log_write_interval_minutes]').blur();
    await page.click('[data-test=settings-save]');
    await messageShown('');
    await waitFor('the setting to be stored', async () => {
      const cats = await admin('/api/settings');
      return cats.flatMap((c) => c.settings).find((s) => s.key === 'request_log_write_interval_minutes')?.value === 0;
    });
  });

  let proxyKey = '';
  await step('create a standard group with two upstreams and a generated proxy key', async () => {
    await goto('/keys');
    await page.click('[data-test=create-group]');
    await dropdownPick('New standard group');
    const form = page.locator('[data-test=group-form]');
    await form.waitFor();
    await fillInput('[data-test=group-name]', 'e2e-main');
    await fillInput('[data-test=group-display-name]', 'E2E main');
    await fillInput('[data-test=group-test-model]', 'gpt-4.1-nano');
    await fillInput('[data-test=upstream-url-0]', mockUrl);
    // Second upstream: the "+" of the first row.
    await form.locator('[data-test=upstreams] .n-dynamic-input-item').first().locator('button').last().click();
    await fillInput('[data-test=upstream-url-1]', mockUrl.replace('127.0.0.1', 'localhost'));
    await page.locator('[data-test=upstream-weight-1]').fill('2');
    await page.click('[data-test=group-proxy-keys-generate]');
    proxyKey = await page.locator('[data-test=group-proxy-keys]').inputValue();
    check(/^sk-[A-Za-z0-9]{48}$/.test(proxyKey), `generated proxy key looks wrong: ${proxyKey}`);
    await shot('group-form-light');
    await page.click('[data-test=group-form-submit]');
    await form.waitFor({ state: 'hidden' });
    await page.locator('[data-test=group-item-e2e-main]').waitFor();
    const endpoint = await page.locator('[data-test=group-endpoint]').inputValue();
    check(endpoint.endsWith('/proxy/e2e-main'), `endpoint: ${endpoint}`);
    const g = (await admin('/api/groups')).find((x) => x.name === 'e2e-main');
    check(g.upstreams.length === 2 && g.upstreams[1].weight === 2, `upstreams: ${JSON.stringify(g.upstreams)}`);
  });

  await step(`add ${KEY_COUNT} keys and watch the import task finish`, async () => {
    const keys = Array.from({ length: KEY_COUNT }, (_, i) => `sk-e2e-${String(i).padStart(4, '0')}-${Math.random().toString(36).slice(2, 10)}`);
    await page.click('[data-test=keys-add]');
    // Paste box: the count of distinct keys updates as one types.
    await page.locator('[data-test=keys-textarea]').fill('sk-a sk-b,sk-a;sk-c');
    await page.locator('[data-test=keys-count]').filter({ hasText: '3 distinct keys' }).waitFor();
    // The 1000 keys go in as a .txt upload (multipart add-async).
    await page.locator('.n-tabs-tab').filter({ hasText: 'Upload a .txt file' }).click();
    await page.locator('[data-test=keys-add-modal] input[type=file]').setInputFiles({ name: 'keys.txt', mimeType: 'text/plain', buffer: Buffer.from(keys.join('\n')) });
    await page.locator('.n-upload-file').filter({ hasText: 'keys.txt' }).waitFor();
    const statusPolls = [];
    const onReq = (r) => r.url().endsWith('/api/tasks/status') && statusPolls.push(Date.now());
    page.on('request', onReq);
    await page.click('[data-test=keys-modal-submit]');
    await page.locator('[data-test=task-indicator]').waitFor();
    await page.locator('.n-notification').filter({ hasText: `${KEY_COUNT} added` }).waitFor({ timeout: 60_000 });
    page.off('request', onReq);
    check(statusPolls.length >= 1, 'the task status was never polled');
    await page.locator('[data-test=group-key-total]').filter({ hasText: '1,000' }).waitFor();
    await page.locator('.n-data-table').getByText('1,000 keys').waitFor();
    await shot('keys-light');
  });

  await step('proxied requests through both upstreams succeed', async () => {
    for (let i = 0; i < 24; i++) {
      const r = await fetch(`${base}/proxy/e2e-main/v1/chat/completions`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${proxyKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: `hello ${i}` }] }),
      });
      const body = await r.json();
      check(r.status === 200, `proxy answered ${r.status}: ${JSON.stringify(body)}`);
      check(JSON.stringify(body).includes(`hello ${i}`), `unexpected body ${JSON.stringify(body)}`);
    }
  });

  await step('a key that keeps failing is blacklisted and shows as invalid', async () => {
    await goto('/keys');
    await page.click('[data-test=create-group]');
    await dropdownPick('New standard group');
    await fillInput('[data-test=group-name]', 'e2e-flaky');
    await fillInput('[data-test=group-test-model]', 'gpt-4.1-nano');
    await fillInput('[data-test=upstream-url-0]', flaky.url);
    await page.click('[data-test=group-proxy-keys-generate]');
    const flakyKey = await page.locator('[data-test=group-proxy-keys]').inputValue();
    await page.click('[data-test=group-form-submit]');
    await page.locator('[data-test=group-form]').waitFor({ state: 'hidden' });
    await page.locator('[data-test=group-item-e2e-flaky]').waitFor();
    await page.click('[data-test=keys-add]');
    await page.locator('[data-test=keys-textarea]').fill('sk-good-flaky-0001\nsk-bad-flaky-0001\nsk-good-flaky-0002');
    await page.click('[data-test=keys-modal-submit]');
    await page.locator('.n-notification').filter({ hasText: '3 added' }).waitFor({ timeout: 30_000 });
    for (let i = 0; i < 12; i++) {
      const r = await fetch(`${base}/proxy/e2e-flaky/v1/chat/completions`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${flakyKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] }),
      });
      await r.arrayBuffer();
    }
    await waitFor('the bad key to be marked invalid', async () => {
      const g = (await admin('/api/groups')).find((x) => x.name === 'e2e-flaky');
      const page1 = await admin(`/api/keys?group_id=${g.id}&status=invalid`);
      return page1.items.some((k) => k.key_value === 'sk-bad-flaky-0001');
    });
    await page.click('[data-test=keys-refresh]');
    await page.locator('[data-test=group-key-invalid]').filter({ hasText: /^1$/ }).waitFor();
    await page.locator('[data-test=key-status-filter]').click();
    await selectPick('Invalid');
    await page.locator('[data-test=key-status-invalid]').first().waitFor();
    check((await page.locator('[data-test=key-status-invalid]').count()) === 1, 'expected exactly one invalid key');
    check((await page.locator('[data-test=group-key-invalid]').innerText()).trim() === '1', 'group card does not count the invalid key');
    // Reveal it: the masked key becomes the real one.
    await page.locator('.keycell button').first().click();
    await page.locator('[data-test=key-value]').filter({ hasText: 'sk-bad-flaky-0001' }).waitFor();
    await shot('keys-blacklisted-light');
  });

  await step('validate all keys of a group as a task with live progress', async () => {
    await page.click('[data-test=keys-validate]');
    await dropdownPick('Validate all keys');
    await page.locator('.n-notification').filter({ hasText: '3 checked: 2 valid, 1 invalid' }).waitFor({ timeout: 60_000 });
  });

  await step('per-key actions: notes, test, restore', async () => {
    // The invalid filter is still on: one row, the bad key.
    await page.locator('.notes').first().click();
    await page.locator('.n-modal textarea').fill('rotated by the e2e test');
    await page.locator('.n-modal').getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('rotated by the e2e test').first().waitFor();
    await page.locator('[data-test=key-test]').first().click();
    await messageShown('The key failed');
    await page.locator('[data-test=key-restore]').first().click();
    await messageShown('Key restored');
    await page.locator('[data-test=key-status-filter]').click();
    await selectPick('All statuses');
    await page.locator('[data-test=key-status-active]').nth(2).waitFor();
    check((await page.locator('[data-test=key-status-invalid]').count()) === 0, 'the restored key is still invalid');
  });

  await step('copy a group with its keys, delete keys as a task, delete the copy by typing its name', async () => {
    await page.click('[data-test=group-copy]');
    await dropdownPick('Copy with all keys');
    await messageShown('Copied as e2e-flaky_copy');
    await page.locator('[data-test=group-item-e2e-flaky_copy]').waitFor();
    await page.locator('.n-notification').filter({ hasText: 'e2e-flaky_copy' }).filter({ hasText: '3 added' }).waitFor({ timeout: 30_000 });
    await page.click('[data-test=keys-refresh]');
    await page.locator('[data-test=group-key-total]').filter({ hasText: /^3$/ }).waitFor();
    await page.click('[data-test=keys-delete]');
    await page.locator('[data-test=keys-delete-modal] [data-test=keys-textarea]').fill('sk-good-flaky-0002');
    await page.locator('[data-test=keys-delete-modal] [data-test=keys-modal-submit]').click();
    await page.locator('.n-notification').filter({ hasText: '1 deleted' }).waitFor({ timeout: 30_000 });
    await page.locator('[data-test=group-key-total]').filter({ hasText: /^2$/ }).waitFor();
    for (const action of ['Restore all invalid keys', 'Delete invalid keys']) {
      await page.click('[data-test=keys-more]');
      await dropdownPick(action);
      await page.locator('.n-dialog').getByRole('button', { name: 'Confirm' }).click();
      await page.locator('.n-dialog').waitFor({ state: 'detached' });
    }
    await page.click('[data-test=keys-more]');
    await dropdownPick('Delete all keys');
    await page.locator('[data-test=confirm-name-input]').fill('e2e-flaky_copy');
    await page.click('[data-test=confirm-name-submit]');
    await page.locator('[data-test=group-key-total]').filter({ hasText: /^0$/ }).waitFor();
    await page.click('[data-test=group-delete]');
    await page.locator('[data-test=confirm-name-submit]').waitFor();
    check(await page.locator('[data-test=confirm-name-submit]').isDisabled(), 'delete enabled before the name was typed');
    await page.locator('[data-test=confirm-name-input]').fill('e2e-flaky_copy');
    await page.click('[data-test=confirm-name-submit]');
    await page.locator('[data-test=group-item-e2e-flaky_copy]').waitFor({ state: 'detached' });
    check(!(await admin('/api/groups')).some((g) => g.name === 'e2e-flaky_copy'), 'the copy still exists');
  });

  await step('edit a group: overrides, header rule, model redirect, parameter overrides', async () => {
    await page.locator('[data-test=group-item-e2e-main]').click();
    await page.click('[data-test=group-edit]');
    const form = page.locator('[data-test=group-form]');
    await form.waitFor();
    check((await page.locator('[data-test=group-name]').inputValue()) === 'e2e-main', 'edit form not filled');
    for (const section of ['Setting overrides', 'Header rules', 'Model redirects', 'Parameter overrides']) {
      await form.locator('.n-collapse-item__header').filter({ hasText: section }).click();
    }
    await form.getByRole('button', { name: 'Add an override' }).click();
    await form.locator('.n-collapse-item').filter({ hasText: 'Setting overrides' }).locator('.n-base-selection').first().click();
    await selectPick('Max Retries');
    await form.getByRole('button', { name: 'Add a header rule' }).click();
    await form.getByPlaceholder('X-Custom-Header').fill('X-Test-Header');
    await form.locator('.n-collapse-item').filter({ hasText: 'Header rules' }).locator('input[placeholder="${API_KEY}"]').fill('yes');
    await form.getByRole('button', { name: 'Add a redirect' }).click();
    await form.getByPlaceholder('Requested model').fill('gpt-4o');
    await form.getByPlaceholder('Model sent upstream').fill('gpt-4.1-nano');
    await page.locator('[data-test=param-overrides]').fill('{"temperature": 0.3');
    await page.click('[data-test=group-form-submit]');
    await form.getByText('This is not valid JSON').first().waitFor();
    await page.locator('[data-test=param-overrides]').fill('{"temperature": 0.3}');
    await shot('group-form-advanced-light');
    await page.click('[data-test=group-form-submit]');
    await form.waitFor({ state: 'hidden' });
    const g = (await admin('/api/groups')).find((x) => x.name === 'e2e-main');
    check(g.config?.max_retries === 3, `config ${JSON.stringify(g.config)}`);
    check(g.header_rules?.[0]?.key === 'X-Test-Header' && g.header_rules[0].value === 'yes', `header rules ${JSON.stringify(g.header_rules)}`);
    check(g.model_redirect_rules?.['gpt-4o'] === 'gpt-4.1-nano', `redirects ${JSON.stringify(g.model_redirect_rules)}`);
    check(g.param_overrides?.temperature === 0.3, `params ${JSON.stringify(g.param_overrides)}`);
    check(g.upstreams.length === 2, 'editing lost an upstream');
    const r = await fetch(`${base}/proxy/e2e-main/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${proxyKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'redirect me' }] }),
    });
    const body = await r.json();
    check(r.status === 200 && body.model === 'gpt-4.1-nano', `redirected request: ${r.status} ${JSON.stringify(body).slice(0, 200)}`);
    await page.locator('.n-collapse-item__header').filter({ hasText: 'Model redirects (1)' }).click();
    await page.locator('[data-test=group-info]').getByText('gpt-4o').waitFor();
  });

  await step('exports download with the Authorization header, never the key in the URL', async () => {
    await page.locator('[data-test=group-item-e2e-main]').click();
    await page.locator('[data-test=group-key-total]').filter({ hasText: '1,000' }).waitFor();
    await page.click('[data-test=keys-more]');
    const [download] = await Promise.all([page.waitForEvent('download'), dropdownPick('Export all keys')]);
    check(download.suggestedFilename() === 'keys-e2e-main-all.txt', `file name ${download.suggestedFilename()}`);
    const text = readFileSync(await download.path(), 'utf8');
    check(text.trim().split('\n').length === KEY_COUNT, `exported ${text.trim().split('\n').length} keys`);
  });

  await step('logs show the requests, filter by group, open the detail drawer and export CSV', async () => {
    await goto('/logs');
    await page.locator('[data-test=log-row]').first().waitFor();
    await page.locator('[data-test=log-filter-group]').fill('e2e-main');
    await page.click('[data-test=log-search]');
    await page.waitForLoadState('networkidle');
    await page.locator('.n-data-table').getByText('25 requests').waitFor();
    await page.locator('[data-test=log-filter-group]').fill('');
    await page.locator('[data-test=log-filter-success]').click();
    await selectPick('Failure');
    await page.click('[data-test=log-search]');
    await page.waitForLoadState('networkidle');
    await page.locator('[data-test=log-row]').first().waitFor();
    await page.locator('[data-test=log-row]').first().click();
    await page.locator('[data-test=log-drawer]').waitFor();
    check((await page.locator('[data-test=log-error]').innerText()).length > 0, 'failed request has no error text');
    await shot('log-detail-light');
    await page.keyboard.press('Escape');
    await page.locator('[data-test=log-drawer]').waitFor({ state: 'hidden' });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-test=log-export]')]);
    const csv = readFileSync(await download.path(), 'utf8');
    check(csv.startsWith('key_value,group_name,status_code'), `csv: ${csv.slice(0, 80)}`);
    check(csv.includes('sk-bad-flaky-0001,e2e-flaky,401'), `csv misses the failing key: ${csv}`);
    // Column chooser: add the upstream column.
    await page.click('[data-test=log-columns]');
    await page.locator('.n-base-select-option').filter({ hasText: 'Upstream' }).click();
    await page.keyboard.press('Escape');
    await page.locator('.n-data-table-th').filter({ hasText: 'Upstream' }).waitFor();
  });

  await step('dashboard shows the traffic in the chart, for all groups and per group', async () => {
    await goto('/dashboard');
    await page.locator('[data-test=chart-totals]').waitFor();
    const totals = await page.locator('[data-test=chart-totals]').innerText();
    const success = Number(/Success:\s*([\d,]+)/.exec(totals)?.[1].replace(/,/g, ''));
    check(success >= 36, `chart success total ${success} (${totals})`);
    check(/Failed:\s*0/.test(totals), `final attempts should all have succeeded: ${totals}`);
    const rpm = await page.locator('[data-test=stat-value]').nth(1).innerText();
    check(Number(rpm) > 0, `rpm ${rpm}`);
    await page.locator('[data-test=security-banner]').waitFor();
    await page.locator('[data-test=chart-group]').click();
    await selectPick('e2e-flaky');
    await page.waitForLoadState('networkidle');
    await page.locator('[data-test=chart-totals]').filter({ hasText: /Success:\s*12(?!\d)/ }).waitFor();
    await page.locator('[data-test=chart-group]').click();
    await selectPick('All groups');
  });

  await step('drag to reorder groups is saved', async () => {
    await goto('/keys');
    const before = (await admin('/api/groups')).map((g) => g.name);
    const [first, second] = before;
    await page.locator(`[data-test=group-item-${second}]`).dragTo(page.locator(`[data-test=group-item-${first}]`));
    await messageShown('Order saved');
    const after = (await admin('/api/groups')).map((g) => g.name);
    check(after[0] === second && after[1] === first, `order before ${before}, after ${after}`);
    const shown = await page.locator('[data-test^=group-item-]').evaluateAll((els) => els.map((e) => e.getAttribute('data-test')));
    check(shown[0] === `group-item-${second}`, `list shows ${shown}`);
  });

  await step('aggregate group with a weighted sub-group', async () => {
    await page.click('[data-test=create-group]');
    await dropdownPick('New aggregate group');
    await fillInput('[data-test=group-name]', 'e2e-agg');
    await page.click('[data-test=group-form-submit]');
    await page.locator('[data-test=group-form]').waitFor({ state: 'hidden' });
    await page.locator('[data-test=sub-group-table]').waitFor();
    await page.click('[data-test=sub-groups-add]');
    await page.locator('.n-modal .n-dynamic-input .n-base-selection').first().click();
    await selectPick('e2e-main');
    await page.locator('.n-modal').getByRole('button', { name: 'Add', exact: true }).click();
    await page.locator('[data-test=sub-group-table]').getByText('100.0%').waitFor();
    await page.click('[data-test=sub-groups-add]');
    await page.locator('.n-modal .n-dynamic-input .n-base-selection').first().click();
    await selectPick('e2e-flaky');
    await page.locator('.n-modal').getByRole('button', { name: 'Add', exact: true }).click();
    await page.locator('[data-test=sub-group-table]').getByText('50.0%').first().waitFor();
    await page.locator('[data-test=sub-group-table] [aria-label="Edit weight"]').first().click();
    await page.locator('.n-modal input').last().fill('300');
    await page.locator('.n-modal').getByText('About 75.0%').waitFor();
    await page.locator('.n-modal').getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('[data-test=sub-group-table]').getByText('75.0%').waitFor();
    await shot('keys-aggregate-members-light');
    await page.locator('[data-test=sub-group-table] [aria-label="Remove"]').last().click();
    await page.locator('.n-popconfirm').getByRole('button', { name: 'Remove' }).click();
    await page.locator('[data-test=sub-group-table]').getByText('100.0%').waitFor();
  });

  // ---- native routes and access keys -----------------------------------------------------
  const chat = async (key, model) => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: `native ${model}` }] }),
    });
    return { status: r.status, text: await r.text() };
  };
  const accessKeyRow = (name) => page.locator(`[data-test=access-key-row][data-name="${name}"]`);
  /** Types into a tag input (TagInput.vue): its text box shows once the field is clicked. */
  const typeTag = async (testId, text, { enter = true } = {}) => {
    await page.locator(`[data-test=${testId}-select]`).click();
    await page.keyboard.type(text);
    if (enter) await page.keyboard.press('Enter');
  };

  await step('the group form gives a group models, priority and weight for the native routes', async () => {
    await goto('/keys');
    await page.locator('[data-test=group-item-e2e-main]').click();
    await page.click('[data-test=group-edit]');
    const form = page.locator('[data-test=group-form]');
    await form.waitFor();
    await form.getByText('reachable only through /proxy/e2e-main').waitFor();
    await typeTag('group-models', 'e2e-chat-*');
    // Typed but not entered: leaving the field keeps it as a tag too.
    await typeTag('group-models', 'e2e-extra', { enter: false });
    await fillInput('[data-test=group-priority]', '1');
    await fillInput('[data-test=group-weight]', '3');
    await page.locator('[data-test=group-models-select] .n-tag').filter({ hasText: 'e2e-extra' }).waitFor();
    await shot('group-form-routing-light');
    await page.click('[data-test=group-form-submit]');
    await form.waitFor({ state: 'hidden' });
    const g = (await admin('/api/groups')).find((x) => x.name === 'e2e-main');
    check(JSON.stringify(g.models) === '["e2e-chat-*","e2e-extra"]' && g.priority === 1 && g.weight === 3, `routing ${JSON.stringify([g.models, g.priority, g.weight])}`);
    await page.locator('[data-test=group-routing-summary]').filter({ hasText: 'priority 1 · weight 3' }).waitFor();
    if (!(await page.locator('[data-test=group-models-value]').isVisible())) {
      await page.locator('[data-test=group-info] .n-collapse-item__header').filter({ hasText: 'Details' }).click();
    }
    await page.locator('[data-test=group-models-value]').getByText('e2e-chat-*').waitFor();
    check((await page.locator('[data-test=group-priority-value]').innerText()).trim() === '1', 'the detail does not show the priority');
    check((await page.locator('[data-test=group-weight-value]').innerText()).trim() === '3', 'the detail does not show the weight');
    // A second group serves another model; the access key below may not use it.
    const flakyGroup = (await admin('/api/groups')).find((x) => x.name === 'e2e-flaky');
    await admin(`/api/groups/${flakyGroup.id}`, { method: 'PUT', body: JSON.stringify({ models: ['e2e-other'] }) });
  });

  let accessKey = '';
  await step('create an access key with a group filter: the whole key is shown once and copied', async () => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await page.click('[data-test=nav-accessKeys]');
    await page.waitForURL((u) => u.pathname === '/access-keys');
    await page.locator('[data-test=access-key-table]').getByText('No access keys yet').waitFor();
    await page.click('[data-test=access-key-create]');
    const form = page.locator('[data-test=access-key-form]');
    await form.waitFor();
    await fillInput('[data-test=access-key-name]', 'e2e-agent');
    await page.locator('[data-test=access-key-groups]').click();
    await selectPick('e2e-main');
    await page.locator('[data-test=access-key-protocols]').click();
    await page.locator('.n-base-select-option').filter({ hasText: /^openai$/ }).click();
    await typeTag('access-key-ips', '127.0.0.0/8');
    await page.locator('[data-test=access-key-expires]').click();
    await page.locator('.n-date-panel').getByRole('button', { name: 'In 1 year' }).click();
    await page.locator('.n-date-panel').waitFor({ state: 'hidden' });
    await shot('access-key-form-light');
    await page.click('[data-test=access-key-form-submit]');
    await form.waitFor({ state: 'hidden' });
    const created = page.locator('[data-test=access-key-created]');
    await created.waitFor();
    await created.getByText('This is the only time the whole key is shown').waitFor();
    const shown = await page.locator('[data-test=access-key-created-value]').inputValue();
    check(/^sk-gl-[A-Za-z0-9]{40}$/.test(shown), `generated access key looks wrong: ${shown}`);
    await page.click('[data-test=access-key-copy]');
    await messageShown('Copied');
    accessKey = await page.evaluate(() => navigator.clipboard.readText());
    check(accessKey === shown, `the clipboard holds ${accessKey}, not the shown key`);
    await shot('access-key-created-light');
    await page.click('[data-test=access-key-created-done]');
    await created.waitFor({ state: 'hidden' });
    const row = accessKeyRow('e2e-agent');
    await row.waitFor();
    const masked = `${accessKey.slice(0, 10)}…${accessKey.slice(-4)}`;
    check((await row.locator('[data-test=access-key-masked]').innerText()).trim() === masked, `the list shows ${await row.locator('[data-test=access-key-masked]').innerText()}, not ${masked}`);
    check((await row.innerText()).includes('e2e-main') && (await row.innerText()).includes('openai'), `filters not shown: ${await row.innerText()}`);
    check(!(await page.content()).includes(accessKey), 'the whole key is still on the page');
    const k = (await admin('/api/access-keys')).find((x) => x.name === 'e2e-agent');
    const mainId = (await admin('/api/groups')).find((x) => x.name === 'e2e-main').id;
    check(k.key === masked, `the API lists ${k.key}`);
    check(JSON.stringify(k.filters) === JSON.stringify({ groups: [mainId], models: [], protocols: ['openai'] }), `filters ${JSON.stringify(k.filters)}`);
    check(JSON.stringify(k.allowed_ips) === '["127.0.0.0/8"]', `allowed_ips ${JSON.stringify(k.allowed_ips)}`);
    const days = (Date.parse(k.expires_at) - Date.now()) / 86_400_000;
    check(days > 360 && days < 370, `expires_at ${k.expires_at}`);
  });

  await step('the access key reaches its group on /v1/chat/completions; a model outside its filter is 403', async () => {
    const ok = await waitFor('the access key to be served', async () => {
      const r = await chat(accessKey, 'e2e-chat-1');
      return r.status === 200 ? r : null;
    }, { timeoutMs: 10_000 });
    check(ok.text.includes('native e2e-chat-1'), `unexpected answer ${ok.text.slice(0, 200)}`);
    // e2e-other is served only by e2e-flaky, which the key's group filter leaves out.
    const refused = await waitFor('the filter to refuse e2e-other', async () => {
      const r = await chat(accessKey, 'e2e-other');
      return r.status === 403 ? r : null;
    }, { timeoutMs: 10_000 });
    check(JSON.parse(refused.text).error?.message, `403 without an OpenAI-shaped error: ${refused.text}`);
    check(flaky.count() > 0, 'sanity: the failing upstream saw the earlier requests');
    const before = flaky.count();
    await chat(accessKey, 'e2e-other');
    check(flaky.count() === before, 'a refused request reached an upstream');
  });

  await step("the access key's requests are counted, and its logs found by its name", async () => {
    await waitFor('the request to be counted', async () => (await admin('/api/access-keys')).find((x) => x.name === 'e2e-agent').request_count >= 1, { timeoutMs: 20_000 });
    await page.click('[data-test=access-keys-refresh]');
    await accessKeyRow('e2e-agent').locator('[data-test=access-key-requests]').filter({ hasText: /^[1-9]/ }).waitFor();
    await goto('/logs');
    await page.locator('[data-test=log-filter-access-key]').fill('e2e-agent');
    await page.click('[data-test=log-search]');
    await page.waitForLoadState('networkidle');
    await page.locator('[data-test=log-row]').first().waitFor();
    const rows = await page.locator('[data-test=log-row]').allInnerTexts();
    check(rows.length >= 1 && rows.every((r) => r.includes('e2e-agent') && r.includes('e2e-main')), `log rows: ${rows.join(' | ')}`);
  });

  await step('the route inspector: the group is a candidate for its model, the others are left out with a reason', async () => {
    await page.click('[data-test=nav-routeInspector]');
    await page.waitForURL((u) => u.pathname === '/route-inspector');
    await page.locator('[data-test=inspect-key]').click();
    await selectPick('e2e-agent');
    await page.locator('[data-test=inspect-protocol-openai]').click();
    await fillInput('[data-test=inspect-model]', 'e2e-chat-1');
    await page.click('[data-test=inspect-submit]');
    const verdict = page.locator('[data-test=route-verdict]');
    await verdict.filter({ hasText: 'Allowed' }).waitFor();
    const candidate = page.locator('[data-test=route-candidate][data-name=e2e-main]');
    await candidate.waitFor();
    check((await page.locator('[data-test=route-candidate]').count()) === 1, 'more than one candidate');
    const cells = await candidate.locator('td').allInnerTexts();
    // #, tier, group, channel, priority, weight, share, active keys, cooling.
    check(cells[1] === '0' && cells[3] === 'openai' && cells[4] === '1' && cells[5] === '3' && cells[6] === '100%' && cells[7] === '1,000', `candidate ${cells.join(' | ')}`);
    await page.locator('[data-test=route-excluded][data-name=e2e-flaky]').getByText('Does not serve model e2e-chat-1').waitFor();
    await page.locator('[data-test=route-excluded][data-name=e2e-agg]').getByText('Aggregate group: reachable only through /proxy/e2e-agg').waitFor();
    const key = (await admin('/api/access-keys')).find((x) => x.name === 'e2e-agent');
    check(new URL(page.url()).search === `?model=e2e-chat-1&protocol=openai&key=${key.id}`, `the URL does not keep the question: ${page.url()}`);
    await shot('route-inspector-access-key-light');
    // e2e-other is served only by e2e-flaky, which the key's group filter leaves out.
    await fillInput('[data-test=inspect-model]', 'e2e-other');
    await page.click('[data-test=inspect-submit]');
    await verdict.filter({ hasText: 'No group can take this request' }).waitFor();
    await page.locator('[data-test=route-excluded][data-name=e2e-flaky]').getByText('The access key’s group filter excludes it').waitFor();
    check((await page.locator('[data-test=route-candidate]').count()) === 0, 'a candidate for a model outside the filter');
  });

  await step('the models page lists every routable model with its groups, and opens the inspector', async () => {
    await page.click('[data-test=nav-models]');
    await page.waitForURL((u) => u.pathname === '/models');
    const row = (model) => page.locator(`[data-test=model-row][data-model="${model}"]`);
    await row('e2e-chat-*').waitFor();
    const models = await page.locator('[data-test=model-row]').evaluateAll((els) => els.map((e) => e.getAttribute('data-model')));
    check(JSON.stringify(models) === JSON.stringify(['e2e-chat-*', 'e2e-extra', 'e2e-other', 'gpt-4o']), `models ${JSON.stringify(models)}`);
    const main = row('e2e-extra').locator('[data-test=model-server][data-group=e2e-main]');
    check(/E2E main.*openai.*priority 1 · weight 3/s.test(await main.innerText()), `e2e-extra served by: ${await main.innerText()}`);
    // The model redirect gpt-4o → gpt-4.1-nano makes gpt-4o an alias of e2e-main.
    await row('gpt-4o').locator('[data-test=model-server][data-group=e2e-main]').getByText('alias → gpt-4.1-nano').waitFor();
    await row('e2e-other').locator('[data-test=model-server][data-group=e2e-flaky]').waitFor();
    await fillInput('[data-test=models-search]', 'flaky');
    await page.locator('[data-test=model-row]').nth(1).waitFor({ state: 'detached' });
    check((await page.locator('[data-test=model-row]').count()) === 1, 'the search does not filter by group');
    await fillInput('[data-test=models-search]', '');
    await shot('models-light');
    await row('e2e-extra').locator('[data-test=model-link]').click();
    await page.waitForURL((u) => u.pathname === '/route-inspector' && u.searchParams.get('model') === 'e2e-extra' && u.searchParams.get('protocol') === 'openai');
    await page.locator('[data-test=route-verdict]').filter({ hasText: 'Allowed' }).waitFor();
    await page.locator('[data-test=route-candidate][data-name=e2e-main]').waitFor();
    check((await page.locator('[data-test=inspect-model]').inputValue()) === 'e2e-extra', 'the inspector is not filled with the model');
  });

  await step('"Discover models" lists the mock upstream\'s models and Apply fills the models field', async () => {
    await goto('/keys');
    await page.locator('[data-test=group-item-e2e-main]').click();
    await page.click('[data-test=group-edit]');
    const form = page.locator('[data-test=group-form]');
    await form.waitFor();
    await page.click('[data-test=group-models-discover]');
    const modal = page.locator('[data-test=discover-modal]');
    await modal.waitFor();
    await modal.locator('[data-test=discover-item]').first().waitFor();
    const listed = await modal.locator('[data-test=discover-item]').evaluateAll((els) => els.map((e) => e.getAttribute('data-model')));
    const expected = ['gpt-4.1', 'gpt-4.1-mini', 'gpt-4o', 'gpt-4o-mini', 'o3-mini', 'text-embedding-3-small'];
    check(JSON.stringify(listed) === JSON.stringify(expected), `discovered ${JSON.stringify(listed)}`);
    await modal.locator('[data-test=discover-count]').filter({ hasText: '6 of 6 selected' }).waitFor();
    await shot('group-discover-light');
    await modal.locator('[data-test=discover-item][data-model=text-embedding-3-small]').click();
    await modal.locator('[data-test=discover-count]').filter({ hasText: '5 of 6 selected' }).waitFor();
    await page.click('[data-test=discover-apply]');
    await modal.waitFor({ state: 'hidden' });
    await messageShown('5 model(s) added');
    const tags = await page.locator('[data-test=group-models-select] .n-tag').allInnerTexts();
    const want = ['e2e-chat-*', 'e2e-extra', ...expected.slice(0, 5)];
    check(JSON.stringify(tags.map((s) => s.trim())) === JSON.stringify(want), `the field holds ${JSON.stringify(tags)}`);
    await page.click('[data-test=group-form-submit]');
    await form.waitFor({ state: 'hidden' });
    const g = (await admin('/api/groups')).find((x) => x.name === 'e2e-main');
    check(JSON.stringify(g.models) === JSON.stringify(want), `saved models ${JSON.stringify(g.models)}`);
  });

  await step('"Discover models" is off while a group is being created', async () => {
    const form = page.locator('[data-test=group-form]');
    await page.click('[data-test=create-group]');
    await dropdownPick('New standard group');
    await form.waitFor();
    check(await page.locator('[data-test=group-models-discover]').isDisabled(), 'discovery is enabled for an unsaved group');
    await form.getByRole('button', { name: 'Cancel' }).click();
    await form.waitFor({ state: 'hidden' });
  });

  await step('disabling the access key in the UI refuses it with 401', async () => {
    await goto('/access-keys');
    const row = accessKeyRow('e2e-agent');
    await row.locator('[data-test=access-key-toggle]').click();
    await messageShown('Access key disabled');
    await row.locator('[data-test=access-key-toggle][aria-checked=false]').waitFor();
    await waitFor('the disabled key to be refused', async () => (await chat(accessKey, 'e2e-chat-1')).status === 401, { timeoutMs: 10_000 });
    check((await admin('/api/access-keys')).find((x) => x.name === 'e2e-agent').status === 'disabled', 'the key is not disabled');
  });

  await step('access keys: a custom key, the server refusing a duplicate, edit, delete', async () => {
    const form = page.locator('[data-test=access-key-form]');
    const custom = 'sk-e2e-custom-key-0001';
    for (const attempt of [1, 2]) {
      await page.click('[data-test=access-key-create]');
      await form.waitFor();
      await fillInput('[data-test=access-key-name]', 'e2e-custom');
      await fillInput('[data-test=access-key-custom]', custom);
      await page.click('[data-test=access-key-form-submit]');
      if (attempt === 1) {
        await form.waitFor({ state: 'hidden' });
        check((await page.locator('[data-test=access-key-created-value]').inputValue()) === custom, 'the custom key is not the one shown');
        await page.click('[data-test=access-key-created-done]');
      }
    }
    // The second time the server answers 409; its message stays in the form.
    const error = page.locator('[data-test=access-key-form-error]');
    await error.waitFor();
    check((await error.innerText()).trim().length > 0, 'the refusal shows no message');
    await form.getByRole('button', { name: 'Cancel' }).click();
    await form.waitFor({ state: 'hidden' });
    check((await admin('/api/access-keys')).filter((x) => x.name === 'e2e-custom').length === 1, 'the duplicate was created');

    await accessKeyRow('e2e-custom').locator('[data-test=access-key-edit]').click();
    await form.waitFor();
    check((await page.locator('[data-test=access-key-name]').inputValue()) === 'e2e-custom', 'edit form not filled');
    check((await page.locator('[data-test=access-key-custom]').count()) === 0, 'the key is editable');
    await fillInput('[data-test=access-key-name]', 'e2e-custom-2');
    await typeTag('access-key-models', 'gpt-*');
    await page.click('[data-test=access-key-form-submit]');
    await form.waitFor({ state: 'hidden' });
    await accessKeyRow('e2e-custom-2').getByText('gpt-*').waitFor();
    check((await accessKeyRow('e2e-custom-2').locator('[data-test=access-key-masked]').innerText()).trim() === 'sk-e…0001', 'the custom key is not masked');

    await accessKeyRow('e2e-custom-2').locator('[data-test=access-key-delete]').click();
    await page.locator('.n-dialog').getByText('Delete e2e-custom-2?').waitFor();
    await page.locator('.n-dialog').getByRole('button', { name: 'Delete' }).click();
    await accessKeyRow('e2e-custom-2').waitFor({ state: 'detached' });
    check(!(await admin('/api/access-keys')).some((x) => x.name.startsWith('e2e-custom')), 'the key still exists');
  });

  await step('every JSON answer matches master/openapi.json', async () => {
    await Promise.all(pending);
    check(schema.checked.size >= 20, `only ${schema.checked.size} kinds of answers seen`);
    const seen = new Set([...schema.checked.keys()].map((k) => k.split(' → ')[0]));
    const all = Object.entries(openapi.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => m !== 'parameters').map((m) => `${m.toUpperCase()} ${p}`));
    log(`    ${schema.checked.size} kinds of answers checked; operations with no JSON answer seen: ${all.filter((o) => !seen.has(o)).join(', ') || 'none'}`);
    if (schema.failures.length) throw new Error(`${schema.failures.length} answers do not match:\n    ${[...new Set(schema.failures)].join('\n    ')}`);
  });

  await step('no page errors, and the admin key never appeared in a URL', async () => {
    check(!apiUrls.some((u) => u.includes(encodeURIComponent(AUTH_KEY)) || u.includes(AUTH_KEY)), 'the admin key appeared in a request URL');
    check(pageErrors.length === 0, `page errors:\n    ${pageErrors.join('\n    ')}`);
  });

  await step('screenshots of every page in light and dark themes', async () => {
    for (const theme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: theme });
      for (const [name, path] of [
        ['dashboard', '/dashboard'],
        ['keys', '/keys?group=' + (await admin('/api/groups')).find((g) => g.name === 'e2e-main').id],
        ['keys-aggregate', '/keys?group=' + (await admin('/api/groups')).find((g) => g.name === 'e2e-agg').id],
        ['access-keys', '/access-keys'],
        ['models', '/models'],
        ['route-inspector', '/route-inspector?model=e2e-chat-1&protocol=openai'],
        ['logs', '/logs'],
        ['settings', '/settings'],
      ]) {
        await goto(path);
        if (name === 'dashboard') await page.locator('[data-test=chart-totals]').waitFor();
        if (name === 'route-inspector') await page.locator('[data-test=route-verdict]').waitFor();
        await shot(`${name}-${theme}`);
      }
      const isDark = await page.evaluate(() => document.documentElement.dataset.theme);
      check(isDark === theme, `theme is ${isDark}, expected ${theme}`);
    }
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('switch language to 中文 and 日本語', async () => {
    await goto('/dashboard');
    await page.click('[data-test=locale-switch]');
    await dropdownPick('简体中文');
    await page.getByText('仪表盘').first().waitFor();
    await shot('dashboard-zh-CN');
    // The inspector's reasons come from the server in English; the UI shows them in its language.
    await goto('/route-inspector?model=e2e-chat-1&protocol=openai');
    await page.locator('[data-test=route-verdict]').filter({ hasText: '允许' }).waitFor();
    await page.locator('[data-test=route-excluded][data-name=e2e-flaky]').getByText('不提供模型 e2e-chat-1').waitFor();
    await shot('route-inspector-zh-CN');
    await page.click('[data-test=locale-switch]');
    await dropdownPick('日本語');
    await page.getByText('ダッシュボード').first().waitFor();
    await page.click('[data-test=locale-switch]');
    await dropdownPick('English');
    await page.getByText('Dashboard').first().waitFor();
  });

  await step('a rejected key (401) logs the user out', async () => {
    await page.evaluate(() => sessionStorage.setItem('gpt-load.auth-key', 'not-the-key'));
    await goto('/dashboard');
    await page.waitForURL((u) => u.pathname === '/login');
    await page.getByText('Your session ended').waitFor();
  });

  await step('log out', async () => {
    await fillInput('[data-test=login-key]', AUTH_KEY);
    await page.click('[data-test=login-submit]');
    await page.waitForURL((u) => u.pathname === '/dashboard');
    await page.click('[data-test=logout]');
    await page.waitForURL((u) => u.pathname === '/login');
    const session = await page.evaluate(() => ({ ...sessionStorage }));
    check(!Object.values(session).includes(AUTH_KEY), 'key still in sessionStorage after logout');
    await goto('/settings');
    check(page.url().includes('/login'), 'settings reachable after logout');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('login-dark');
  });
}

const started = Date.now();
main()
  .catch((e) => {
    if (!failed) {
      failed++;
      log(`  ✗ setup\n    ${String(e?.stack ?? e)}`);
    }
  })
  .finally(async () => {
    await cleanup();
    log(`\nscreenshots: ${SHOTS}`);
    log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    log(`e2e: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
