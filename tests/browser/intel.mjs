// Drives Debian's Chromium through threat intelligence (威胁情报): the security administrator
// sees the TAXII source that delivered an indicator, the retro-hunt hit it caused and the recall
// it started (followed to its page, every mailbox 已召回), imports a STIX file ($JM_STIX_FILE)
// and finds the imported indicator by search. Screenshots go to $JM_SHOTS. Any
// Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('intel', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("威胁情报")');
  await page.waitForSelector('#intel-hits');
  const source = await page.locator('#intel-sources tbody tr', { hasText: env('JM_SOURCE') }).innerText();
  if (!source.includes('1')) throw new Error(`the source reads: ${source}`);
  const hit = page.locator('#intel-hits tbody tr');
  if (await hit.count() !== 1) throw new Error('one retro-hunt hit expected');
  const hitText = await hit.innerText();
  if (!hitText.includes('已发起召回') || !hitText.includes('sha256')) throw new Error(`the hit reads: ${hitText}`);
  await page.screenshot({ path: `${shots}/intel-1-board.png`, fullPage: true });
  await hit.locator('a:has-text("查看召回")').click();
  await page.waitForSelector('#recall-progress');
  await page.waitForFunction(() => {
    const p = document.querySelector('#recall-progress');
    return p && p.max > 0 && Number(p.value) === Number(p.max);
  }, null, { timeout: 60000 });
  const mailboxes = await page.locator('table tbody tr').allInnerTexts();
  if (mailboxes.length !== 3 || !mailboxes.every((r) => r.includes('已召回'))) {
    throw new Error(`the mailboxes read: ${mailboxes.join(' | ')}`);
  }
  await page.screenshot({ path: `${shots}/intel-2-recall.png`, fullPage: true });
  await page.click('#nav a:has-text("威胁情报")');
  await page.setInputFiles('#intel-file', env('JM_STIX_FILE'));
  await page.click('#intel-import button[type=submit]');
  await page.waitForSelector('#intel-result.notice');
  const said = await page.locator('#intel-result').innerText();
  if (!said.includes('新增或更新 1 条')) throw new Error(`the import said: ${said}`);
  await page.fill('#intel-search', env('JM_IMPORTED'));
  await page.click('#intel-indicators button[type=submit]');
  await page.waitForFunction((name) => {
    const rows = [...document.querySelectorAll('#intel-indicators tbody tr')];
    return rows.length === 1 && rows[0].innerText.includes(name);
  }, env('JM_IMPORTED'));
  await page.screenshot({ path: `${shots}/intel-3-imported.png`, fullPage: true });
  return `${source}\n${hitText}\n${said}`;
});
