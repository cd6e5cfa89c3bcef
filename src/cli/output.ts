/** Plain-text output helpers shared by the commands. */

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));
}

/** A command line that is wrong in itself (options that do not go together): printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
