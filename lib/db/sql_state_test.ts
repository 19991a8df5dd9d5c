import { equal } from "node:assert/strict";
import { isDbUnavailable } from "./db_unavailable.ts";
import {
  isDbAnswer,
  isInvalidParameterValue,
  isLoginRefused,
  isRefusal,
  isRetryable,
  isUndefinedTableOrColumn,
  sqlState,
} from "./sql_state.ts";

const pgError = (code: string) => Object.assign(new Error(`error ${code}`), { code });

Deno.test("sqlState() finds the code in the cause chain and ignores codes that are not SQLSTATEs", () => {
  equal(sqlState(new Error("wrapped", { cause: pgError("23514") })), "23514");
  equal(sqlState(pgError("ECONNREFUSED")), undefined);
  equal(sqlState("23514"), undefined);
});

Deno.test("isRefusal() blames the data for classes 22, 23, 42 and 54 only", () => {
  for (const code of ["22003", "23514", "42703", "54000"]) equal(isRefusal(pgError(code)), true);
  for (const code of ["08006", "57P01", "40P01", "53100", "XX000"]) {
    equal(isRefusal(pgError(code)), false, code);
  }
});

Deno.test("isDbAnswer() is false for a lost connection, which isDbUnavailable() reports", () => {
  for (const code of ["08006", "57P01", "57P03", "53300"]) {
    equal(isDbAnswer(pgError(code)), false, code);
    equal(isDbUnavailable(pgError(code)), true, code);
  }
  equal(isDbAnswer(pgError("40P01")), true);
  equal(isDbAnswer(new Error("no code")), false);
});

Deno.test("isRetryable() and isLoginRefused() name their classes", () => {
  equal(isRetryable(pgError("40P01")), true);
  equal(isRetryable(pgError("40001")), true);
  equal(isRetryable(pgError("23505")), false);
  equal(isLoginRefused(new Error("open", { cause: pgError("28P01") })), true);
  equal(isLoginRefused(pgError("3D000")), true);
  equal(isLoginRefused(pgError("08006")), false);
});

Deno.test("isUndefinedTableOrColumn() and isInvalidParameterValue() name their codes", () => {
  equal(isUndefinedTableOrColumn(pgError("42P01")), true);
  equal(isUndefinedTableOrColumn(new Error("read", { cause: pgError("42703") })), true);
  equal(isUndefinedTableOrColumn(pgError("42601")), false);
  equal(isInvalidParameterValue(pgError("22023")), true);
  equal(isInvalidParameterValue(pgError("22003")), false);
});
