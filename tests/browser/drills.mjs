// Drives Debian's Chromium as the people of a phishing drill: each opens their link
// ($JM_LINKS, space-separated); the first $JM_SUBMIT type an account and a password ($JM_TYPED)
// into the landing page and submit it, and see the training page. Then the security
// administrator reads the drill's results ($JM_DRILL) with the trend and funnel charts (ECharts). Screenshots go to
// $JM_SHOTS. Any Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('drills', async (page, shots) => {
  const links = env('JM_LINKS').split(' ');
  const submit = Number(env('JM_SUBMIT'));
  for (const [i, link] of links.entries()) {
    await page.goto(link);
    await page.waitForSelector('#drill-form');
    if (i < submit) {
      await page.fill('#drill-user', `user${i}`);
      await page.fill('#drill-pass', env('JM_TYPED'));
      if (i === 0) await page.screenshot({ path: `${shots}/drills-1-landing.png`, fullPage: true });
      await page.click('#drill-submit');
      await page.waitForSelector('#drill-training');
      if (i === 0) await page.screenshot({ path: `${shots}/drills-2-training.png`, fullPage: true });
    }
  }
  await signIn(page, env('JM_SEC_USER'), env('JM_SEC_PASS'));
  await page.click('#nav a:has-text("钓鱼演练")');
  // The charts are ECharts': their data is read back from the library, as drawn.
  const chartData = (id) => page.evaluate((sel) => {
    const node = document.querySelector(sel);
    const chart = node && window.echarts && window.echarts.getInstanceByDom(node);
    return chart ? chart.getOption().series.map((s) => s.data.map((v) => (typeof v === 'object' ? v.value : v))) : null;
  }, id);
  await page.waitForFunction(() => { const n = document.querySelector('#drill-trend'); return n && window.echarts && window.echarts.getInstanceByDom(n); });
  const [clicked, submitted] = await chartData('#drill-trend');
  if (!clicked.includes(25) || !submitted.includes(10)) throw new Error(`the trend reads ${clicked} clicked, ${submitted} submitted`);
  await page.screenshot({ path: `${shots}/drills-3-list.png`, fullPage: true });
  await page.click(`tr[data-id="${env('JM_DRILL')}"]`);
  await page.waitForSelector('#drill-total');
  const total = await page.locator('#drill-total tbody tr').innerText();
  if (!total.includes('25%') || !total.includes('10%')) throw new Error(`the results read: ${total}`);
  await page.waitForFunction(() => { const n = document.querySelector('#drill-funnel'); return n && window.echarts && window.echarts.getInstanceByDom(n); });
  const [funnel] = await chartData('#drill-funnel');
  if (funnel.length !== 5 || funnel[2] * 4 !== funnel[0]) throw new Error(`the funnel reads ${funnel}`);
  await page.screenshot({ path: `${shots}/drills-4-results.png`, fullPage: true });
  // A built-in template as the start of a custom one.
  await page.click('a:has-text("返回")');
  await page.waitForSelector('#drill-editor');
  await page.selectOption('#drill-template', 'builtin:parcel-zh');
  await page.fill('#tpl-subject', '您的快递（单号 SF2026）待确认');
  await page.click('#tpl-save');
  await page.waitForSelector('#template-result.notice');
  const chosen = await page.locator('#drill-template').inputValue();
  if (!chosen.startsWith('custom:')) throw new Error(`the saved template is ${chosen}`);
  const subject = await page.locator('#drill-subject').innerText();
  if (!subject.includes('SF2026')) throw new Error(`the preview reads: ${subject}`);
  await page.screenshot({ path: `${shots}/drills-5-editor.png`, fullPage: true });
  return total;
});
