// End-to-end check of the chat page that `recur serve` serves at GET /.
//
// Usage: node .ci/chat_page.mjs URL SCREENSHOT.png
//
// Drives headless Chromium (playwright-core, no bundled browser): sends two
// messages, checks the reply, the confidence and the latency breakdown, and
// saves a full-page screenshot. Any console error, uncaught page exception or
// failed/HTTP-error request made by the page fails the run (exit status 1).
//
// playwright-core is found the usual way, or through NODE_PATH, or under the
// npm prefix named by PLAYWRIGHT_PREFIX (see .ci/chat_page_test.sh).
// The browser is $CHROMIUM, or /usr/bin/chromium.

import { createRequire } from 'node:module';
import path from 'node:path';

const TIMEOUT_MS = 30_000;

class Failure extends Error {}

// Throws, so that the browser is still closed on the way out.
function fail(msg) {
  throw new Failure(msg);
}

async function loadPlaywright() {
  try {
    return await import('playwright-core');
  } catch {}
  // createRequire's require honours NODE_PATH, which ES imports do not.
  const bases = [import.meta.url];
  if (process.env.PLAYWRIGHT_PREFIX) bases.push(path.join(process.env.PLAYWRIGHT_PREFIX, 'noop.js'));
  for (const base of bases) {
    try {
      return createRequire(base)('playwright-core');
    } catch {}
  }
  console.error('chat_page: FAIL: cannot load playwright-core (.ci/chat_page_test.sh installs it: PLAYWRIGHT_PREFIX=DIR must hold node_modules/playwright-core)');
  process.exit(1);
}

const [url, shot] = process.argv.slice(2);
if (!url || !shot) {
  console.error('usage: node chat_page.mjs URL SCREENSHOT.png');
  process.exit(2);
}

const { chromium } = await loadPlaywright();
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const problems = [];
let browser;
try {
  console.log(`chat_page: launching ${executablePath} (headless)`);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  page.setDefaultTimeout(TIMEOUT_MS);

  // The one refusal the run provokes on purpose (step 3): its 422 and
  // Chromium's console line for it are expected.
  let refusing = false;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (refusing && m.text().includes('status of 422')) return;
    const where = m.location()?.url || '';
    // Chromium's own favicon probe (the page links no icon) is not the page's doing.
    if (where.endsWith('/favicon.ico')) return;
    problems.push(`console error: ${m.text()}${where ? ` (${where})` : ''}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught exception in page: ${e.message}`));
  page.on('requestfailed', (r) => {
    problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    // The browser's own favicon probe is not the page's doing.
    if (refusing && r.status() === 422 && r.url().endsWith('/chat')) return;
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) {
      problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
    }
  });

  console.log(`chat_page: opening ${url}`);
  const resp = await page.goto(url, { waitUntil: 'load', timeout: TIMEOUT_MS });
  if (!resp || !resp.ok()) fail(`GET ${url} answered ${resp ? resp.status() : 'nothing'}`);
  const title = await page.title();
  if (title !== 'recur chat') fail(`unexpected page title ${JSON.stringify(title)}`);

  const text = (sel) => page.locator(sel).innerText();
  const botLines = page.locator('#log .turn.bot');

  async function send(message, expectedBotLines) {
    console.log(`chat_page: sending ${JSON.stringify(message)}`);
    await page.fill('#message', message);
    await page.press('#message', 'Enter');
    try {
      await page.waitForFunction(
        (n) =>
          document.querySelectorAll('#log .turn.bot').length >= n ||
          document.getElementById('error').textContent.trim() !== '',
        expectedBotLines,
        { timeout: TIMEOUT_MS },
      );
    } catch {
      fail(`no reply within ${TIMEOUT_MS / 1000} s`);
    }
    const err = (await text('#error')).trim();
    if (err) fail(`page shows an error: ${err}`);
    const n = await botLines.count();
    if (n !== expectedBotLines) fail(`expected ${expectedBotLines} bot line(s) in #log, found ${n}`);
    // A finished request re-enables the button.
    if (await page.locator('#send').isDisabled()) fail('#send is still disabled after the reply');
  }

  // First message.
  await send('What do you know about the history of Rome?', 1);
  await page.locator('#details').waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const reply = (await text('#reply')).trim();
  if (!reply) fail('#reply is empty');
  const lastBot = (await botLines.last().innerText()).trim();
  if (lastBot !== `recur: ${reply}`) fail(`last #log line ${JSON.stringify(lastBot)} does not match #reply`);

  const confText = (await text('#confidence')).trim();
  const conf = Number(confText);
  if (confText === '' || !Number.isFinite(conf) || conf < -1 || conf > 1) {
    fail(`#confidence ${JSON.stringify(confText)} is not a number in [-1, 1]`);
  }
  const total = (await text('#total')).trim();
  if (!/^\d+(\.\d+)? ms$/.test(total)) fail(`#total ${JSON.stringify(total)} does not look like "N ms"`);
  for (const id of ['encoding', 'context', 'lvm', 'decoding', 'queue']) {
    const v = (await text(`#${id}`)).trim();
    if (!/^\d+(\.\d+)? ms$/.test(v)) fail(`#${id} ${JSON.stringify(v)} does not look like "N ms"`);
  }
  const fill = (await text('#fill')).trim();
  console.log(`chat_page: reply 1: ${JSON.stringify(reply)}`);
  console.log(`chat_page: confidence ${confText}, total ${total}, encoding ${(await text('#encoding')).trim()}, context ${fill}`);

  // Second message: a second bot line must appear.
  await send('Tell me more about the emperors.', 2);
  const reply2 = (await text('#reply')).trim();
  if (!reply2) fail('#reply is empty after the second message');
  const youLines = await page.locator('#log .turn.you').count();
  if (youLines !== 2) fail(`expected 2 user lines in #log, found ${youLines}`);
  const total2 = (await text('#total')).trim();
  console.log(`chat_page: reply 2: ${JSON.stringify(reply2)}`);
  console.log(`chat_page: confidence ${(await text('#confidence')).trim()}, total ${total2}`);

  // A message the server refuses (only a zero-width space: the page's
  // trim() keeps it, the server finds nothing visible) shows its error,
  // and the next message is answered: the refused one is not kept in the
  // history (it failed every turn while among the last five).
  refusing = true;
  console.log('chat_page: sending a zero-width space (refused)');
  await page.fill('#message', '\u200b');
  await page.press('#message', 'Enter');
  await page
    .waitForFunction(() => document.getElementById('error').textContent.trim() !== '', null, { timeout: TIMEOUT_MS })
    .catch(() => fail('no error shown for a message of nothing visible'));
  const refused = (await text('#error')).trim();
  if (!/visible/.test(refused)) fail(`unexpected error for a zero-width space: ${JSON.stringify(refused)}`);
  console.log(`chat_page: refused: ${JSON.stringify(refused)}`);
  refusing = false;
  await send('And what about their ships?', 3);

  // Let the /info fetch settle so its result is in the screenshot.
  await page.waitForFunction(() => document.getElementById('model').textContent !== '', null, { timeout: 5000 }).catch(() => {
    problems.push('#model line (from GET /info) stayed empty');
  });
  console.log(`chat_page: ${(await text('#model')).trim()}`);

  await page.screenshot({ path: shot, fullPage: true });
  console.log(`chat_page: screenshot saved to ${shot}`);

  if (problems.length) fail(`the page reported problems:\n  ${problems.join('\n  ')}`);
  console.log('chat_page: OK');
} catch (e) {
  console.error(`chat_page: FAIL: ${e instanceof Failure ? e.message : (e && e.stack) || e}`);
  if (problems.length && !(e instanceof Failure && e.message.startsWith('the page reported'))) {
    console.error(`chat_page: the page also reported:\n  ${problems.join('\n  ')}`);
  }
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
}
