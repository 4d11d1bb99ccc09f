// record-golden: writes fixtures/build/<case>/golden.json from a `docker save` archive of the
// reference engine's image. Used by fixtures/build/record.sh (needs the reference engine; not CI).
//   node dist/test/helpers/record-golden.js IMAGE.tar IMAGE-NAME BASE.tar BASE-NAME OUT.json
import { writeFile } from 'node:fs/promises';
import { goldenJson, goldenOf, readImageArchive } from './imagetree.js';

const [imageTar, imageName, baseTar, baseName, out] = process.argv.slice(2);
if (!imageTar || !imageName || !baseTar || !baseName || !out) {
  process.stderr.write('usage: record-golden IMAGE.tar IMAGE-NAME BASE.tar BASE-NAME OUT.json\n');
  process.exit(2);
}
const base = await readImageArchive(baseTar, baseName);
const img = await readImageArchive(imageTar, imageName);
await writeFile(out, goldenJson(goldenOf(img, { name: baseName, image: base })));
