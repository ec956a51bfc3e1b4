// Drives Debian's Chromium through cluster mode's system page on the second node ($JM_URL): the
// system administrator, whose account the first node made, signs in there and finds both nodes
// of the cluster (the one it is on marked 本节点), each running, and the backup card saying
// the shared database is not in its backups. Screenshots go to $JM_SHOTS.
// Any Content-Security-Policy violation or page error fails the run.
import { env, run, signIn } from './harness.mjs';

await run('cluster', async (page, shots) => {
  await signIn(page, env('JM_SYS_USER'), env('JM_SYS_PASS'));
  await page.click('#nav a:has-text("系统")');
  const card = page.locator('#system-cluster');
  await card.waitFor();
  const text = await card.innerText();
  for (const seen of ['集群节点', env('JM_NODE_A'), `${env('JM_NODE_B')}（本节点）`]) {
    if (!text.includes(seen)) throw new Error(`the cluster card lacks ${seen}: ${text}`);
  }
  const running = await card.locator('span.badge', { hasText: '运行中' }).count();
  if (running !== 2) throw new Error(`${running} node(s) shown running: ${text}`);
  // Backups from here leave the shared database to PostgreSQL's tools, and say so.
  const backup = await page.locator('#backup-clustered').innerText();
  if (!backup.includes('pg_dump')) throw new Error(`the backup card reads: ${backup}`);
  await page.screenshot({ path: `${shots}/cluster-1-nodes.png`, fullPage: true });
  return text;
});
