/**
 * A configuration file's text as httpd splits it: into logical lines (ap_cfg_getline's `\`
 * continuations) and each line into words (ap_getword_conf's quoting). What the words mean is
 * httpd.ts's business.
 */

/** Lines joined where one ends with `\`, each with the number of the line it starts on. */
export function logicalLines(text: string): { text: string; line: number }[] {
  const lines: { text: string; line: number }[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split(/\r?\n/).forEach((physical, index) => {
    const continued = physical.endsWith("\\");
    const part = continued ? physical.slice(0, -1) : physical;
    pending = pending
      ? { text: pending.text + part, line: pending.line }
      : { text: part, line: index + 1 };
    if (!continued) {
      lines.push(pending);
      pending = undefined;
    }
  });
  if (pending) lines.push(pending);
  return lines;
}

/**
 * Words as Apache's ap_getword_conf splits them: by white space, except inside "double" or
 * 'single' quotes, where a backslash before the quote character escapes it. An unclosed
 * quote runs to the end of the line, as in Apache.
 */
export function tokenize(line: string): string[] {
  const words: string[] = [];
  // Searches rather than a character at a time: a line may be megabytes long.
  const space = /\s/g;
  const text = /\S/g;
  for (let i = 0;;) {
    text.lastIndex = i;
    if (!text.test(line)) break;
    i = text.lastIndex - 1;
    const quote = line[i];
    if (quote === '"' || quote === "'") {
      let end = line.indexOf(quote, i + 1);
      while (end > 0 && line[end - 1] === "\\") end = line.indexOf(quote, end + 1);
      if (end < 0) end = line.length;
      words.push(line.slice(i + 1, end).replaceAll(`\\${quote}`, quote));
      i = end + 1;
    } else {
      space.lastIndex = i;
      const end = space.test(line) ? space.lastIndex - 1 : line.length;
      words.push(line.slice(i, end));
      i = end;
    }
  }
  return words;
}
