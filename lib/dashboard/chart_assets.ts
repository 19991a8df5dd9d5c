/** The browser files the dashboard page and the MCP App share, read once from disk. */
export interface ChartAssets {
  /** uPlot's minified IIFE build (defines the global `uPlot`), from the npm package. */
  uplotJs: string;
  /** uPlot's stylesheet. */
  uplotCss: string;
  /** The shared chart code (`assets/chart.js`): sparklines, history charts, CO2 bands. */
  chartJs: string;
  /** The shared look (`assets/style.css`): colours for light and dark, cards, charts. */
  styleCss: string;
  /** The dashboard page's own script (`assets/dashboard.js`). */
  dashboardJs: string;
  /** The dashboard page (`assets/index.html`). */
  indexHtml: string;
}

// uPlot comes from the npm package `uplot` (deno.json imports), which Deno installs into
// node_modules next to deno.json; `deno compile` bundles these files through `--include`.
const UPLOT_DIR = new URL("../../node_modules/uplot/dist/", import.meta.url);
const ASSETS_DIR = new URL("./assets/", import.meta.url);

let loaded: Promise<ChartAssets> | undefined;

async function read(url: URL, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(url);
  } catch (error) {
    throw new Error(
      `Cannot read ${what} (${url.pathname}): ${(error as Error).message}. ` +
        "Run `deno install` in the project folder to fetch the npm packages.",
      { cause: error },
    );
  }
}

/** Reads the shared browser files (cached after the first call). */
export function chartAssets(): Promise<ChartAssets> {
  loaded ??= (async () => {
    const [uplotJs, uplotCss, chartJs, styleCss, dashboardJs, indexHtml] = await Promise.all([
      read(new URL("uPlot.iife.min.js", UPLOT_DIR), "the uPlot chart library"),
      read(new URL("uPlot.min.css", UPLOT_DIR), "the uPlot stylesheet"),
      read(new URL("chart.js", ASSETS_DIR), "the chart code"),
      read(new URL("style.css", ASSETS_DIR), "the dashboard stylesheet"),
      read(new URL("dashboard.js", ASSETS_DIR), "the dashboard script"),
      read(new URL("index.html", ASSETS_DIR), "the dashboard page"),
    ]);
    return { uplotJs, uplotCss, chartJs, styleCss, dashboardJs, indexHtml };
  })();
  loaded.catch(() => loaded = undefined);
  return loaded;
}
