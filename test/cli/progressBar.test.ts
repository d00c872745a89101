import { ProgressBar } from '../../src/cli/progressBar';

function stream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, isTTY, write: (s: string) => chunks.push(s) };
}

describe('ProgressBar', () => {
  test('draws one carriage-return line per update on a TTY and ends with a newline', () => {
    const s = stream(true);
    const bar = new ProgressBar(s, 'steps', 'bar', 10);
    bar.update(0, 4);
    bar.update(2, 4);
    bar.update(4, 4);
    bar.finish();
    expect(s.chunks).toHaveLength(4);
    expect(s.chunks[1]).toMatch(/^\r\[#####-----\] 2\/4 steps {2}\d+\.\d s {2}ETA \d+\.\d s\x1b\[K$/);
    expect(s.chunks[2]).toContain('[##########] 4/4 steps');
    expect(s.chunks[3]).toBe('\n');
  });

  test('"lines" mode writes one plain line per step, whatever the stream', () => {
    const s = stream(false);
    const bar = new ProgressBar(s, 'steps', 'lines');
    bar.update(1, 2);
    bar.update(2, 2);
    bar.finish();
    expect(s.chunks).toEqual(['step 1/2\n', 'step 2/2\n']);
  });

  test('writes nothing by default when the stream is not a terminal', () => {
    const s = stream(false);
    const bar = new ProgressBar(s, 'steps');
    bar.update(1, 2);
    bar.finish();
    expect(s.chunks).toEqual([]);
  });
});
