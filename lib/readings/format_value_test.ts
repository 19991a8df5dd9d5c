import { equal } from "node:assert/strict";
import { formatValue } from "./format_value.ts";

Deno.test("formatValue() rounds to a readable precision and appends the unit", () => {
  equal(formatValue(812, "ppm"), "812 ppm");
  equal(formatValue(22.5349, "°C"), "22.53 °C");
  equal(formatValue(1013.2549, "hPa"), "1013.3 hPa");
  equal(formatValue(45.1), "45.1");
  equal(formatValue(-3.456, null), "-3.46");
});
