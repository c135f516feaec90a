// signin.mjs: a person signs in through the issuer's pages in a real headless Chromium.
//
// It exists to prove that the device-flow pages work in a browser people use, not only for an
// HTTP client that posts forms (tests/harness/browser.rs): it opens the link the plugin printed,
// checks the code is prefilled, presses Continue, signs in, reads the consent page, approves, and
// keeps a full-page screenshot of every page. tests/e2e/browser.rs runs it; `bash tests/run.sh`
// installs what it needs (Debian's chromium, `npm ci --prefix tests/browser`).
//
//   node signin.mjs --url VERIFICATION_URI_COMPLETE --username NAME --ca ISSUER_CA_PEM \
//       --artifacts DIR --cluster NAME --client ID --address ADDR [--variant desktop|phone] \
//       [--warning BROWSER_ADDR] [--chromium /usr/bin/chromium]   < password on stdin (one line)
//
// Without --warning the consent page must show no alert and no confirmation box (the code was
// requested from this browser's address). With --warning, the code was requested from
// --address but this browser is at BROWSER_ADDR: the page must show a visible alert naming
// both, refuse Approve until "I started this sign-in myself on ADDR" is ticked (screenshots
// `consent-warning` and `consent-unconfirmed`), and approve once it is.
//
// The password comes on stdin so that it never appears in a process listing. Variants:
// `desktop` (1280x800, JavaScript on) and `phone` (a 360x740 touch screen with JavaScript
// off: the pages are server-rendered forms and must work without it).
//
// Output: one JSON document on stdout (what was checked and where the screenshots are); on any
// failure a message on stderr naming the step, the page and its heading, a screenshot
// `failure.png` when a page was open, and exit status 1 (2 for bad arguments).
//
// Elements are found by form field names and accessible roles and names, never by position,
// so that other additions to the pages (more sign-in buttons, more text) do not break it.

import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { CHROMIUM_FLAGS, VARIANTS, pngSize } from './common.mjs';

const STEP_TIMEOUT_MS = 30_000;

class StepError extends Error {}

function usage(message) {
  process.stderr.write(`signin.mjs: ${message}\n`);
  process.exit(2);
}

function parse() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      username: { type: 'string' },
      ca: { type: 'string' },
      artifacts: { type: 'string' },
      cluster: { type: 'string' },
      client: { type: 'string' },
      address: { type: 'string' },
      warning: { type: 'string' },
      variant: { type: 'string', default: 'desktop' },
      chromium: { type: 'string', default: '/usr/bin/chromium' },
    },
    strict: true,
  });
  for (const name of ['url', 'username', 'ca', 'artifacts', 'cluster', 'client', 'address']) {
    if (!values[name]) usage(`--${name} is required`);
  }
  if (!VARIANTS[values.variant]) usage(`--variant must be one of ${Object.keys(VARIANTS).join(', ')}`);
  let url;
  try {
    url = new URL(values.url);
  } catch {
    usage('--url is not a URL');
  }
  if (url.protocol !== 'https:') usage('--url must be https');
  const userCode = url.searchParams.get('user_code');
  if (!userCode) usage('--url has no user_code (pass verification_uri_complete)');
  const password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (!password) usage('no password on stdin');
  return { ...values, url, userCode, password };
}

// The SHA-256 of the issuer's serving certificate's public key (base64), taken from a TLS
// connection that Node verified against the issuer's CA file, host name included. Chromium is
// then told to accept exactly that key (--ignore-certificate-errors-spki-list): the certificate
// it accepts is one the issuer's CA vouches for, and any other certificate still fails.
function verifiedLeafSpki(url, caFile) {
  const ca = readFileSync(caFile);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port || 443),
      ca,
      // Node checks the certificate against the host name; SNI is not sent for IP addresses.
      servername: /^[\d.]+$|:/.test(url.hostname) ? '' : url.hostname,
    });
    socket.setTimeout(STEP_TIMEOUT_MS, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (!socket.authorized || !(cert instanceof X509Certificate)) {
        reject(new Error(`the issuer's certificate is not signed by ${caFile}: ${socket.authorizationError}`));
        return;
      }
      const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
      resolve(createHash('sha256').update(spki).digest('base64'));
    });
    socket.once('error', (e) => reject(new Error(`TLS connection to ${url.host} trusting ${caFile}: ${e.message}`)));
  });
}

async function main() {
  const args = parse();
  const variant = VARIANTS[args.variant];
  mkdirSync(args.artifacts, { recursive: true });
  const spki = await verifiedLeafSpki(args.url, args.ca);

  // A fresh profile, removed afterwards: no cookie, cache or setting from an earlier run.
  const profile = mkdtempSync(join(tmpdir(), 'signin-chromium-'));
  let context;
  let page;
  let step = 'launching Chromium';
  const summary = {
    variant: args.variant,
    javascript: null,
    viewport: variant.viewport,
    trust: 'issuer leaf SPKI pinned after verifying it against the CA file',
    pages: [],
  };

  const fail = (message) => {
    throw new StepError(message);
  };
  const shoot = async (name) => {
    const path = join(args.artifacts, `${name}.png`);
    const png = await page.screenshot({ path, fullPage: true });
    const size = pngSize(png);
    // A page wider than the screen makes a person scroll sideways (on a phone, a cut-off form).
    const expected = variant.viewport.width * (variant.deviceScaleFactor ?? 1);
    if (size.width > expected) {
      fail(`the ${name} page is ${size.width}px wide on a ${expected}px screen (it scrolls sideways)`);
    }
    const heading = (await page.getByRole('heading', { level: 1 }).first().textContent())?.trim();
    summary.pages.push({ name, path: new URL(page.url()).pathname, heading, screenshot: path, ...size });
    return heading;
  };
  // Clicks a form's submit button and waits until the page it leads to has loaded.
  const submit = async (button) => {
    await Promise.all([page.waitForEvent('load'), button.click()]);
  };
  const expectPath = (want, what) => {
    const got = new URL(page.url()).pathname;
    if (got !== want) fail(`expected ${what} at ${want}, but the browser is at ${got}`);
  };
  const expectStatus = (response, what) => {
    if (!response) fail(`no response for ${what}`);
    if (response.status() !== 200) fail(`${what} answered HTTP ${response.status()}`);
  };

  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: args.chromium,
      headless: true,
      args: [...CHROMIUM_FLAGS, `--ignore-certificate-errors-spki-list=${spki}`],
      timeout: 60_000,
      ...variant,
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    page = context.pages()[0] ?? (await context.newPage());

    // 0. Whether this browser really runs scripts: <noscript> shows only when it does not.
    step = 'checking whether JavaScript runs';
    await page.goto('data:text/html,<body><noscript>off</noscript><script>document.write("on")</script></body>');
    summary.javascript = (await page.locator('body').innerText()).trim() === 'on';
    if (summary.javascript !== variant.javaScriptEnabled) {
      fail(`JavaScript is ${summary.javascript ? 'on' : 'off'}, but the ${args.variant} variant wants it ${variant.javaScriptEnabled ? 'on' : 'off'}`);
    }

    // 1. The link the plugin printed: the code is already filled in.
    step = 'opening the verification link';
    expectStatus(await page.goto(args.url.href), 'the verification link');
    expectPath('/device', 'the code page');
    const codeField = page.locator('input[name="user_code"]');
    const prefilled = await codeField.inputValue();
    if (prefilled !== args.userCode) fail(`the code field holds "${prefilled}", not the code from the link`);
    await shoot('device');

    step = 'pressing Continue';
    const codeForm = page.locator('form').filter({ has: codeField });
    await submit(codeForm.getByRole('button', { name: 'Continue', exact: true }));

    // 2. The sign-in form (this person has no second factor, so no other step follows).
    step = 'signing in';
    expectPath('/login', 'the sign-in page');
    const password = page.locator('input[name="password"]');
    const loginForm = page.locator('form').filter({ has: password });
    await loginForm.locator('input[name="username"]').fill(args.username);
    await password.fill(args.password);
    await shoot('login');
    await submit(loginForm.getByRole('button', { name: 'Sign in', exact: true }));

    // 3. Consent: what is asking, and from where.
    step = 'reading the consent page';
    expectPath('/consent', 'the consent page (a wrong password or an unexpected second step?)');
    const text = (await page.locator('body').innerText()).replace(/\s+/g, ' ');
    for (const [what, value] of [
      ['cluster', args.cluster],
      ['client', args.client],
      ['requesting address', args.address],
      ['signed-in account', args.username],
    ]) {
      if (!text.includes(value)) fail(`the consent page does not name the ${what} "${value}": ${text}`);
    }
    summary.consent = { cluster: args.cluster, client: args.client, address: args.address };
    const alert = page.getByRole('alert');
    const box = page.getByRole('checkbox', { name: `I started this sign-in myself on ${args.address}` });
    if (args.warning === undefined) {
      // 3a. Same address: no warning, no box to tick.
      if ((await alert.count()) !== 0) fail(`the consent page shows an alert although the addresses match: ${await alert.first().innerText()}`);
      if ((await page.getByRole('checkbox').count()) !== 0) fail('the consent page asks for a confirmation although the addresses match');
      summary.warning = null;
      await shoot('consent');
    } else {
      // 3b. Another address: a visible warning naming both addresses, and Approve only with the box.
      step = 'reading the warning';
      const warning = page.locator('#origin-warning');
      if ((await warning.getAttribute('role')) !== 'alert') fail('the warning is not an alert (role=alert)');
      if (!(await warning.isVisible())) fail('the warning is not visible');
      const said = (await warning.innerText()).replace(/\s+/g, ' ');
      for (const addr of [args.address, args.warning]) {
        if (!said.includes(addr)) fail(`the warning does not name ${addr}: ${said}`);
      }
      if (!said.includes('approving would sign them in, as you')) fail(`the warning does not say who would be signed in: ${said}`);
      const box1 = await warning.boundingBox();
      if (!box1 || box1.y > variant.viewport.height) fail('the warning is below the first screen');
      summary.warning = { text: said, top: box1.y, height: box1.height };
      await shoot('consent-warning');
      step = 'approving without the confirmation';
      if (await box.isChecked()) fail('the confirmation is ticked before the person ticked it');
      await submit(page.getByRole('button', { name: 'Approve', exact: true }));
      expectPath('/consent', 'the consent page again');
      const refused = (await page.locator('body').innerText()).replace(/\s+/g, ' ');
      if (!refused.includes('To approve it, tick')) fail(`Approve without the confirmation was not refused: ${refused}`);
      await shoot('consent-unconfirmed');
      step = 'ticking the confirmation';
      await box.check();
      await shoot('consent');
    }

    // 4. Approve, and the page says it worked.
    step = 'approving';
    await submit(page.getByRole('button', { name: 'Approve', exact: true }));
    step = 'reading the done page';
    const done = await page.getByRole('heading', { level: 1 }).first().textContent();
    if (done?.trim() !== 'Access approved') fail(`the page after Approve says "${done?.trim()}", not "Access approved"`);
    const doneText = await page.locator('body').innerText();
    if (!doneText.includes(args.cluster)) fail(`the done page does not name the cluster: ${doneText}`);
    await shoot('done');

    summary.ok = true;
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } catch (e) {
    let where = '';
    if (page) {
      try {
        const heading = await page.getByRole('heading', { level: 1 }).first().textContent({ timeout: 2_000 });
        where = ` (page ${new URL(page.url()).pathname}, heading "${heading?.trim()}")`;
        await page.screenshot({ path: join(args.artifacts, 'failure.png'), fullPage: true });
        where += `; screenshot ${join(args.artifacts, 'failure.png')}`;
      } catch {
        // The page itself is what failed; the message below says so.
      }
    }
    const message = e instanceof StepError ? e.message : (e?.message ?? String(e)).split('\n')[0];
    process.stderr.write(`signin.mjs: FAILED while ${step}${where}: ${message}\n`);
    process.exitCode = 1;
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`signin.mjs: FAILED: ${e?.message ?? e}\n`);
  process.exit(1);
});
