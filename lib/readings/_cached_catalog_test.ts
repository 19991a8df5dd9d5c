import { deepEqual, equal } from "node:assert/strict";
import { withTestDb } from "../db/testing.ts";
import { cachedCatalog, CATALOG_TTL_MS } from "./_cached_catalog.ts";

Deno.test("cachedCatalog() reuses a catalog for CATALOG_TTL_MS, then or on request reads it again", async () => {
  await using db = await withTestDb();
  let clock = 1_000_000;
  const now = () => clock;
  const first = await cachedCatalog(db, { now });
  equal(first.fresh, true);
  deepEqual(first.sensors, []);
  await db.exec(`
    insert into devices (device_id) values ('d1');
    insert into sensors (sensor_id, device_id, sensor_type) values (1, 'd1', 'scd30');
    insert into measurements (time, sensor_id, metric_type, value) values (now(), 1, 'voc', 1);
  `);
  clock += CATALOG_TTL_MS - 1;
  const cached = await cachedCatalog(db, { now });
  equal(cached.fresh, false);
  deepEqual(cached.sensors, []);
  const forced = await cachedCatalog(db, { now, fresh: true });
  equal(forced.fresh, true);
  deepEqual(forced.sensors.map((s) => s.sensorId), [1]);
  deepEqual(await forced.flexibleMetrics([1]), new Map([[1, ["voc"]]]));

  await db.exec(
    `insert into measurements (time, sensor_id, metric_type, value) values (now(), 1, 'nox', 2)`,
  );
  // Flexible metrics are kept with the catalog, and read again with it.
  deepEqual(await (await cachedCatalog(db, { now })).flexibleMetrics([1]), new Map([[1, ["voc"]]]));
  clock += CATALOG_TTL_MS;
  const expired = await cachedCatalog(db, { now });
  equal(expired.fresh, true);
  deepEqual(await expired.flexibleMetrics([1]), new Map([[1, ["nox", "voc"]]]));
  // Each database has its own cache.
  await using other = await withTestDb();
  deepEqual((await cachedCatalog(other, { now })).sensors, []);
});
