// Guard: every npm script runs on the Node that the `node` devDependency provides (24 LTS).
// npm puts node_modules/.bin first on PATH, so `node` there is Node 24. If it is not, fail loudly.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `\n\u2716 meshwork needs Node >= 22.19 (Node 24 LTS is installed as a devDependency), ` +
      `but this script runs on Node ${process.versions.node} (${process.execPath}).\n` +
      `  Run it through npm (npm test, npm run demo) so node_modules/.bin/node is used, ` +
      `or run \`npm install\` first; never install with --ignore-scripts, the node package needs its install script.\n`,
  );
  process.exit(1);
}
