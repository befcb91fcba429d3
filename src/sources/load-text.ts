/** The text an application writes to report its load: `ready=N&busy=M`, or JSON. */
import { decimal, invalidCount, type Load, parseFields } from "../codec.ts";

/**
 * `ready=N&busy=M` (the heartbeat's own fields; others ignored) or `{"ready": N, "busy": M}`.
 * Throws, saying what is wrong, for anything else.
 */
export function parseLoadText(text: string): Load {
  const trimmed = text.trim();
  if (trimmed === "") {
    throw new Error('empty output: expected ready=N&busy=M or {"ready":N,"busy":M}');
  }
  let ready: unknown;
  let busy: unknown;
  /** How each value was written, for messages. */
  let written: { ready: string; busy: string };
  if (trimmed.startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch {
      throw new Error(`not valid JSON: ${preview(trimmed)}`);
    }
    ({ ready, busy } = (json ?? {}) as { ready?: unknown; busy?: unknown });
    written = { ready: JSON.stringify(ready), busy: JSON.stringify(busy) };
  } else {
    // Two readings are not one: merging them would report numbers neither of them said.
    if (/[\r\n]/.test(trimmed)) {
      throw new Error(`more than one line: expected one reading, got ${preview(trimmed)}`);
    }
    const fields = parseFields(trimmed);
    ready = fields.has("ready") ? decimal(fields.get("ready")!) : undefined;
    busy = fields.has("busy") ? decimal(fields.get("busy")!) : undefined;
    written = { ready: `'${fields.get("ready")}'`, busy: `'${fields.get("busy")}'` };
  }
  if (ready === undefined || busy === undefined) {
    throw new Error(`expected ready=N&busy=M or {"ready":N,"busy":M}, got ${preview(trimmed)}`);
  }
  const problem = invalidCount("ready", ready, written.ready) ??
    invalidCount("busy", busy, written.busy);
  if (problem) throw new Error(problem);
  return { ready: ready as number, busy: busy as number };
}

function preview(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}
