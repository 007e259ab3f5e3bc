import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { writeHtmlReport } from '../core/report';
import { buildSampleReport, HOSTILE_CLASS } from './support/report-fixture';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.csv': 'text/csv; charset=utf-8',
  '.json': 'application/json',
  '.md': 'text/markdown; charset=utf-8',
  '.tex': 'text/plain; charset=utf-8',
};

let dir: string;
let server: http.Server;
let base: string;
let context: BrowserContext;

/** Serves the report folder read-only on 127.0.0.1; anything outside it is a 404. */
function serve(root: string): Promise<http.Server> {
  const server = http.createServer(async (request, response) => {
    const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://127.0.0.1').pathname);
    const file = path.resolve(root, `.${pathname}`);
    try {
      if (!file.startsWith(root + path.sep)) throw new Error('outside the report');
      const body = await readFile(file);
      response.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `Chromium is missing at ${CHROMIUM}: install Debian's package with \`apt-get install -y chromium\` (this test drives it with playwright-core)`,
  );
  dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-browser-'));
  const { report } = await buildSampleReport(dir);
  const out = path.join(dir, 'report');
  await writeHtmlReport(out, report);
  server = await serve(out);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  // Fail fast: everything here is local and small.
  context.setDefaultTimeout(5000);
});

after(async () => {
  await context?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every problem the page reports: console errors, uncaught exceptions, failed or 4xx/5xx requests. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  // ERR_ABORTED is a request cancelled by leaving the page (lazy images still loading), not a fault;
  // missing files show up as HTTP errors below and as images that do not render.
  page.on('requestfailed', (request) => {
    const reason = request.failure()?.errorText;
    if (reason !== 'net::ERR_ABORTED') problems.push(`failed: ${request.url()} ${reason}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  return problems;
}

/**
 * Brings each (lazy) image into view and waits for it; returns [src, naturalWidth] per image. Page
 * scripts are passed as source text: the project compiles without the DOM library.
 */
async function loadImages(page: Page): Promise<[string, number][]> {
  return page.evaluate(`(async () => {
    const out = [];
    for (const image of Array.from(document.images)) {
      image.scrollIntoView();
      await image.decode().catch(() => undefined);
      out.push([image.getAttribute('src') ?? '', image.naturalWidth]);
    }
    return out;
  })()`);
}

async function assertImagesRender(page: Page, minimum: number): Promise<void> {
  const images = await loadImages(page);
  assert.ok(images.length >= minimum, `${page.url()}: ${images.length} images, expected at least ${minimum}`);
  const broken = images.filter(([, width]) => !(width > 0));
  assert.deepEqual(broken, [], `${page.url()}: images that did not render`);
}

test('the HTML report loads without errors, renders its images, navigates, and escapes names', async () => {
  const page = await context.newPage();
  const problems = watch(page);

  await page.goto(`${base}/index.html`);
  assert.equal(await page.textContent('h1'), 'Sweep sample');
  await assertImagesRender(page, 2);
  assert.equal(
    await page.locator('#failed + ul li').textContent(),
    'broken: extraction failed: <no such file>',
  );

  await page.click('table >> a:text-is("parts-synthetic")');
  await page.waitForURL('**/configurations/parts-synthetic/index.html');
  assert.equal(await page.textContent('h1'), 'parts-synthetic');
  await assertImagesRender(page, 9);
  // The class name is text, never markup: in the per-class table, and in the one of a configuration without it.
  assert.equal(
    await page.locator('#per-class tbody tr td:nth-child(2)').first().textContent(),
    HOSTILE_CLASS,
  );
  assert.equal(await page.locator('main b').count(), 0);
  const heading = await page.locator('h3[id^="explanation-"]').first().textContent();
  assert.ok(heading?.includes(`true ${HOSTILE_CLASS}`), `explanation heading: ${heading}`);

  // A top channel of the first explanation leads to its section on the channel page.
  const chip = page.locator('h3[id^="explanation-"] + p.chips a').first();
  const channel = await chip.textContent();
  await chip.click();
  await page.waitForURL(`**/channels-infodisent.html#channel-${channel}`);
  assert.equal(await page.locator(`section#channel-${channel} h3`).textContent(), `Channel ${channel}`);
  assert.equal(await page.evaluate("document.querySelector(':target')?.id"), `channel-${channel}`);
  await assertImagesRender(page, 1);

  await page.click('header.nav a:text-is("Sweep index")');
  await page.waitForURL('**/index.html');
  assert.equal(await page.textContent('h1'), 'Sweep sample');

  await page.goto(`${base}/configurations/parts-accuracy-only/index.html`);
  assert.equal(await page.textContent('h1'), 'parts-accuracy-only');
  assert.equal(await page.locator('#classes + ol li').first().textContent(), HOSTILE_CLASS);
  await page.close();
  assert.deepEqual(problems, []);
});
