/**
 * A reading for people, with its unit when known: `812 ppm`, `22.53 °C`, `1013.2 hPa`. Whole
 * numbers stay whole; others keep two decimals (one from 100 up), without trailing zeros.
 */
export function formatValue(value: number, unit?: string | null): string {
  const digits = Math.abs(value) >= 100 ? 1 : 2;
  const text = Number.isInteger(value) ? String(value) : String(Number(value.toFixed(digits)));
  return unit ? `${text} ${unit}` : text;
}
