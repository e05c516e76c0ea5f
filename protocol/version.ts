/** Wire contract version. Bumped on any incompatible change to a route, schema or error code. */
export const PROTOCOL_VERSION = '1.0';
