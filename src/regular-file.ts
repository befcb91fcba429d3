/**
 * Reading a file a user names (a config file, a key file) that must be a regular file of bounded
 * size: a FIFO would hang the read (and the start, `-t` and a reload with it), /dev/zero would
 * never end.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";

/** The text of `path` and its mode; throws an Error saying what is wrong with it. */
export function readRegularFile(path: string, maxBytes: number): { text: string; mode: number } {
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new Error("not a regular file");
    if (info.size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
    return { text: readFileSync(fd, "utf8"), mode: info.mode };
  } finally {
    closeSync(fd);
  }
}
