// Drives Debian's Chromium through the policy's two other tabs. 附件策略: a wrong file type is
// refused in Chinese naming the field; then `rtf` and the common program types are refused and
// saved (version 2). 外发防泄漏: a policy with no condition is refused in Chinese; the keyword
// $JM_KEYWORD is added with the action 拒绝 and saved (version 3), and the page shows it. The
// pages must not scroll sideways at 1440×900 or 1024×768. Screenshots go to $JM_SHOTS.
import { env, run, signIn } from './harness.mjs';

const noSideScroll = async (page, what) => {
  for (const [w, h] of [[1440, 900], [1024, 768]]) {
    await page.setViewportSize({ width: w, height: h });
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    if (scroll > width) throw new Error(`${what} scrolls sideways at ${w}×${h}: ${scroll} > ${width}`);
  }
};

// Saves (accepting the question) and waits for the result line to say `expect` or an error.
const save = async (page) => {
  await page.evaluate(() => { document.querySelector('#policy-result').textContent = ''; });
  page.once('dialog', (d) => d.accept());
  await page.click('#policy-save');
  await page.waitForFunction(() => document.querySelector('#policy-result')?.textContent.length > 0);
  return page.textContent('#policy-result');
};

await run('attachments-dlp', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("策略")');
  await page.waitForSelector('#policy-tabs');
  await page.click('#policy-tabs a:has-text("附件策略")');
  await page.waitForSelector('#blocked-types');
  const help = await page.textContent('#blocked-card');
  if (!help.includes('拒收')) throw new Error(`the help does not name the virus action: ${help}`);

  await page.fill('#blocked-types', 'r tf');
  const refusal = await save(page);
  if (!refusal.includes('“附件策略 · 禁止的文件类型”填写有误') || !refusal.includes('不是文件扩展名')) throw new Error(`the refusal reads: ${refusal}`);
  await page.fill('#blocked-types', '.RTF');
  await page.click('#blocked-add-executables');
  const types = await page.inputValue('#blocked-types');
  if (!types.includes('exe') || !types.includes('lnk')) throw new Error(`the program types were not added: ${types}`);
  await page.fill('#policy-comment', '禁止 RTF 与可执行文件');
  const saved = await save(page);
  if (!saved.includes('第 2 版')) throw new Error(`saving the attachment policy reads: ${saved}`);
  const changes = await page.textContent('#policy-changes');
  if (!changes.includes('附件策略 · 禁止的文件类型：rtf')) throw new Error(`the changes read: ${changes}`);
  if (await page.inputValue('#blocked-types').then((v) => !v.split('\n').includes('rtf'))) throw new Error('rtf is not listed after the save');
  await noSideScroll(page, 'the attachment policy');
  await page.screenshot({ path: `${shots}/policy-attachments.png`, fullPage: true });

  await page.click('#policy-tabs a:has-text("外发防泄漏")');
  await page.waitForSelector('#dlp-none');
  await page.click('#dlp-add');
  await page.fill('#dlp-0-name', '项目代号');
  await page.selectOption('#dlp-0-action', 'block');
  if (await page.isVisible('#dlp-0-hours')) throw new Error('the approval time is shown for a refusing policy');
  const none = await save(page);
  if (!none.includes('“DLP 策略 项目代号”填写有误') || !none.includes('没有触发条件')) throw new Error(`a policy with no condition reads: ${none}`);
  await page.fill('#dlp-0-keywords', env('JM_KEYWORD'));
  await page.fill('#policy-comment', '项目代号不得外发');
  const dlpSaved = await save(page);
  if (!dlpSaved.includes('第 3 版')) throw new Error(`saving the DLP policy reads: ${dlpSaved}`);
  const dlpChanges = await page.textContent('#policy-changes');
  for (const words of [`DLP 策略 项目代号 · 关键词：${env('JM_KEYWORD')}`, 'DLP 策略 项目代号 · 动作', '拒绝', '方向：出站']) {
    if (!dlpChanges.includes(words)) throw new Error(`the DLP changes lack "${words}": ${dlpChanges}`);
  }
  const card = await page.textContent('#dlp-0-card summary');
  if (!card.includes('项目代号') || !card.includes('拒绝') || !card.includes('关键词 (1) ≥ 1')) throw new Error(`the saved policy reads: ${card}`);
  await page.click('#dlp-0-card summary');
  await noSideScroll(page, 'the DLP policies');
  await page.screenshot({ path: `${shots}/policy-dlp.png`, fullPage: true });

  // One history for the three tabs: the detection tab lists both saves.
  await page.click('#policy-tabs a:has-text("检测策略")');
  await page.waitForSelector('#policy-versions tr.clickable');
  const versions = await page.textContent('#policy-versions');
  if (!versions.includes('禁止 RTF 与可执行文件') || !versions.includes('项目代号不得外发')) throw new Error(`the versions read: ${versions}`);
  return `${changes}\n${dlpChanges}`;
});
