/**
 * The process's environment, for the layers that must not name a runtime's API: in Deno variables
 * are read and written only where permission is already granted, so that nothing prompts; Node's
 * are read from `process.env`; in a browser every variable reads as unset.
 *
 * @module
 */

/** Deno's namespace, when this runs in Deno. */
const deno: typeof Deno | undefined = (globalThis as { Deno?: typeof Deno }).Deno;
/** Node's process, when this runs in Node. */
const proc = deno ? undefined : (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;

function granted(name: string): boolean {
  try {
    return deno?.permissions.querySync({ name: "env", variable: name }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * A variable's value, or undefined when it is unset, empty, or not readable without a prompt.
 *
 * @param name The variable.
 * @returns Its value.
 */
export function readEnv(name: string): string | undefined {
  const v = proc?.env ? proc.env[name] : granted(name) ? deno!.env.get(name) : undefined;
  return v === "" ? undefined : v;
}

/** The operating system (`"linux"`, `"darwin"`, `"windows"`, ...), or undefined outside Deno. */
export function osName(): string | undefined {
  return deno?.build.os;
}

/**
 * Runs `work` with a variable set to `value` when it is unset and may be written without a
 * prompt, and removes it again after.
 *
 * @param name The variable.
 * @param value Its value meanwhile.
 * @param work What runs with it.
 * @returns What `work` returns, and whether the variable was set.
 */
export async function withEnv<T>(
  name: string,
  value: string,
  work: () => Promise<T>,
): Promise<{ result: T; set: boolean }> {
  let set = false;
  try {
    set = granted(name) && deno!.env.get(name) === undefined;
    if (set) deno!.env.set(name, value);
  } catch {
    set = false;
  }
  try {
    return { result: await work(), set };
  } finally {
    if (set) deno!.env.delete(name);
  }
}
