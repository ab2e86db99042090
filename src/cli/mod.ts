/**
 * The command line.
 *
 * @module
 */

export { VERSION } from "./cli.ts";
