// `npm run bench [-- --quick]`: runs every scenario in one process, one after another, and
// writes bench/results/<date>.json and .md with ratios against raw undici.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { overhead } from './overhead/run.ts';
import { matchCost } from './routing/match-cost.ts';
import { parseArgs } from './support/harness.ts';

const args = parseArgs(process.argv.slice(2));
const scenarios: Record<string, (o: { quick: boolean }) => Promise<{ results: unknown; table: string }>> = {
  overhead,
  routing: matchCost,
};

const started = new Date();
const report: Record<string, unknown> = {
  date: started.toISOString(),
  quick: args.quick,
  node: process.version,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  scenarios: {},
};
let md = `# meshwork bench, ${started.toISOString()}${args.quick ? ' (quick)' : ''}\n\nNode ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model}).\n`;
for (const [name, run] of Object.entries(scenarios)) {
  console.log(`\n== ${name}`);
  const { results, table } = await run(args);
  console.log(table);
  (report.scenarios as Record<string, unknown>)[name] = results;
  md += `\n## ${name}\n\n${table}\n`;
}
const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });
const stamp = started.toISOString().slice(0, 10);
writeFileSync(new URL(`${stamp}.json`, dir), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(new URL(`${stamp}.md`, dir), md);
console.log(`\nwrote bench/results/${stamp}.json and .md`);
