import { chartAssets } from "../../dashboard/mod.ts";

const APP_DIR = new URL("./assets/", import.meta.url);

let built: Promise<string> | undefined;

/** Script text made safe to inline: no `</script` can end the element early. */
function inlineScript(js: string): string {
  return js.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}

function inlineStyle(css: string): string {
  return css.replace(/<\/(style)/gi, "<\\/$1");
}

/**
 * The MCP App's HTML: one self-contained document (hosts load it without network access) with
 * uPlot, the chart code shared with the dashboard, and the view's script inlined. Built once.
 */
export function appHtml(): Promise<string> {
  built ??= (async () => {
    const [assets, template, appJs] = await Promise.all([
      chartAssets(),
      Deno.readTextFile(new URL("app.html", APP_DIR)),
      Deno.readTextFile(new URL("app.js", APP_DIR)),
    ]);
    const parts: Record<string, string> = {
      "/*UPLOT_CSS*/": inlineStyle(assets.uplotCss),
      "/*STYLE_CSS*/": inlineStyle(assets.styleCss),
      "/*UPLOT_JS*/": inlineScript(assets.uplotJs),
      "/*CHART_JS*/": inlineScript(assets.chartJs),
      "/*APP_JS*/": inlineScript(appJs),
    };
    // A function replacement: `$` sequences in the inlined code stay as they are.
    return template.replace(/\/\*[A-Z_]+\*\//g, (m) => parts[m] ?? m);
  })();
  built.catch(() => built = undefined);
  return built;
}
