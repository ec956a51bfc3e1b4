// Drives Debian's Chromium through two-step sign-in: the security administrator turns it on
// (the page shows a QR code and the key; a code computed here from the key, RFC 6238, confirms
// it), signs out, signs in again — the password alone is not enough, the page asks for the
// code — and gets in with the next code. Screenshots go to $JM_SHOTS.
import { createHmac } from 'node:crypto';
import { env, run, signIn } from './harness.mjs';

const base32 = (text) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...text.replace(/=+$/, '')].map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
};
const totp = (secret, seconds) => {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(seconds / 30)));
  const h = createHmac('sha1', base32(secret)).update(counter).digest();
  const o = h[h.length - 1] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, '0');
};

await run('totp', async (page, shots) => {
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("密码与两步验证")');
  await page.click('#totp-begin');
  await page.waitForSelector('#totp-secret');
  if (await page.locator('svg.qr path').count() !== 1) throw new Error('no QR code');
  const secret = (await page.textContent('#totp-secret')).trim();
  await page.screenshot({ path: `${shots}/totp-1-enrol.png`, fullPage: true });
  const now = Date.now() / 1000;
  await page.fill('#totp-code', totp(secret, now));
  await page.click('#totp-confirm');
  await page.waitForFunction(() => document.querySelector('#totp-result')?.className === 'notice');
  if (!(await page.textContent('#totp-card')).includes('已启用')) throw new Error('two-step sign-in is not shown on');

  await page.click('#logout');
  await page.waitForSelector('#signin');
  await page.fill('#username', env('JM_SEC_USER'));
  await page.fill('#password', env('JM_NEW_PASS'));
  await page.click('#signin');
  await page.waitForSelector('#totp-step:not([hidden])');
  if (await page.locator('#nav a').count() !== 0) throw new Error('signed in by the password alone');
  await page.screenshot({ path: `${shots}/totp-2-code.png`, fullPage: true });
  // The confirming code is used up: the next one signs in.
  await page.fill('#totp', totp(secret, now + 30));
  await page.click('#signin');
  await page.waitForSelector('#nav a');
  return 'signed in with a one-time code';
});
