/**
 * Where one heartbeat goes, whatever carries it: a UDP destination (through a transport of
 * src/transport/), a host name resolved again now and then, an HTTP POST, or stdout (--dry-run).
 */
/** A name for the log, and a way there. */
export interface Sender {
  /** `239.0.0.1:27999` or `http://proxy/heartbeat`. */
  readonly name: string;
  /** Rejects, saying why, when the heartbeat did not get there. */
  send(payload: Uint8Array): Promise<void>;
}
