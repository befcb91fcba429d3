/** Linux's /proc/PID/status, read by the SIGUSR1 guard (its signal masks) and -t (capabilities). */

/** The hexadecimal mask `field` (SigBlk, CapEff...) of a /proc/PID/status text; undefined if absent. */
export function statusMask(status: string, field: string): bigint | undefined {
  const mask = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, "m").exec(status)?.[1];
  return mask === undefined ? undefined : BigInt(`0x${mask}`);
}
