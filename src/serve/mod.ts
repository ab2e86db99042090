/**
 * The OpenAI-compatible server.
 *
 * @module
 */

export { type CompletionServer, type ModelSpec, serve, type ServeLimits, type ServeOptions } from "./server.ts";
export type { BatchStats } from "./serving_backend.ts";
