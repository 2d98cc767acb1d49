// A node:test reporter that writes one line per top-level test in the format
// of meson's testlog.json ({"name", "result", "duration"}), so scripts/test.sh
// counts the Node tests in its "N passed, N failed" summary. Selected by
// test/run.js when $REGIOND_NODE_TESTLOG names the file to write.
import path from 'node:path';

export default async function* testlogReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    if (data.nesting !== 0 || data.details?.type === 'suite') continue;
    const file = data.file ? path.basename(data.file) : 'node';
    const ok = event.type === 'test:pass' && !data.skip;
    const seconds = (data.details?.duration_ms ?? 0) / 1000;
    yield `${JSON.stringify({ name: `node/${file}/${data.name}`, result: ok ? 'OK' : 'FAIL', duration: seconds })}\n`;
  }
}
