/**
 * The context rule, written once: the tokens a call holds at a time (a prompt and the tokens
 * generated after it, or the rows `forward` reads) must fit the model's context window. Each caller
 * words its own advice; the server answers OpenAI's `context_length_exceeded`.
 *
 * @module
 */

/**
 * The tokens past the context, or 0 when they fit.
 *
 * @param prompt Tokens of the prompt (or of the input).
 * @param newTokens Tokens to generate after it (0 for a forward pass).
 * @param context The context window.
 * @returns How many tokens too many.
 */
export function overContext(prompt: number, newTokens: number, context: number): number {
  return Math.max(0, prompt + newTokens - context);
}

/**
 * Throws when a prompt and the tokens generated after it do not fit the context.
 *
 * @param what What the caller was about to do, for the message.
 * @param prompt Tokens of the prompt.
 * @param newTokens `maxNewTokens`.
 * @param context The context window.
 * @param advice What to do instead.
 * @throws {RangeError} Naming the sizes.
 */
export function checkContext(
  what: string,
  prompt: number,
  newTokens: number,
  context: number,
  advice = "shorten the prompt or ask for fewer tokens",
): void {
  if (overContext(prompt, newTokens, context) > 0) {
    throw new RangeError(
      `Cannot ${what}: the prompt's ${prompt} tokens plus maxNewTokens ${newTokens} are over the context of ${context} tokens; ${advice}`,
    );
  }
}
