/**
 * MIME types accepted in SETUP. Metadata is always composite metadata; data is JSON.
 * Clients may name a well-known MIME type by its numeric id or by its string form: both are accepted.
 */
export const MIME = {
  compositeMetadata: 'message/x.rsocket.composite-metadata.v0',
  routing: 'message/x.rsocket.routing.v0',
  authentication: 'message/x.rsocket.authentication.v0',
  json: 'application/json',
} as const;

/** Well-known MIME ids from the RSocket extension registry. */
export const WELL_KNOWN_MIME_ID = {
  [MIME.json]: 0x05,
  [MIME.authentication]: 0x7c,
  [MIME.routing]: 0x7e,
  [MIME.compositeMetadata]: 0x7f,
} as const;

export const ACCEPTED_METADATA_MIME: readonly string[] = [MIME.compositeMetadata];
export const ACCEPTED_DATA_MIME: readonly string[] = [MIME.json];
