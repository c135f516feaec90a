// render.mjs: renders pages the issuer served, as a person's browser shows them, to PNG files.
//
// The end-to-end test tests/e2e/screenshots.rs walks every journey (contractor, sign-in,
// approver, auditor) with the harness's HTTP browser and hands the HTML of each page it was
// served here; this script shows each in headless Chromium at the width of a desktop window and
// of a phone, keeps a full-page screenshot, and fails when a page is wider than the screen (a
// person would have to scroll sideways) or renders blank. The pages carry their styles inline,
// so the HTML alone renders as served.
//
//   node render.mjs --artifacts DIR --variant desktop|phone [--chromium /usr/bin/chromium]
//       < [{"name": "01-invite", "html": "<!doctype html>..."}, ...]
//
// Output: one JSON document on stdout listing the screenshots and their sizes; on failure a
// message on stderr naming the page, and exit status 1 (2 for bad arguments).

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { CHROMIUM_FLAGS, VARIANTS, pngSize } from './common.mjs';

function usage(message) {
  process.stderr.write(`render.mjs: ${message}\n`);
  process.exit(2);
}

const { values: args } = parseArgs({
  options: {
    artifacts: { type: 'string' },
    variant: { type: 'string', default: 'desktop' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
  strict: true,
});
if (!args.artifacts) usage('--artifacts is required');
const variant = VARIANTS[args.variant];
if (!variant) usage(`--variant must be one of ${Object.keys(VARIANTS).join(', ')}`);
let pages;
try {
  pages = JSON.parse(readFileSync(0, 'utf8'));
} catch (e) {
  usage(`stdin is not a JSON list of pages: ${e.message}`);
}
if (!Array.isArray(pages) || pages.length === 0) usage('no pages on stdin');

mkdirSync(args.artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'render-chromium-'));
let context;
const shots = [];
let current = '(launch)';
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 60_000,
    ...variant,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const expected = variant.viewport.width * (variant.deviceScaleFactor ?? 1);
  for (const { name, html } of pages) {
    current = name;
    await page.setContent(html, { waitUntil: 'load' });
    const path = join(args.artifacts, `${name}.png`);
    const png = await page.screenshot({ path, fullPage: true });
    const size = pngSize(png);
    if (size.width > expected) {
      throw new Error(`${name} is ${size.width}px wide on a ${expected}px screen (a person scrolls sideways)`);
    }
    const heading = (await page.locator('h1').first().textContent({ timeout: 2_000 }).catch(() => ''))?.trim();
    if (!heading) throw new Error(`${name} has no heading: did it render?`);
    shots.push({ name, heading, screenshot: path, ...size });
  }
  process.stdout.write(`${JSON.stringify({ variant: args.variant, shots }, null, 2)}\n`);
} catch (e) {
  process.stderr.write(`render.mjs: ${current}: ${e.message}\n`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
