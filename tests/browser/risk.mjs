// Drives Debian's Chromium through the account-risk board (风险账户): the security
// administrator finds the contained account ($JM_ACCOUNT) with its level (暂扣待审), volume line
// and explanation (it must mention $JM_REASON), opens its history (the gateway's alert,
// throttle and hold), and clears it as a false alarm. Screenshots go to $JM_SHOTS. Any
// Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('risk', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("风险账户")');
  const row = page.locator('tr.clickable', { hasText: env('JM_ACCOUNT') });
  await row.waitFor();
  const cells = await row.innerText();
  if (!cells.includes('暂扣待审') || !cells.includes(env('JM_REASON'))) throw new Error(`the board row reads: ${cells}`);
  if (await row.locator('svg.spark polyline').count() !== 1) throw new Error('no volume line on the board');
  await page.screenshot({ path: `${shots}/risk-1-board.png`, fullPage: true });

  await row.click();
  await page.waitForSelector('#risk-level');
  const history = await page.locator('.card', { has: page.locator('h2', { hasText: '处理记录' }) }).innerText();
  for (const level of ['告警', '限速', '暂扣待审']) {
    if (!history.includes(level)) throw new Error(`the history lacks ${level}: ${history}`);
  }
  await page.screenshot({ path: `${shots}/risk-2-account.png`, fullPage: true });
  page.once('dialog', (d) => d.accept());
  await page.click('#clear');
  await page.waitForFunction(() => document.querySelector('#risk-result')?.className === 'notice');
  const result = await page.textContent('#risk-result');
  if (!result.includes('已解除')) throw new Error(`after clearing, the page says: ${result}`);
  const level = await page.textContent('#risk-level');
  if (!level.includes('正常')) throw new Error(`after clearing, the level reads: ${level}`);
  await page.screenshot({ path: `${shots}/risk-3-cleared.png`, fullPage: true });
  return result;
});
