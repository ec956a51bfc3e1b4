// Drives Debian's Chromium through replacing the gateway's self-signed certificate: the system
// administrator is refused a certificate with another certificate's key (in words), makes a
// certificate request on the system page, has it signed here by the test CA (openssl, as a CA
// would), installs the issued certificate alone (the key stayed on the gateway) and sees it
// listed as installed, with the short validity warned about; then downloads a backup. The test
// then checks what STARTTLS and the console serve, and that the backup opens. Screenshots go to $JM_SHOTS.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { env, run, signIn } from './harness.mjs';

const dir = env('JM_CA_DIR');

await run('certificates', async (page, shots) => {
  page.on('dialog', (d) => d.accept());
  await signIn(page, env('JM_SYS_USER'), env('JM_SYS_PASS'));
  await page.click('#nav a:has-text("系统")');
  await page.waitForSelector('#cert-form');
  // The clock card: the zone, the synchronisation as the system tells it ("unknown" where no
  // systemd runs the machine, as on CI), and this browser's distance from the gateway's time.
  const clock = await page.textContent('#system-clock');
  const sync = await page.textContent('#clock-sync');
  const expected = existsSync('/run/systemd/system') ? /已同步|未同步|未启用/ : /无法读取/;
  if (!clock.includes('Asia/Shanghai') || !expected.test(sync)) throw new Error(`the clock card reads: ${clock}`);
  if (!/^\d+ 秒$/.test(await page.textContent('#clock-skew'))) throw new Error(`the skew reads: ${await page.textContent('#clock-skew')}`);

  // A key that is not the certificate's is refused before anything is served.
  await page.selectOption('#cert-role', 'international');
  await page.setInputFiles('#cert-file', `${dir}/other.pem`);
  await page.setInputFiles('#cert-key-file', `${dir}/stranger.key`);
  await page.click('#cert-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#cert-result')?.className === 'error');
  const refused = await page.textContent('#cert-result');
  if (!refused.includes('私钥与证书不匹配')) throw new Error(`mismatch not explained: ${refused}`);
  await page.screenshot({ path: `${shots}/certificates-1-mismatch.png`, fullPage: true });

  await page.click('[data-request="international"]');
  await page.waitForSelector('#csr-text');
  const csr = await page.inputValue('#csr-text');
  if (!csr.startsWith('-----BEGIN CERTIFICATE REQUEST-----')) throw new Error(`no CSR: ${csr.slice(0, 80)}`);
  if (await page.locator('#csr-download[download]').count() !== 1) throw new Error('no download link');
  writeFileSync(`${dir}/request.csr`, csr);
  execFileSync('openssl', ['x509', '-req', '-in', `${dir}/request.csr`, '-CA', `${dir}/ca.pem`, '-CAkey', `${dir}/ca.key`,
    '-CAcreateserial', '-days', '20', '-copy_extensions', 'copy', '-out', `${dir}/issued.pem`], { stdio: 'pipe' });
  await page.screenshot({ path: `${shots}/certificates-2-request.png`, fullPage: true });

  // The issued certificate alone: its key is the request's.
  await page.selectOption('#cert-role', 'international');
  await page.setInputFiles('#cert-file', `${dir}/issued.pem`);
  await page.setInputFiles('#cert-key-file', []);
  await page.click('#cert-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#cert-result')?.className === 'notice'
    && document.querySelector('#cert-result').textContent.includes('SHA-256'));
  const said = await page.textContent('#cert-result');
  if (!said.includes('天内过期')) throw new Error(`the short validity is not warned about: ${said}`);
  const row = await page.textContent('#system-certificates tbody tr:first-child');
  if (!row.includes('控制台安装') || !row.includes('Jianmen Test CA')) throw new Error(`not listed as installed: ${row}`);
  await page.screenshot({ path: `${shots}/certificates-3-installed.png`, fullPage: true });

  // A backup: two passphrases that differ are caught in the page; then one is downloaded,
  // sealed (the test opens it with the passphrase through `jianmen restore`).
  await page.fill('#backup-pass', 'Backup-Passphrase-2026');
  await page.fill('#backup-pass2', 'Backup-Passphrase-2027');
  await page.click('#backup-download');
  await page.waitForFunction(() => document.querySelector('#backup-result')?.className === 'error');
  if (!(await page.textContent('#backup-result')).includes('不一致')) throw new Error('differing passphrases not caught');
  await page.fill('#backup-pass2', 'Backup-Passphrase-2026');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#backup-download')]);
  if (!/^jianmen-.+\.jbk$/.test(download.suggestedFilename())) throw new Error(`named ${download.suggestedFilename()}`);
  await download.saveAs(`${dir}/gateway.jbk`);
  await page.waitForFunction(() => document.querySelector('#backup-result')?.textContent.includes('个文件'));
  if (!(await page.textContent('#restore-command')).includes('jianmen restore')) throw new Error('no restore command shown');
  await page.screenshot({ path: `${shots}/certificates-4-backup.png`, fullPage: true });
  return 'installed the certificate issued for a request made in the console, downloaded a backup';
});
