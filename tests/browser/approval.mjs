// Drives Debian's Chromium through the console's approval queue (外发审批): the security
// administrator signs in, changes the generated password, opens outgoing mail a data-leak
// prevention policy held ($JM_SUBJECT), checks the evidence shows the identifiers masked and
// never whole ($JM_SECRET must not appear anywhere on the page), and approves it; the policy's
// DLP tab lists the policy ($JM_POLICY) with what fires it. Screenshots
// go to $JM_SHOTS. Any Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('approval', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));

  await page.click('#nav a:has-text("外发审批")');
  const row = page.locator('#results tr.clickable', { hasText: env('JM_SUBJECT') });
  await row.waitFor();
  await page.screenshot({ path: `${shots}/approval-1-queue.png`, fullPage: true });
  await row.click();
  await page.waitForSelector('#approve');
  const text = await page.evaluate(() => document.body.innerText);
  if (!text.includes(env('JM_MASKED'))) throw new Error(`the evidence does not show ${env('JM_MASKED')}`);
  if (text.includes(env('JM_SECRET'))) throw new Error('a whole ID number is shown on the page');
  if (await page.locator('#release-ham').count() !== 0) throw new Error('held outgoing mail offered as "not spam"');
  await page.screenshot({ path: `${shots}/approval-2-detail.png`, fullPage: true });
  await page.click('#approve');
  await page.waitForFunction(() => document.querySelector('#action-result')?.className === 'notice');
  const result = await page.textContent('#action-result');
  if (!result.includes('已批准')) throw new Error(`after approving, the page says: ${result}`);
  await page.screenshot({ path: `${shots}/approval-3-approved.png`, fullPage: true });

  // The policy's DLP tab lists the policy with what fires it and what it does.
  await page.click('#nav a:has-text("策略")');
  await page.click('#policy-tabs a:has-text("外发防泄漏")');
  const summary = page.locator('details.dlp-policy summary', { hasText: env('JM_POLICY') });
  await summary.waitFor();
  const cells = await summary.innerText();
  if (!cells.includes('身份证号 ≥ 5') || !cells.includes('暂扣待审批')) throw new Error(`the policy reads: ${cells}`);
  await page.screenshot({ path: `${shots}/approval-4-policy.png`, fullPage: true });
  return result;
});
