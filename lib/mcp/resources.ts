import { type McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Variables } from "@modelcontextprotocol/sdk/shared/uriTemplate.js";
import type { StoredFile, ToolDeps } from "./deps.ts";
import { InvalidParams } from "./_invalid_params.ts";
import { describeSchema, loadCatalog, ReadingsError, sensorDetails } from "../readings/mod.ts";

/** Largest part of a cached CSV returned by a `query://` resource read. */
export const CSV_RESOURCE_MAX_BYTES = 1024 * 1024;

/**
 * Registers the MCP resources: `schema://database` (tables, columns, units, as markdown), one
 * `sensor://{sensor_id}` per sensor (device, metrics, units, first and latest readings, as JSON)
 * and one `query://{query_id}` per cached query result (its CSV, the first 1 MB).
 */
export function registerResources(server: McpServer, deps: ToolDeps): void {
  server.registerResource("database-schema", "schema://database", {
    title: "Database schema",
    description:
      "Tables, columns, types, approximate row counts and the unit of every metric; read it before writing SQL for execute_sql_query.",
    mimeType: "text/markdown",
  }, async (uri: URL) => ({
    contents: [{ uri: uri.href, mimeType: "text/markdown", text: await describeSchema(deps.db) }],
  }));

  server.registerResource(
    "sensor",
    new ResourceTemplate("sensor://{sensor_id}", {
      list: async () => {
        const { sensors } = await loadCatalog(deps.db);
        return {
          resources: sensors.map((r) => ({
            uri: `sensor://${r.sensorId}`,
            name: `${r.deviceId}/${r.sensorType}`,
            title: `${r.sensorType} on ${r.deviceName ?? r.deviceId}${
              r.location ? ` (${r.location})` : ""
            }`,
            description:
              `Sensor ${r.sensorId}: device, metrics with units, first and latest readings`,
            mimeType: "application/json",
          })),
        };
      },
      complete: {
        sensor_id: async (value: string) => {
          const { sensors } = await loadCatalog(deps.db);
          return sensors.map((r) => String(r.sensorId)).sort((a, b) => Number(a) - Number(b))
            .filter((id) => id.startsWith(value)).slice(0, 100);
        },
      },
    }),
    {
      title: "Sensor",
      description:
        "One sensor: its device (name, location, firmware, status), metrics with units, where its readings are stored, the time of its first reading and its latest values.",
      mimeType: "application/json",
    },
    async (uri: URL, { sensor_id }: Variables) => {
      const raw = Array.isArray(sensor_id) ? sensor_id[0] : sensor_id;
      const id = /^\d{1,9}$/.test(raw ?? "") ? Number(raw) : NaN;
      if (!Number.isInteger(id)) {
        throw new InvalidParams(
          `Cannot read "${uri.href}": the sensor id must be a number, e.g. sensor://1`,
        );
      }
      try {
        const details = await sensorDetails(deps.db, id);
        return {
          contents: [{
            uri: uri.href,
            mimeType: "application/json",
            text: JSON.stringify(details, null, 2),
          }],
        };
      } catch (error) {
        if (error instanceof ReadingsError) {
          throw new InvalidParams(error.message, { cause: error });
        }
        throw error;
      }
    },
  );

  server.registerResource(
    "query-result",
    new ResourceTemplate("query://{query_id}", {
      list: async () => {
        const results = await deps.results.list();
        return {
          resources: results.map((r) => ({
            uri: `query://${r.queryId}`,
            name: `query ${r.queryId}`,
            description: `Cached query result: ${r.rowCount} rows, ${r.bytes} bytes, created ` +
              `${r.createdAt.toISOString()}`,
            mimeType: "text/csv",
            size: r.bytes,
          })),
        };
      },
    }),
    {
      title: "Query result",
      description:
        "A cached result of execute_sql_query or get_sensor_history as CSV (header row first); only the first 1 MB is returned.",
      mimeType: "text/csv",
    },
    async (uri: URL, { query_id }: Variables) => {
      const id = String(Array.isArray(query_id) ? query_id[0] : query_id);
      const file = await deps.results.openFile(id, "csv");
      if (!file) {
        throw new InvalidParams(
          `Unknown or expired query_id "${id}": run execute_sql_query or get_sensor_history again`,
        );
      }
      const { text, shown, truncated, size } = await readHead(file, CSV_RESOURCE_MAX_BYTES);
      const contents: { uri: string; mimeType: string; text: string }[] = [
        { uri: uri.href, mimeType: "text/csv", text },
      ];
      if (truncated) {
        contents.push({
          uri: uri.href,
          mimeType: "text/plain",
          text: `Only the first ${shown} of ${size} bytes ` +
            "are shown, cut at a line end. Use analyze_data with this query_id to work on all rows.",
        });
      }
      return { contents };
    },
  );
}

/**
 * The first `max` bytes of a stored file, cut after the last complete line when the file is
 * longer; `shown` is the byte length of `text`. Only those bytes are read.
 */
async function readHead(
  file: StoredFile,
  max: number,
): Promise<{ text: string; shown: number; truncated: boolean; size: number }> {
  const { size } = file;
  const buf = new Uint8Array(Math.min(size, max));
  let read = 0;
  const reader = file.body.getReader();
  try {
    while (read < buf.length) {
      const { value, done } = await reader.read();
      if (done) break;
      const n = Math.min(value.length, buf.length - read);
      buf.set(value.subarray(0, n), read);
      read += n;
    }
  } finally {
    await reader.cancel();
  }
  let bytes = buf.subarray(0, read);
  const truncated = size > read;
  if (truncated) {
    const nl = bytes.lastIndexOf(10);
    if (nl >= 0) bytes = bytes.subarray(0, nl + 1);
  }
  return { text: new TextDecoder().decode(bytes), shown: bytes.length, truncated, size };
}
