import { equal } from "node:assert/strict";
import { DbUnavailable, isDbUnavailable } from "./db_unavailable.ts";

const coded = (code: string, message = "x") => Object.assign(new Error(message), { code });

Deno.test("isDbUnavailable() knows lost and refused connections", () => {
  for (
    const e of [
      coded("08006"),
      coded("08001"),
      coded("57P01", "terminating connection due to administrator command"),
      coded("57P02"),
      coded("57P03", "the database system is starting up"),
      coded("53300", "sorry, too many clients already"),
      coded("CONNECTION_CLOSED", "write CONNECTION_CLOSED 127.0.0.1:5432"),
      coded("CONNECTION_ENDED"),
      coded("CONNECTION_DESTROYED"),
      coded("CONNECT_TIMEOUT"),
      coded("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432"),
      coded("ECONNRESET"),
      coded("EPIPE"),
      new Error("This socket has been ended by the other party"),
      new Deno.errors.ConnectionRefused("refused"),
      new DbUnavailable(),
      new Error("wrapped", { cause: coded("ECONNRESET") }),
    ]
  ) equal(isDbUnavailable(e), true, String((e as Error).message));
});

Deno.test("isDbUnavailable() leaves errors the database answered with alone", () => {
  for (
    const e of [
      coded("42703", "column does not exist"),
      coded("57014", "canceling statement due to statement timeout"),
      coded("22012"),
      coded("40P01"),
      new Error("something else"),
      new TypeError("boom"),
      null,
      undefined,
      "ECONNREFUSED",
    ]
  ) equal(isDbUnavailable(e), false, String(e));
});
