/** The monitor's defaults that the settings table names, in a leaf: importing it pulls in nothing. */

/** Where heartbeats are POSTed when no --http-path is given. */
export const DEFAULT_HTTP_PATHS = ["/heartbeat", "/HeartbeatListener"];
