// Prints what WebGPU adapter this machine gives Deno (used when checking a new machine).
for (const powerPreference of ["high-performance", "low-power", undefined] as const) {
  const a = await navigator.gpu?.requestAdapter(powerPreference ? { powerPreference } : {});
  console.log(
    `requestAdapter(${powerPreference ?? "default"}):`,
    a ? `${a.info.vendor} ${a.info.description} fallback=${a.info.isFallbackAdapter}` : "null",
  );
}
