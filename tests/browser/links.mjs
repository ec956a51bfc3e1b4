// Drives Debian's Chromium to a protected link ($JM_LINK) whose address ($JM_TARGET) went bad
// after delivery: the link service shows the zh-CN warning page naming the address, with the
// way on the default policy offers. Then the security administrator finds the click on the
// console's 安全链接 page. Screenshots go to $JM_SHOTS. Any Content-Security-Policy violation or
// page error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('links', async (page, shots) => {
  await page.goto(env('JM_LINK'));
  await page.waitForSelector('#warning');
  const title = await page.locator('h1').innerText();
  if (!title.includes('危险链接')) throw new Error(`the page is titled: ${title}`);
  const target = await page.locator('#target').innerText();
  if (target !== env('JM_TARGET')) throw new Error(`the page names: ${target}`);
  if (!(await page.locator('#go-on').isVisible())) throw new Error('no way on');
  if (page.url() !== env('JM_LINK')) throw new Error(`the browser went on to ${page.url()}`);
  await page.screenshot({ path: `${shots}/links-1-warning.png`, fullPage: true });
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("安全链接")');
  // Tracking is written in the background: look again for a few seconds.
  let clicks = [];
  for (let i = 0; i < 10; i++) {
    await page.waitForSelector('#links-clicks');
    clicks = await page.locator('#links-clicks tbody tr').allInnerTexts();
    if (clicks.some((r) => r.includes('warned') && r.includes('alice@example.com'))) break;
    await page.waitForTimeout(1000);
    await page.reload();
  }
  if (!clicks.some((r) => r.includes('warned') && r.includes('alice@example.com'))) {
    throw new Error(`the clicks read: ${clicks.join(' | ')}`);
  }
  await page.screenshot({ path: `${shots}/links-2-console.png`, fullPage: true });
  return `${title}\n${target}\n${clicks.join('\n')}`;
});
