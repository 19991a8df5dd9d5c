import { equal, match, throws } from "node:assert/strict";
import { parseTime } from "./parse_time.ts";

const NOW = new Date("2024-03-10T12:00:00Z");
const iso = (input: string | number) => parseTime(input, NOW).toISOString();

Deno.test("parseTime() reads relative times as offsets from now, unsigned meaning ago", () => {
  equal(iso("-24h"), "2024-03-09T12:00:00.000Z");
  equal(iso("7d"), "2024-03-03T12:00:00.000Z");
  equal(iso("-30m"), "2024-03-10T11:30:00.000Z");
  equal(iso("-2w"), "2024-02-25T12:00:00.000Z");
  equal(iso("-90s"), "2024-03-10T11:58:30.000Z");
  equal(iso("+1h"), "2024-03-10T13:00:00.000Z");
  equal(iso("3 hours ago"), "2024-03-10T09:00:00.000Z");
  equal(iso("now-1.5h"), "2024-03-10T10:30:00.000Z");
  equal(iso(" NOW "), "2024-03-10T12:00:00.000Z");
});

Deno.test("parseTime() reads ISO dates and date-times, a time without zone as UTC", () => {
  equal(iso("2024-01-15"), "2024-01-15T00:00:00.000Z");
  equal(iso("2024-01-15T08:30"), "2024-01-15T08:30:00.000Z");
  equal(iso("2024-01-15 08:30:15"), "2024-01-15T08:30:15.000Z");
  equal(iso("2024-01-15T08:30:15.25Z"), "2024-01-15T08:30:15.250Z");
  equal(iso("2024-01-15T08:30:00+01:00"), "2024-01-15T07:30:00.000Z");
  equal(iso("2024-01-15T08:30:00-0530"), "2024-01-15T14:00:00.000Z");
  equal(iso("2024-02-29"), "2024-02-29T00:00:00.000Z");
});

Deno.test("parseTime() reads unix seconds, 13-digit milliseconds, today and yesterday", () => {
  equal(iso("1700000000"), "2023-11-14T22:13:20.000Z");
  equal(iso(1700000000), "2023-11-14T22:13:20.000Z");
  equal(iso("1700000000123"), "2023-11-14T22:13:20.123Z");
  equal(iso("today"), "2024-03-10T00:00:00.000Z");
  equal(iso("yesterday"), "2024-03-09T00:00:00.000Z");
});

Deno.test("parseTime() rejects other input quoting it and listing the accepted forms", () => {
  for (const bad of ["last tuesday", "", "-24x", "2024-13-01", "2023-02-29", "2024-01-15T25:00"]) {
    throws(() => parseTime(bad, NOW), (e: Error) => {
      equal(e.name, "RangeError");
      match(e.message, new RegExp(`"${bad}"`));
      return true;
    });
  }
  throws(() => parseTime("yesterday-ish", NOW), /expected ISO 8601 .*-24h.*unix seconds/);
  throws(() => parseTime("+1h ago", NOW), /Cannot parse time "\+1h ago"/);
  throws(() => parseTime("0075-01-01", NOW), /outside 1970–9999/);
  throws(() => parseTime(-5, NOW), /Cannot parse time "-5"/);
});
