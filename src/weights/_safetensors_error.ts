/**
 * The safetensors reader's error, in a module of its own so that the byte sources can raise it.
 *
 * @module
 */

/** Thrown when a file is not a valid safetensors file, or holds what cannot be used. */
export class SafetensorsError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the file and the tensor.
   */
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}
