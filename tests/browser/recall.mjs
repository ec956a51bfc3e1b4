// Drives Debian's Chromium through recall (邮件召回): the security administrator searches the
// delivered mail by an attachment's SHA-256 ($JM_SHA256), recalls the message found with a
// reason, watches the recall's page until every mailbox reads 已召回 (the progress bar full),
// and the recall is listed on the page. Screenshots go to $JM_SHOTS. Any
// Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('recall', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("邮件召回")');
  await page.selectOption('#hunt-kind', 'sha256');
  await page.fill('#hunt-value', env('JM_SHA256'));
  await page.click('form.filters button[type=submit]');
  const recallButton = page.locator('#hunt-results button[data-recall]');
  await recallButton.waitFor();
  if (await recallButton.count() !== 1) throw new Error('the search should find exactly one message');
  await page.fill('#recall-reason', '宏病毒，情报通报');
  await page.screenshot({ path: `${shots}/recall-1-found.png`, fullPage: true });
  page.once('dialog', (d) => d.accept());
  await recallButton.click();
  await page.waitForSelector('#recall-progress');
  await page.waitForFunction(() => {
    const p = document.querySelector('#recall-progress');
    return p && p.max > 0 && Number(p.value) === Number(p.max);
  }, null, { timeout: 60000 });
  const rows = await page.locator('table tbody tr').allInnerTexts();
  if (rows.length !== 3 || !rows.every((r) => r.includes('已召回') && r.includes('INBOX'))) {
    throw new Error(`the mailboxes read: ${rows.join(' | ')}`);
  }
  if (!(await page.locator('#undo').isVisible())) throw new Error('no undo button');
  await page.screenshot({ path: `${shots}/recall-2-done.png`, fullPage: true });
  await page.click('a:has-text("返回")');
  const listed = await page.locator('tr.clickable').first().innerText();
  if (!listed.includes('已召回 3')) throw new Error(`the recall list reads: ${listed}`);
  await page.screenshot({ path: `${shots}/recall-3-list.png`, fullPage: true });
  return rows.join('\n');
});
