// electron-builder's beforeBuild hook: rebuilds our N-API BLAS addon against Electron's headers, so that the
// packaged engine process (a utilityProcess) can load it. N-API is ABI-stable, so this mostly fixes the
// toolchain/runtime pairing; better-sqlite3 is rebuilt by electron-builder itself (npmRebuild).
// Returning true lets electron-builder go on to install/rebuild node_modules as usual.

const { execFileSync } = require('node:child_process');
const { join } = require('node:path');

module.exports = async function beforeBuild(context) {
  const root = join(__dirname, '..');
  const electronVersion = context.electronVersion ?? require(join(root, 'node_modules', 'electron', 'package.json')).version;
  execFileSync(
    process.execPath,
    [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild', `--target=${electronVersion}`, `--arch=${context.arch}`, '--dist-url=https://electronjs.org/headers'],
    { cwd: join(root, 'native'), stdio: 'inherit' },
  );
  return true;
};
