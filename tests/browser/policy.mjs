// Drives Debian's Chromium through the policy editor (策略): the security administrator sets
// spam to quarantine, lowers the high-spam threshold to 30, blocks $JM_BLOCKED (imported from
// a file, the way a list is brought in), switches one rule off and saves with a comment after
// the page asks first;
// then finds version 2 in the versions with its changes in words; then blocks $JM_OWN_BLOCKED
// for $JM_OWNER only, on the personal lists card. The page must not scroll
// sideways at 1440×900 or 1024×768. Screenshots go to $JM_SHOTS.
import { env, run, signIn } from './harness.mjs';

const noSideScroll = async (page, what) => {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  if (scroll > width) throw new Error(`${what} scrolls sideways: ${scroll} > ${width}`);
};

await run('policy', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("策略")');
  await page.waitForSelector('#act-spam');
  const inForce = await page.textContent('#policy-in-force');
  if (!inForce.includes('第 1 版') || !inForce.includes('配置文件')) throw new Error(`in force: ${inForce}`);
  if (await page.inputValue('#act-spam') !== 'tag') throw new Error('spam is not tagged before the edit');
  for (const [w, h] of [[1440, 900], [1024, 768]]) {
    await page.setViewportSize({ width: w, height: h });
    await noSideScroll(page, `the policy page at ${w}×${h}`);
    await page.screenshot({ path: `${shots}/policy-1-${w}.png`, fullPage: true });
  }

  // A wrong entry is refused, and said so in Chinese naming the list.
  await page.fill('#block-list', 'not an entry!');
  page.once('dialog', (d) => d.accept());
  await page.click('#policy-save');
  await page.waitForFunction(() => document.querySelector('#policy-result')?.className === 'error');
  const refusal = await page.textContent('#policy-result');
  if (!refusal.includes('“阻止名单”填写有误') || !refusal.includes('不是 IP、CIDR 网段、邮件地址或域名：not an entry!')) throw new Error(`the refusal reads: ${refusal}`);
  await page.fill('#block-list', '');

  await page.selectOption('#act-spam', 'quarantine');
  await page.fill('#th-spam_high', '30');
  await page.setInputFiles('#block-list-import', { name: 'blocked.txt', mimeType: 'text/plain', buffer: Buffer.from(`${env('JM_BLOCKED')}\n`) });
  await page.waitForFunction((who) => document.querySelector('#block-list').value.includes(who), env('JM_BLOCKED'));
  // A rule switched off (one this spam does not fire): the filter finds it, the count says so.
  await page.fill('#rule-filter', 'ATTACH_DOUBLE_EXT');
  if (await page.locator('#rules-table tbody tr:not([hidden])').count() !== 1) throw new Error('the rule filter does not narrow the list');
  await page.uncheck('[data-symbol="ATTACH_DOUBLE_EXT"]');
  await page.waitForFunction(() => document.querySelector('#rules-count').textContent.includes('已调整 1 条'));
  await page.fill('#policy-comment', '垃圾邮件改为隔离');
  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await page.click('#policy-save');
  await page.waitForFunction(() => document.querySelector('#policy-result')?.textContent.includes('第 2 版'));
  if (!asked.includes('新版本')) throw new Error(`the save did not ask first: "${asked}"`);
  const changes = await page.textContent('#policy-changes');
  for (const words of ['处置 · 垃圾邮件', '隔离', `阻止名单：${env('JM_BLOCKED')}`, '阈值 · 高分垃圾邮件', '规则分值 · ATTACH_DOUBLE_EXT']) {
    if (!changes.includes(words)) throw new Error(`the changes lack "${words}": ${changes}`);
  }
  await page.screenshot({ path: `${shots}/policy-2-saved.png`, fullPage: true });

  // The versions: 2 on top, with its comment and changes; a roll-back is offered for version 1.
  const v2 = page.locator('#policy-versions tr.clickable', { hasText: '垃圾邮件改为隔离' });
  await v2.click();
  await page.waitForSelector('#policy-version table');
  if (await page.locator('#rollback').count()) throw new Error('a roll-back offered for the version in force');
  await page.locator('#policy-versions tr.clickable').last().click();
  await page.waitForSelector('#rollback');
  await page.screenshot({ path: `${shots}/policy-3-versions.png`, fullPage: true });

  // A recipient's own block list: opened by address, an entry added, removed (asked first),
  // added again to stay in force for the next message.
  const owner = env('JM_OWNER');
  const blockOwn = async () => {
    await page.selectOption('#own-kind', 'block');
    await page.fill('#own-add', env('JM_OWN_BLOCKED'));
    await page.click('#own-add-save');
    await page.waitForFunction(() => document.querySelector('#own-result')?.className === 'notice');
  };
  await page.fill('#own-owner', owner);
  await page.click('#own-open');
  await page.waitForSelector('#own-kind');
  await blockOwn();
  const row = page.locator('#own-entries tr', { hasText: env('JM_OWN_BLOCKED') });
  if (!(await row.textContent()).includes('黑名单')) throw new Error(`the entry reads: ${await row.textContent()}`);
  const listed = await page.waitForFunction((o) => document.querySelector('#own-owners')?.textContent.includes(o), owner, { timeout: 10000 })
    .then(() => true, () => false);
  if (!listed) throw new Error('the recipient is not listed');
  asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await page.click(`#own-entries button[data-entry="${env('JM_OWN_BLOCKED')}"]`);
  await page.waitForFunction(() => document.querySelector('#own-result')?.textContent.includes('已移除'));
  if (!asked.includes(owner)) throw new Error(`removing did not ask first: "${asked}"`);
  if (await page.locator('#own-entries tr', { hasText: env('JM_OWN_BLOCKED') }).count()) throw new Error('the entry is still shown');
  await blockOwn();
  await noSideScroll(page, 'the policy page with personal lists');
  await page.screenshot({ path: `${shots}/policy-4-own-lists.png`, fullPage: true });
  return changes;
});
