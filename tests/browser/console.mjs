// Drives Debian's Chromium through the Jianmen console as people would: the security
// administrator signs in, changes the generated password, finds a quarantined message sent to
// two people, previews it and releases it to the first only (unticking the second; the page
// asks first, naming the phishing verdict) — the item stays held for the other and the page
// shows it without a reload; the auditor signs in, verifies the audit chain and downloads the
// signed audit package to $JM_EXPORT; the system administrator uploads $JM_BAD_PACKAGE as an
// upgrade and sees it refused. Screenshots go
// to $JM_SHOTS. Any Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

const url = env('JM_URL');

await run('console', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  // The dashboard: totals by class (the held phish among them) and charts drawn by ECharts.
  await page.waitForSelector('#chart-flow canvas');
  await page.waitForSelector('#chart-classes canvas');
  const phishes = await page.textContent('#tile-phish .big');
  if (phishes !== '1' || (await page.textContent('#tile-total .big')) !== '1') throw new Error(`the dashboard counts ${phishes} phish`);
  await page.screenshot({ path: `${shots}/1-dashboard.png`, fullPage: true });
  await page.click('#range-30d');
  await page.waitForSelector('#range-30d[aria-pressed=true]');
  await page.waitForSelector('#chart-flow canvas');
  await page.goto(`${url}#/quarantine`);
  const row = page.locator('#results tr.clickable', { hasText: env('JM_SUBJECT') });
  await row.waitFor();
  // Times read in the gateway's zone (Asia/Shanghai unless configured), whatever the browser's.
  const [at, shownAt] = await page.evaluate(async () => {
    const r = await (await fetch('/api/quarantine', { credentials: 'same-origin' })).json();
    return [r.items[0].received_at, document.querySelector('#results tr.clickable td:nth-child(2)').textContent];
  });
  const inZone = new Date(at * 1000).toLocaleString('zh-CN', { timeZone: 'Asia/Shanghai' });
  if (shownAt !== inZone) throw new Error(`the held mail's time reads ${shownAt}, not ${inZone} (Asia/Shanghai)`);
  await page.screenshot({ path: `${shots}/2-quarantine.png`, fullPage: true });
  await row.click();
  await page.waitForSelector('#release');
  const frame = page.frameLocator('iframe.preview');
  await frame.locator('body').waitFor();
  const previewText = await frame.locator('body').innerText();
  if (!previewText.includes(env('JM_BODY_TEXT'))) throw new Error(`preview shows: ${previewText}`);
  // Nothing in the preview can be followed (not only by the frame's policy: no link has a
  // target), and the item lists the link's text beside where it really goes.
  if (await frame.locator('a[href], area[href]').count() !== 0) throw new Error('the preview has followable links');
  const link = page.locator('#anatomy tr', { hasText: 'http://198.51.100.23/owa/auth/login' });
  await link.waitFor();
  const linkRow = await link.innerText();
  if (!linkRow.includes('https://mail.example.com/owa') || !linkRow.includes('文字与地址不符')) throw new Error(`the link row reads: ${linkRow}`);
  await page.screenshot({ path: `${shots}/3-detail.png`, fullPage: true });
  const [first, second] = [env('JM_RCPT_1'), env('JM_RCPT_2')];
  const other = page.locator(`#item-rcpts input[value="${second}"]`);
  if (await other.count() !== 1) throw new Error('the second recipient is not offered on its own');
  await other.uncheck();
  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await page.click('#release');
  await page.waitForFunction(() => document.querySelector('#action-result')?.className === 'notice');
  if (!asked.includes('钓鱼')) throw new Error(`releasing a phish did not ask first: "${asked}"`);
  const said = await page.textContent('#action-result');
  if (!said.includes(first) || said.includes(second)) throw new Error(`after releasing one copy: ${said}`);
  const rcpts = await page.textContent('#item-rcpts');
  if (!rcpts.includes(`${first} ✓`) || await page.locator(`#item-rcpts input[value="${second}"]`).count() !== 1) throw new Error(`the recipients now read: ${rcpts}`);
  if (!(await page.textContent('#item-status')).includes('隔离中')) throw new Error('the item is no longer shown held for the other recipient');
  await page.screenshot({ path: `${shots}/4-released.png`, fullPage: true });

  // Tracking: the message found by a word of its subject, one row, and its timeline from
  // arrival through quarantine and release to delivery (delivery may take a moment).
  await page.goto(`${url}#/tracking`);
  await page.fill('input[name=subject]', 'storage full');
  await page.click('form.filters button[type=submit]');
  const tracked = page.locator('#results tr.clickable', { hasText: env('JM_SUBJECT') });
  await tracked.waitFor();
  // The unfiltered list drawn on arrival may still be on screen for a moment after the search.
  const oneRow = await page.waitForFunction(() => document.querySelectorAll('#results tr.clickable').length === 1, null, { timeout: 10000 })
    .then(() => true, () => false);
  if (!oneRow) throw new Error('the message is not one row');
  await tracked.click();
  await page.waitForSelector('#timeline li');
  for (let i = 0; i < 20 && !(await page.textContent('#timeline')).includes('已投递'); i++) {
    await page.waitForTimeout(500);
    await page.reload();
    await page.waitForSelector('#timeline li');
  }
  const timeline = await page.textContent('#timeline');
  for (const step of ['已隔离', '已放行', '已投递']) {
    if (!timeline.includes(step)) throw new Error(`the timeline lacks ${step}: ${timeline}`);
  }
  if (timeline.indexOf('已隔离') > timeline.indexOf('已放行')) throw new Error(`the timeline is out of order: ${timeline}`);
  await page.screenshot({ path: `${shots}/4b-timeline.png`, fullPage: true });
  await page.click('#logout');
  await page.waitForSelector('#signin');

  await signIn(page, env('JM_AUD_USER'), env('JM_AUD_PASS'));
  await page.waitForSelector('#verify');
  await page.click('#verify');
  await page.waitForFunction(() => document.querySelector('#verify-result')?.className === 'notice');
  const verdict = await page.textContent('#verify-result');
  // The chain holds every action so far (sign-ins, the release): intact, and not empty.
  const rows = /^审计链完整 \((\d+)\)$/.exec(verdict);
  if (!rows || Number(rows[1]) < 3) throw new Error(`the audit verdict reads: ${verdict}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  await download.saveAs(env('JM_EXPORT'));
  const released = await page.locator('td', { hasText: 'quarantine.release' }).count();
  if (released < 1) throw new Error('the release is not in the audit log page');
  await page.click('#lang');
  await page.waitForSelector('#nav a:has-text("Audit log")');
  await page.screenshot({ path: `${shots}/5-audit-en.png`, fullPage: true });
  // The auditor's role has no quarantine: the API says so even if the page is forced.
  const status = await page.evaluate(async () => (await fetch('/api/quarantine')).status);
  if (status !== 403) throw new Error(`auditor reached the quarantine API: ${status}`);
  await page.click('#logout');
  await page.waitForSelector('#signin');

  // The system administrator uploads a file that is no upgrade package: refused, with the reason.
  await signIn(page, env('JM_SYS_USER'), env('JM_SYS_PASS'));
  await page.goto(`${url}#/system`);
  await page.waitForSelector('#upgrade-file');
  await page.setInputFiles('#upgrade-file', env('JM_BAD_PACKAGE'));
  page.once('dialog', (d) => d.accept());
  await page.click('#upgrade-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#upgrade-result')?.className === 'error');
  const refusal = await page.textContent('#upgrade-result');
  if (!/damaged or truncated/.test(refusal)) throw new Error(`the upgrade refusal reads: ${refusal}`);
  await page.screenshot({ path: `${shots}/6-upgrade-refused.png`, fullPage: true });

  // Accounts (三权分立): the system administrator is told where security and audit accounts are
  // managed, and is offered no action on them — only on system administrators.
  await page.goto(`${url}#/accounts`);
  await page.waitForSelector('text=jianmen account');
  const actionsOn = async (name) => page.locator('tr', { has: page.locator(`td:text-is("${name}")`) }).locator('button').count();
  if (await actionsOn(env('JM_SEC_USER')) !== 0) throw new Error('actions offered on the security administrator');
  if (await actionsOn(env('JM_AUD_USER')) !== 0) throw new Error('actions offered on the audit administrator');
  // Reset and delete; no "unlock" for an account that is not locked.
  if (await actionsOn(env('JM_SYS_USER')) !== 2) throw new Error('not reset and delete on the system administrator');
  // (In English: the auditor switched the language above, and the choice is kept.)
  if (!(await page.textContent('main')).includes('at least 12 characters')) throw new Error('the password rules are not stated');
  // A new account's one-time password is shown on its own; deleting it asks first, and a
  // "no" keeps it.
  await page.fill('#account-name', 'ops2');
  await page.click('#account-form button[type=submit]');
  await page.waitForSelector('#onetime-password');
  if ((await page.textContent('#onetime-password')).length < 12) throw new Error('no one-time password shown');
  await page.screenshot({ path: `${shots}/7-accounts.png`, fullPage: true });
  const deleteOps = page.locator('tr', { has: page.locator('td:text-is("ops2")') }).locator('button[data-act=delete]');
  let question = '';
  page.once('dialog', (d) => { question = d.message(); d.dismiss(); });
  await deleteOps.click();
  await page.waitForTimeout(300);
  if (!question.includes('ops2') || await deleteOps.count() !== 1) throw new Error(`deleting did not ask first, or went on after a no: "${question}"`);
  page.once('dialog', (d) => d.accept());
  await deleteOps.click();
  await page.waitForFunction(() => ![...document.querySelectorAll('td')].some((td) => td.textContent === 'ops2'));

  return verdict;
});
