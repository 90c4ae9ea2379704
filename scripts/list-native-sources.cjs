// Lists the native sources for binding.gyp (and for scripts/dev-build.sh): every .cc under native/.
const fs = require("node:fs");
const path = require("node:path");

function walk(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".cc") ? [path.join(dir, e.name)] : [],
    );
}
process.stdout.write(walk("native").sort().join(" "));
