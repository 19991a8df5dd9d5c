/**
 * Too many untrusted queries are already running or waiting; the query was not started. Running
 * queries are capped so that runaway ones cannot take every database connection from the other
 * tools, the collector and the monitor.
 */
export class QueryBusy extends Error {
  constructor(running: number, waiting: number) {
    super(
      `Too many queries are running at once ("${running}" running, "${waiting}" waiting): try again in a moment, or make the running queries cheaper.`,
    );
    this.name = "QueryBusy";
  }
}
