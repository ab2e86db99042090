/**
 * GPT-2's tokenizer.
 *
 * @module
 */

export { decode, encode, END_OF_TEXT, TextStreamer } from "./tokenizer.ts";
