// Drives Debian's Chromium through the system settings: the system administrator adds a
// protected domain and its route on the system page, is refused a next hop that is not one (in
// words), adds an SMTP address on $JM_SMTP_PORT (after wrong ones are refused in words), saves,
// restarts the gateway from the page (its service manager starts it again) and finds the page
// back with the settings in force. The test then sends mail to the new domain at the new port.
// Screenshots go to $JM_SHOTS.
import { env, run, signIn } from './harness.mjs';

await run('settings', async (page, shots) => {
  page.on('dialog', (d) => d.accept());
  await signIn(page, env('JM_SYS_USER'), env('JM_SYS_PASS'));
  await page.click('#nav a:has-text("系统")');
  await page.waitForSelector('#settings-form');
  if (!(await page.textContent('#settings-state')).includes('配置文件')) throw new Error('not said to be the file\'s');
  await page.fill('#set-protected', 'example.com\nnew.test');
  await page.click('#route-add');
  const row = page.locator('#set-routes tr').last();
  await row.locator('.route-domain').fill('new.test');
  await row.locator('.route-host').fill('not a host');
  await row.locator('.route-port').fill(env('JM_NEW_PORT'));
  await row.locator('.route-tls').selectOption('none');
  await page.click('#settings-save');
  await page.waitForFunction(() => document.querySelector('#settings-result')?.className === 'error');
  const refused = await page.textContent('#settings-result');
  if (!refused.includes('下一跳') || !refused.includes('须为主机名或 IP 地址')) throw new Error(`the refusal reads: ${refused}`);
  await row.locator('.route-host').fill('127.0.0.1');
  // A second SMTP address: a privileged port the gateway does not serve, and an address this
  // machine does not have, are refused in words; a free port of its own is taken.
  const smtp = await page.inputValue('#set-smtp-listen');
  for (const [wrong, words] of [['127.0.0.1:22', '端口 22 低于 1024'], [`192.0.2.1:${env('JM_SMTP_PORT')}`, '192.0.2.1 不是本机的地址'], ['localhost:25', '须为“IP:端口”']]) {
    await page.fill('#set-smtp-listen', `${smtp}\n${wrong}`);
    await page.evaluate(() => { document.querySelector('#settings-result').textContent = ''; });
    await page.click('#settings-save');
    await page.waitForFunction(() => document.querySelector('#settings-result')?.className === 'error' && document.querySelector('#settings-result').textContent);
    const said = await page.textContent('#settings-result');
    if (!said.includes('SMTP 监听地址') || !said.includes(words)) throw new Error(`${wrong} is refused as: ${said}`);
  }
  await page.fill('#set-smtp-listen', `${smtp}\n127.0.0.1:${env('JM_SMTP_PORT')}`);
  await page.click('#settings-save');
  await page.waitForSelector('#settings-pending');
  const said = await page.textContent('#settings-state');
  if (!said.includes('受保护的域') || !said.includes('路由') || !said.includes('SMTP 监听地址') || said.includes('syslog')) throw new Error(`the state reads: ${said}`);
  await page.screenshot({ path: `${shots}/settings-1-saved.png`, fullPage: true });
  await page.click('#system-restart');
  await page.waitForFunction(() => (document.querySelector('#settings-result')?.textContent || '').includes('网关已重启'), null, { timeout: 90000 });
  if (await page.locator('#settings-pending').count() !== 0) throw new Error('still pending after the restart');
  await page.screenshot({ path: `${shots}/settings-2-restarted.png`, fullPage: true });
  return said;
});
