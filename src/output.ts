/**
 * Lines to stdout and stderr that can never stop the work: written one batch at a time without
 * blocking (a reader that stops reading would otherwise freeze Deno, whose writes block, or grow
 * Bun's buffers without bound), dropped and counted past MAX_PENDING_BYTES, and given up on
 * quietly when the reader has gone (a broken pipe killed the process on Deno).
 */
import { write } from "node:fs";

/** What may wait to be written before new lines are dropped. */
export const MAX_PENDING_BYTES = 1024 * 1024;

export interface LineWriter {
  (line: string): void;
  /** Resolves once everything queued is written, or after `timeoutMs` if it cannot be. */
  flush(timeoutMs: number): Promise<void>;
  /** Lines dropped because nobody read them fast enough. */
  readonly dropped: number;
}

export function lineWriter(fd: number, maxPendingBytes = MAX_PENDING_BYTES): LineWriter {
  let queue: string[] = [];
  let pending = 0;
  let writing = false;
  let gone = false;
  let dropped = 0;
  let droppedSinceNotice = 0;
  const idle: (() => void)[] = [];

  const next = () => {
    if (gone || queue.length === 0) {
      writing = false;
      idle.splice(0).forEach((resolve) => resolve());
      return;
    }
    writing = true;
    const batch = queue.join("");
    queue = [];
    write(fd, batch, (error) => {
      pending -= batch.length;
      // EPIPE and the like: the reader is gone, and will not come back.
      if (error) gone = true;
      next();
    });
  };

  const writer = (line: string) => {
    if (gone) return;
    if (pending + line.length + 1 > maxPendingBytes) {
      dropped++;
      droppedSinceNotice++;
      return;
    }
    if (droppedSinceNotice) {
      const notice = `(${droppedSinceNotice} lines dropped: nobody was reading)\n`;
      droppedSinceNotice = 0;
      queue.push(notice);
      pending += notice.length;
    }
    queue.push(`${line}\n`);
    pending += line.length + 1;
    if (!writing) next();
  };
  writer.flush = (timeoutMs: number) =>
    writing
      ? Promise.race([
        new Promise<void>((resolve) => idle.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref?.()),
      ])
      : Promise.resolve();
  Object.defineProperty(writer, "dropped", { get: () => dropped });
  return writer as LineWriter;
}
