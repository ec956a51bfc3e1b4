// What every browser run of the console shares: Debian's Chromium launched headless, page
// errors and Content-Security-Policy violations collected (any fails the run), the API's
// refusals kept for the log, and on failure the page's text and a screenshot in $JM_SHOTS.
import { chromium } from 'playwright-core';

export const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };

// Signs in; a first sign-in's forced password change is done with $JM_NEW_PASS.
export async function signIn(page, user, password) {
  await page.goto(env('JM_URL'));
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('#signin');
  await page.waitForSelector('#save-password, #nav a');
  if (await page.locator('#save-password').count()) {
    await page.fill('#current', password);
    await page.fill('#new', env('JM_NEW_PASS'));
    await page.click('#save-password');
    await page.waitForSelector('#nav a');
  }
  // The landing page drawn (its heading, the sign-in and password forms gone), so a click on
  // the menu is the next thing to happen.
  await page.waitForFunction(() => !document.querySelector('#signin') && !document.querySelector('#save-password')
    && document.querySelector('main h1'));
}

// Runs `steps(page)` in a fresh page; `name` prefixes the failure screenshot.
export async function run(name, steps) {
  const shots = env('JM_SHOTS');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const problems = [];
  const answers = [];
  let page = null;
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('response', (r) => { if (r.url().includes('/api/') && r.status() >= 400) answers.push(`${r.status()} ${r.url()}`); });
    const result = await steps(page, shots);
    if (problems.length) throw new Error(`page problems: ${problems.join(' | ')}`);
    console.log(JSON.stringify({ ok: true, result }));
  } catch (e) {
    console.error(String(e && e.stack || e));
    console.error(`API answers >= 400: ${answers.join(', ') || 'none'}`);
    if (problems.length) console.error(`page problems: ${problems.join(' | ')}`);
    if (page) {
      const text = await page.evaluate(() => document.body.innerText).catch(() => '(page gone)');
      console.error(`the page said: ${text.slice(0, 800)}`);
      await page.screenshot({ path: `${shots}/${name}-failure.png`, fullPage: true }).catch(() => {});
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
