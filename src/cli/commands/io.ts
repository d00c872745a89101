// The streams a command writes to (process.stdout/stderr in the CLI; buffers in tests).
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean };
}
