// Walks every page of the console's three roles in Chromium, in zh-CN: each page must show no
// untranslated message key (what the catalogue lookup returns for a key it lacks) and must not
// scroll sideways at 1440×900 or 1024×768. Screenshots of each page at both sizes go to
// $JM_SHOTS. Any Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

// Keys look like `topSenders` or `cls_phish`; rule symbols (NEURAL_PHISH) and addresses do not.
// Snake-case words are JSON field names shown raw. Text in <code> (queue ids, audit action
// codes, keys shown on purpose) is not read.
const KEY = /\b(?:[a-z]+(?:[A-Z][a-z0-9]+)+|[a-z]+(?:_[a-z0-9]+)+)\b/g;

// Fits 1440×900 and 1024×768 without sideways scrolling (screenshots of both), and shows no
// untranslated key.
async function check(page, shots, role, name) {
  for (const [w, h] of [[1440, 900], [1024, 768]]) {
    await page.setViewportSize({ width: w, height: h });
    await page.waitForTimeout(100);
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    if (scroll > width) throw new Error(`${role} #/${name} scrolls sideways at ${w}×${h}: ${scroll} > ${width}`);
    await page.screenshot({ path: `${shots}/page-${role}-${name}-${w}.png`, fullPage: true });
  }
  const text = await page.evaluate(() => {
    const parts = [];
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    // (Each text node on a line of its own, so a node reading "null" is found as such.)
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      if (!n.parentElement.closest('code, script')) parts.push(n.textContent);
    }
    return parts.join('\n');
  });
  // A value the page forgot to word: a text of its own reading null or undefined.
  if (text.split('\n').some((p) => ['null', 'undefined', 'NaN', '[object Object]'].includes(p.trim()))) throw new Error(`${role} #/${name} shows a raw null, undefined or object`);
  const keys = [...new Set(text.match(KEY) || [])];
  if (keys.length) throw new Error(`${role} #/${name} shows untranslated keys: ${keys.join(', ')}`);
}

await run('pages', async (page, shots) => {
  const seen = [];
  // A server error is worded from the catalogue too: a wrong password, in zh-CN.
  await page.goto(env('JM_URL'));
  await page.fill('#username', env('JM_AUD_USER'));
  await page.fill('#password', 'not-the-password');
  await page.click('#signin');
  await page.waitForFunction(() => document.querySelector('.login .error')?.textContent.length > 0);
  const said = await page.textContent('.login .error');
  if (said !== '用户名或密码错误。') throw new Error(`a wrong password reads: ${said}`);
  for (const [role, user, pass] of [['security', env('JM_SEC_USER'), env('JM_SEC_PASS')], ['system', env('JM_SYS_USER'), env('JM_SYS_PASS')], ['audit', env('JM_AUD_USER'), env('JM_AUD_PASS')]]) {
    await page.setViewportSize({ width: 1440, height: 900 });
    await signIn(page, user, pass);
    const links = await page.$$eval('#nav a', (as) => as.map((a) => a.getAttribute('href')));
    for (const href of links) {
      await page.goto(`${env('JM_URL')}${href}`);
      await page.waitForSelector('main h1, main .login');
      await page.waitForLoadState('networkidle');
      await check(page, shots, role, href.replace('#/', ''));
      seen.push(`${role}${href}`);
    }
    // Detail pages too: the policy's other tabs, a held item and a message's timeline.
    if (role === 'security') {
      for (const tab of ['attachments', 'dlp']) {
        await page.goto(`${env('JM_URL')}#/policy/${tab}`);
        await page.waitForSelector('#policy-tabs a.active');
        await page.waitForLoadState('networkidle');
        await check(page, shots, role, `policy-${tab}`);
        seen.push(`${role}#/policy/${tab}`);
      }
      for (const list of ['quarantine', 'tracking']) {
        await page.goto(`${env('JM_URL')}#/${list}`);
        await page.locator('#results tr.clickable').first().click();
        await page.waitForSelector(list === 'quarantine' ? '#item-status' : '#timeline');
        // (The sandboxed preview frame never lets the page go network-idle.)
        await page.waitForTimeout(300);
        await check(page, shots, role, `${list}-item`);
        seen.push(`${role}#/${list}/…`);
      }
    }
    await page.click('#logout');
    await page.waitForSelector('#signin');
  }
  return seen;
});
