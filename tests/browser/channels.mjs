// Drives Debian's Chromium through the delivery-channel board (发信通道) while channel `a` is
// block-listed: the system administrator sees `a` listed (naming the list) and the reserve `r`
// standing in, opens `a`'s history (the listing, by the gateway), then drains channel `b` and
// activates it again. Screenshots go to $JM_SHOTS. Any Content-Security-Policy violation or page
// error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('channels', async (page, shots) => {
  await signIn(page, env('JM_SYS_USER'), env('JM_SYS_PASS'));
  await page.click('#nav a:has-text("发信通道")');
  const row = (name) => page.locator('tr.clickable', { has: page.locator('td:first-child', { hasText: new RegExp(`^${name}$`) }) });
  await row('a').waitFor();
  const a = await row('a').innerText();
  if (!a.includes('被列入黑名单') || !a.includes('bl.test')) throw new Error(`channel a reads: ${a}`);
  const r = await row('r').innerText();
  if (!r.includes('使用中') || !r.includes('备用顶替')) throw new Error(`channel r reads: ${r}`);
  await page.screenshot({ path: `${shots}/channels-1-board.png`, fullPage: true });

  await row('a').click();
  await page.waitForSelector('#channel-detail');
  const history = await page.textContent('#channel-detail');
  if (!history.includes('被列入黑名单') || !history.includes('gateway')) throw new Error(`a's history reads: ${history}`);
  await page.screenshot({ path: `${shots}/channels-2-history.png`, fullPage: true });

  page.once('dialog', (d) => d.accept());
  await page.click('#drain-b');
  await page.waitForFunction(() => document.querySelector('#channel-result')?.className === 'notice');
  if (!(await row('b').innerText()).includes('已停用')) throw new Error('b is not shown drained');
  await page.click('#activate-b');
  await page.waitForFunction(() => document.querySelector('#channel-result')?.textContent.includes('已启用'));
  const b = await row('b').innerText();
  if (!b.includes('使用中')) throw new Error(`after activating, b reads: ${b}`);
  await page.screenshot({ path: `${shots}/channels-3-moved.png`, fullPage: true });
  return b;
});
