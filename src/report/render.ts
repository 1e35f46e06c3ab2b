/**
 * Draws a Vega-Lite spec to an SVG string in Node: compiled to Vega, run headless (no DOM, no canvas), and
 * serialised by Vega's own SVG renderer. Nothing is fetched: the data is inline in the spec.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const { spec: vegaSpec } = compile({
    ...spec,
    // Legends under the plot, so two charts fit side by side on a page.
    config: {
      font: 'system-ui, sans-serif',
      legend: { orient: 'bottom', columns: 2, labelLimit: 400 },
      ...spec.config,
    },
  });
  const view = new View(parse(vegaSpec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
