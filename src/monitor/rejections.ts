/**
 * Why the monitor turned something away, each reason once: the types and /metrics' label values
 * (every reason counted, at 0 until it happens) both come from these lists. A reason the codec,
 * the signature check or the connection limits add that is missing here fails to type-check.
 */

/** Why a message was not taken as a heartbeat. */
export const REJECTIONS = [
  // The codec's (RejectReason).
  "oversize",
  "missing-field",
  "bad-number",
  // The signature check's (SignatureProblem).
  "unsigned",
  "forged",
  "replayed",
  "future",
  "wrong-sender",
  // The monitor's own.
  "not-allowed",
  "full",
  "no-address",
] as const;

export type Rejection = typeof REJECTIONS[number];

/** Why the HTTP side refused a request or a connection, other than for what a heartbeat said. */
export const HTTP_REFUSALS = [
  "not-found",
  "method-not-allowed",
  "timeout",
  "not-allowed",
  // The connection limits' (ConnectionRefusal).
  "too-many-connections",
  "too-many-from-address",
] as const;

export type HttpRefusal = typeof HTTP_REFUSALS[number];
